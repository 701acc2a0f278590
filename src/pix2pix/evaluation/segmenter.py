"""The FCN-score's segmenter: a small fully convolutional network trained on a dataset's real photos to predict
the classes of their label maps, so that generated photos can be scored offline by how well it parses them.

The paper used an FCN-8s trained on Cityscapes; no such weights ship here, so one is trained per dataset, once:
the weights are cached under a key that hashes everything that determines them (the training files' names and
contents, the palette, which side holds the labels, the settings).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load, save
from torch import nn
from tqdm import tqdm

from pix2pix.atomic import write_bytes_atomic, write_text_atomic
from pix2pix.data.dataset import find_pairs, split_folder
from pix2pix.data.images import DataError, split_aligned
from pix2pix.data.reading import load_image_data
from pix2pix.evaluation.segmentation import (
    Palette,
    SegmentationScores,
    as_rgb8,
    confusion,
    snap,
)

CACHE_VERSION = 1
"""Bumped when the network or its training changes, so that older cached weights are not reused."""

INFO_KEYS = {"data", "label_side", "train_images", "palette", "settings", "seconds", "accuracy"}
"""What the JSON beside cached weights holds; one without all of them is from an interrupted or older write."""


@dataclass(frozen=True)
class SegmenterSettings:
    """The network's width and depth and its training: `steps` Adam steps on `batch` random `crop` x `crop` crops
    (mirrored at random), the learning rate decaying linearly to 0."""

    width: int = 16
    depth: int = 3
    steps: int = 800
    batch: int = 8
    crop: int = 64
    lr: float = 1e-2
    seed: int = 0


def default_cache() -> Path:
    """$XDG_CACHE_HOME/pix2pix/segmenters, or ~/.cache/pix2pix/segmenters."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pix2pix" / "segmenters"


def _block(inputs: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inputs, outputs, 3, padding=1, bias=False), nn.BatchNorm2d(outputs),
                         nn.ReLU(inplace=True), nn.Conv2d(outputs, outputs, 3, padding=1, bias=False),
                         nn.BatchNorm2d(outputs), nn.ReLU(inplace=True))


class SegmentationNet(nn.Module):
    """A small U-Net: RGB in [-1, 1] of any size to one logit per class and pixel."""

    def __init__(self, classes: int, width: int = 16, depth: int = 3) -> None:
        super().__init__()
        widths = [width * 2**level for level in range(depth + 1)]
        self.down = nn.ModuleList(_block(3 if level == 0 else widths[level - 1], widths[level])
                                  for level in range(depth + 1))
        self.up = nn.ModuleList(_block(widths[level + 1] + widths[level], widths[level])
                                for level in reversed(range(depth)))
        self.head = nn.Conv2d(width, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level, block in enumerate(self.down):
            x = block(x if level == 0 else F.max_pool2d(x, 2, ceil_mode=True))
            skips.append(x)
        skips.pop()
        for block in self.up:
            skip = skips.pop()
            upsampled = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([upsampled, skip], 1))
        return self.head(x)


@dataclass
class Segmenter:
    """A trained network, what it was trained on (the cached JSON), and whether this call trained it."""

    net: SegmentationNet
    info: dict
    trained_now: bool = False

    def __call__(self, photo: np.ndarray) -> np.ndarray:
        """Class index (H x W) per pixel of an H x W x 3 uint8 photo."""
        device = next(self.net.parameters()).device
        with torch.inference_mode():
            logits = self.net(_as_input(photo).unsqueeze(0).to(device))
        return logits[0].argmax(0).cpu().numpy()


@dataclass(frozen=True)
class LabelledSplit:
    """A split's photos (H x W x 3 uint8) and the classes of their label maps (H x W, uint8 for up to 256)."""

    photos: list[np.ndarray]
    labels: list[np.ndarray]


