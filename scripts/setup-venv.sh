#!/usr/bin/env bash
# Creates the project's virtual environment (default .venv) and installs pix2pix into it.
# A torch that the system Python already has is kept (the venv sees it); otherwise TORCH_SPEC is installed,
# by default the CPU build torch==2.13.0 (set TORCH_SPEC, e.g. "torch==2.13.0 --index-url URL", to choose).
set -euo pipefail
venv=${1:-.venv}
python=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ]; then
  if "$python" -c "import torch" 2>/dev/null; then
    echo "Creating $venv with access to the system's torch ($("$python" -c 'import torch; print(torch.__version__)'))"
    "$python" -m venv --system-site-packages "$venv"
  else
    echo "Creating $venv"
    "$python" -m venv "$venv"
  fi
fi
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  # shellcheck disable=SC2086  # TORCH_SPEC may carry pip options
  "$venv/bin/python" -m pip install --quiet ${TORCH_SPEC:-torch==2.13.0}
fi
"$venv/bin/python" -m pip install --quiet -e ".[test]"
touch "$venv/.installed"
