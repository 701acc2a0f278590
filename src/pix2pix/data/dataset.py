"""Paired datasets on disk: aligned A|B files, or A/ and B/ folders matched by file name."""

from __future__ import annotations

import random
import signal
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import ExifTags, Image
from torch.utils.data import DataLoader, Dataset, Sampler

from pix2pix.config import ConfigError, DataConfig
from pix2pix.data.images import DataError, ImageData, is_image_file, split_aligned
from pix2pix.data.reading import READ_ERRORS, load_image_data
from pix2pix.data.tensors import image_to_tensor
from pix2pix.data.transforms import Jitter, apply_jitter, evaluation_jitter, sample_jitter


@dataclass(frozen=True)
class Pair:
    name: str
    a: Path
    b: Path | None  # None: `a` is an aligned A|B file


def split_folder(root: Path, split: str) -> Path | None:
    """`root/split` when the dataset has splits; a dataset without them is all training data."""
    root = Path(root)
    if (root / split).is_dir():
        return root / split
    return root if split == "train" else None


def detect_layout(folder: Path, layout: str) -> str:
    if layout != "auto":
        return layout
    return "folders" if (folder / "A").is_dir() and (folder / "B").is_dir() else "aligned"


def images_in(folder: Path) -> list[Path]:
    """Sorted image files directly inside `folder`, so every reader sees the same order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found")
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))


def files_by_stem(folder: Path) -> dict[str, Path]:
    """Files keyed by name without extension; two files of one name (x.png, x.jpg) cannot be paired."""
    files: dict[str, Path] = {}
    for path in images_in(folder):
        if path.stem in files:
            raise DataError(f"{path}: same name as {files[path.stem].name}, so its partner is ambiguous; "
                            "rename or remove one")
        files[path.stem] = path
    return files


def find_pairs(folder: Path, layout: str = "auto") -> list[Pair]:
    """All pairs in one split folder; for A/ and B/ folders, files pair by name without extension."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: dataset folder not found")
    if detect_layout(folder, layout) == "aligned":
        pairs = [Pair(p.stem, p, None) for p in images_in(folder)]
    else:
        a_files, b_files = files_by_stem(folder / "A"), files_by_stem(folder / "B")
        missing = sorted(a_files.keys() ^ b_files.keys())
        if missing:
            raise DataError(f"{folder}: {len(missing)} file(s) in A/ or B/ have no partner, e.g. "
                            f"{', '.join(missing[:5])}; add or remove them")
        pairs = [Pair(name, a_files[name], b_files[name]) for name in sorted(a_files)]
    if not pairs:
        raise DataError(f"{folder}: no images found (expected aligned A|B files, or A/ and B/ folders)")
    return pairs


@dataclass(frozen=True)
class PairFacts:
    """What one pair holds, as loading it gives it: the channels of A and B, and the (width, height) of each."""

    pair: Pair
    channels: tuple[int, int]
    size: tuple[int, int]


HEADER_CHANNELS = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4, "I;16": 1, "I;16L": 1, "I;16B": 1}
"""Pillow modes whose bands are the channels `load_image_data` gives (a 16-bit colour PNG opens as RGB or RGBA)."""

_SWAPS_SIDES = (5, 6, 7, 8)  # EXIF orientations that turn the image on its side