def labelled_pairs(folder: Path, label_side: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(label map, photo) as H x W x 3 uint8 per pair of a split folder (aligned A|B files, or A/ and B/)."""
    for pair in find_pairs(folder):
        if pair.b is None:
            a, b = split_aligned(load_image_data(pair.a), pair.a)
        else:
            a, b = load_image_data(pair.a), load_image_data(pair.b)
        label_map, photo = (a, b) if label_side == "A" else (b, a)
        if label_map.size != photo.size:
            raise DataError(f"{pair.a}: its label map and photo differ in size; give pairs of one size")
        yield as_rgb8(label_map.pixels, label_map.bit_depth), as_rgb8(photo.pixels, photo.bit_depth)


def load_split(folder: Path, label_side: str, palette: Palette) -> LabelledSplit:
    """The photos of one split folder, and their label maps snapped to the palette."""
    split = LabelledSplit([], [])
    for label_map, photo in labelled_pairs(folder, label_side):
        split.labels.append(snap(label_map, palette).astype(np.min_scalar_type(len(palette) - 1)))
        split.photos.append(photo)
    return split


def cache_key(files: list[Path], palette: Palette, label_side: str, settings: SegmenterSettings) -> str:
    """Hashes what determines the weights: file names and contents, palette, label side, settings."""
    digest = hashlib.sha256(json.dumps({"version": CACHE_VERSION, "palette": palette.colors.tolist(),
                                        "label_side": label_side, "settings": asdict(settings)}).encode())
    for path in files:
        digest.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:32]


def trained_segmenter(data: Path, label_side: str, palette: Palette, settings: SegmenterSettings = SegmenterSettings(),
                      cache: Path | None = None, device: str | torch.device = "cpu") -> Segmenter:
    """The segmenter for DATA's train split from the cache, or trained now (once) and cached."""
    folder = split_folder(Path(data), "train")
    files = [path for pair in find_pairs(folder) for path in (pair.a, pair.b) if path is not None]
    cache = Path(cache) if cache is not None else default_cache()
    key = cache_key(files, palette, label_side, settings)
    cached = _load_cached(cache / f"{key}.safetensors", cache / f"{key}.json", len(palette), settings, device)
    if cached is not None:
        return cached
    train = load_split(folder, label_side, palette)
    started = time.perf_counter()
    net = train_net(train, len(palette), settings, torch.device(device))
    segmenter = Segmenter(net, {"data": str(data), "label_side": label_side, "train_images": len(train.photos),
                                "palette": palette.as_json(), "settings": asdict(settings),
                                "seconds": round(time.perf_counter() - started, 1)}, trained_now=True)
    check_split = split_folder(Path(data), "val")
    check = load_split(check_split, label_side, palette) if check_split is not None else train
    scores = score_split(segmenter, check)
    segmenter.info["accuracy"] = {"split": "val" if check_split is not None else "train", **scores.numbers()}
    write_bytes_atomic(cache / f"{key}.safetensors", save({k: v.cpu() for k, v in net.state_dict().items()}))
    write_text_atomic(cache / f"{key}.json", json.dumps(segmenter.info, indent=2))
    segmenter.info["file"] = str(cache / f"{key}.safetensors")
    return segmenter


def _load_cached(weights: Path, info: Path, classes: int, settings: SegmenterSettings,
                 device: str | torch.device) -> Segmenter | None:
    """The cached segmenter, or None when there is none (or it cannot be read: then it is trained again)."""
    if not (weights.is_file() and info.is_file()):
        return None
    net = SegmentationNet(classes, settings.width, settings.depth)
    try:
        net.load_state_dict(load(weights.read_bytes()))
        details = json.loads(info.read_text(encoding="utf-8"))
    except (SafetensorError, RuntimeError, ValueError, OSError):
        return None
    if not isinstance(details, dict) or not INFO_KEYS <= details.keys():
        return None
    return Segmenter(net.to(device).eval(), {**details, "file": str(weights)})


def score_split(segmenter: Segmenter, split: LabelledSplit) -> SegmentationScores:
    classes = segmenter.net.head.out_channels
    counts = sum(confusion(labels, segmenter(photo), classes) for photo, labels in zip(split.photos, split.labels))
    return SegmentationScores.from_confusion(counts)


def train_net(train: LabelledSplit, classes: int, settings: SegmenterSettings, device: torch.device) -> SegmentationNet:
    """Cross-entropy on random crops of the real photos, with a progress bar."""
    torch.manual_seed(settings.seed)
    net = SegmentationNet(classes, settings.width, settings.depth).to(device).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=settings.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / settings.steps)
    batches = _crops(train, settings, np.random.default_rng(settings.seed))
    progress = tqdm(range(settings.steps), desc="training the FCN-score's segmenter", unit="step", leave=False,
                    file=sys.stderr, mininterval=1.0, dynamic_ncols=True)
    for _ in progress:
        photos, labels = next(batches)
        loss = F.cross_entropy(net(photos.to(device)), labels.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        progress.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    return net.eval()


def _crops(train: LabelledSplit, settings: SegmenterSettings,
           rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless batches of random crops (one size for all: the smallest side when images are smaller), mirrored."""
    crop = min(settings.crop, *(min(photo.shape[:2]) for photo in train.photos))
    while True:
        photos, labels = [], []
        for index in rng.integers(len(train.photos), size=settings.batch):
            photo, label = train.photos[index], train.labels[index]
            top = rng.integers(photo.shape[0] - crop + 1)
            left = rng.integers(photo.shape[1] - crop + 1)
            window = np.s_[top:top + crop, left:left + crop]
            flip = np.s_[:, ::-1] if rng.random() < 0.5 else np.s_[:, :]
            photos.append(_as_input(photo[window][flip]))
            labels.append(torch.from_numpy(label[window][flip].astype(np.int64)))
        yield torch.stack(photos), torch.stack(labels)


def _as_input(photo: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 -> 3 x H x W in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(photo)).permute(2, 0, 1).float() / 127.5 - 1
