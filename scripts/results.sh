#!/usr/bin/env bash
# The runs behind docs/results.md: all three ablation suites on the embedded facades and on maps, at 128 px.
# Usage: bash scripts/results.sh [WORK_DIR]   (default: results-work; maps read from ../shared/datasets/maps)
# Resumable: run it again after an interruption. About 3 CPU-hours on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-results-work}
MAPS=${MAPS:-../shared/datasets/maps}
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # steady on a shared host; 2 threads are faster on an idle one

"$PY" - "$WORK" "$MAPS" <<'PYTHON'
"""The data: the embedded facades at 128 px (400/50/50), and maps with each 600 px half resized to 128 (Lanczos),
files 1-1000 for training and 1001-1096 held out as the test split."""
import sys
from pathlib import Path

from PIL import Image

from pix2pix.data.synthetic import generate_facades

work, maps = Path(sys.argv[1]), Path(sys.argv[2])
if not (work / "facades128" / "palette.json").exists():
    generate_facades(work / "facades128", train=400, val=50, test=50, size=128, seed=0)
for number in range(1, 1097):
    out = work / "maps128" / ("train" if number <= 1000 else "test") / f"{number}.png"
    if out.exists():
        continue
    out.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(maps / "train" / f"{number}.jpg") as pair:
        halves = [pair.convert("RGB").crop((600 * i, 0, 600 * (i + 1), 600)).resize((128, 128), Image.LANCZOS)
                  for i in range(2)]
    joined = Image.new("RGB", (256, 128))
    for i, half in enumerate(halves):
        joined.paste(half, (128 * i, 0))
    joined.save(out)
PYTHON

COMMON=(--steps 2000 --crop-size 128 --load-size 143 --ngf 32 --ndf 32 --num-workers 1 --val-images 20 --save-every 500)
"$PY" -m pix2pix experiments --suite all --data "$WORK/facades128" --out "$WORK/facades" "${COMMON[@]}"
"$PY" -m pix2pix experiments --suite all --data "$WORK/maps128" --out "$WORK/maps" --labels output --classes 6 \
    "${COMMON[@]}"