def survey_pairs(pairs: list[Pair]) -> list[PairFacts]:
    """The facts of every readable pair, so that a run takes its channels from all of them; unreadable files are
    left to the screening before training, which lists them all, unless no pair can be read at all."""
    facts, first_problem = [], None
    for pair in pairs:
        try:
            a = image_facts(pair.a)
            b = a if pair.b is None else image_facts(pair.b)
        except DataError as err:
            first_problem = first_problem or err
            continue
        size = (a[0] // 2, a[1]) if pair.b is None else a[:2]
        facts.append(PairFacts(pair, (a[2], b[2]), size))
    if not facts and first_problem is not None:
        raise first_problem
    return facts


def image_facts(path: Path) -> tuple[int, int, int]:
    """(width, height, channels) as `load_image_data` gives them: from the header alone where Pillow's mode tells
    them (most files: a thousand headers take well under a second), else by decoding the file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                channels = HEADER_CHANNELS.get(image.mode) if image.format != "TIFF" else None
                if channels is not None:
                    width, height = image.size
                    exif = image.format != "PNG" or "exif" in image.info  # a PNG's getexif() decodes it all
                    turned = exif and image.getexif().get(ExifTags.Base.Orientation, 1) in _SWAPS_SIDES
                    return (height, width, channels) if turned else (width, height, channels)
    except (*READ_ERRORS, Image.DecompressionBombError):
        pass  # decoding names what is wrong
    image = load_image_data(path)
    return (*image.size, image.channels)


def detect_channels(facts: list[PairFacts], direction: str = "AtoB") -> tuple[int, int]:
    """(input_nc, output_nc) as most pairs hold them (the others are converted when loaded, as the screening
    before training notes); an even split has no majority, so the settings must choose."""
    a, b = (_majority([f.channels[side] for f in facts]) for side in (0, 1))
    return (a, b) if direction == "AtoB" else (b, a)


def _majority(channels: list[int]) -> int:
    counts = Counter(channels).most_common()
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        found = ", ".join(f"{n} file(s) of {c} channel(s)" if i == 0 else f"{n} of {c}"
                          for i, (c, n) in enumerate(sorted(counts)))
        raise ConfigError(f"the dataset's files are split evenly between channel counts ({found}), so there is "
                          "no majority to build the networks for; set `input_nc` and `output_nc`")
    return counts[0][0]


def jittered(image: ImageData, jitter: Jitter) -> ImageData:
    """The paired jitter on every channel, at the image's own bit depth."""
    return image.map_layers(lambda layer: apply_jitter(layer, jitter))


class PairedDataset(Dataset):
    """Input and target tensors of one pair, jittered identically.

    In training, items are addressed by `(epoch, index)` and the jitter is drawn from a generator seeded by
    (seed, epoch, index): the same in any worker process, so a resumed run sees exactly the same data.
    """

    def __init__(self, pairs: list[Pair], config: DataConfig, input_nc: int, output_nc: int,
                 train: bool, seed: int = 0) -> None:
        self.pairs = pairs
        self.config = config
        self.channels = (input_nc, output_nc) if config.direction == "AtoB" else (output_nc, input_nc)
        self.train = train
        self.seed = seed

    def __len__(self) -> int:
        return len(self.pairs)

    def load_pair(self, pair: Pair) -> tuple[ImageData, ImageData]:
        """(input, target) images, in the configured direction."""
        if pair.b is None:
            if self.channels[0] != self.channels[1]:
                raise DataError(f"{pair.a}: aligned files need the same channel count for A and B; "
                                "use A/ and B/ folders instead")
            a, b = split_aligned(load_image_data(pair.a, self.channels[0]), pair.a)
        else:
            a, b = load_image_data(pair.a, self.channels[0]), load_image_data(pair.b, self.channels[1])
            if a.size != b.size:
                raise DataError.about(pair.b, f"size {b.size[0]}x{b.size[1]} differs from its partner {pair.a} "
                                              f"({a.size[0]}x{a.size[1]})", "resize one to match or remove the pair")
        return (a, b) if self.config.direction == "AtoB" else (b, a)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        pair = self.pairs[index]
        source, target = self.load_pair(pair)
        if self.train:
            jitter = sample_jitter(self.config, *source.size, random.Random(f"{self.seed}/{epoch}/{index}"))
        else:
            jitter = evaluation_jitter(self.config, *source.size)
        return {"input": image_to_tensor(jittered(source, jitter)),
                "target": image_to_tensor(jittered(target, jitter)), "name": pair.name}


class EpochSampler(Sampler):
    """Yields `(epoch, index)` in an order fixed by (seed, epoch), from image `start` of the epoch on, so that a
    run resumed mid-epoch continues with exactly the images it had not seen yet.

    With several processes (`world_size`), each global batch of `batch_size * world_size` images is dealt out in
    rank order, so N processes at batch b see the images one process at batch N*b would. The epoch's rest is
    padded by repeating its first images until every process gets the same number of batches, which
    DistributedDataParallel needs.
    """

    def __init__(self, size: int, seed: int, batch_size: int = 1, rank: int = 0, world_size: int = 1) -> None:
        self.size = size
        self.seed = seed
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def order(self, epoch: int) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.size, generator=generator).tolist()

    def share(self) -> list[int]:
        """This process's images for the rest of the epoch, in the order it trains on them."""
        rest = self.order(self.epoch)[self.start:]
        padded = rest + rest[:(-len(rest)) % self.world_size] if rest else rest
        global_batch = self.batch_size * self.world_size
        mine = []
        for first in range(0, len(padded), global_batch):
            chunk = padded[first:first + global_batch]
            part = len(chunk) // self.world_size
            mine += chunk[self.rank * part:(self.rank + 1) * part]
        return mine

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((self.epoch, i) for i in self.share())

    def __len__(self) -> int:
        return len(self.share())


def _ignore_interrupts(_worker_id: int) -> None:
    """Ctrl-C is the main process's to handle (it checkpoints first); workers must keep serving it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def training_loader(dataset: PairedDataset, sampler: EpochSampler, batch_size: int, num_workers: int,
                    pin_memory: bool = False) -> DataLoader:
    """Decoding and jitter run in worker processes, which stay alive across epochs. The loader gets its own
    generator: drawing worker seeds from the global one would shift the dropout noise of a resumed run."""
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      generator=torch.Generator().manual_seed(sampler.seed),
                      persistent_workers=num_workers > 0, pin_memory=pin_memory,
                      worker_init_fn=_ignore_interrupts if num_workers > 0 else None,
                      prefetch_factor=4 if num_workers > 0 else None)
