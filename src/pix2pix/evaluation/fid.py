"""Fréchet Inception Distance (Heusel et al., 2017) between two sets of images.

No Inception weights ship with pix2pix and none are downloaded: the caller names a TorchScript network that maps a
batch of 299x299 RGB images to one feature vector each (the 2048 pool features, for FID as published). The
standard one, TensorFlow's Inception of 2015-12-05 as TorchScript, takes pixels scaled as (p - 128) / 128; that is
the default input range here. docs/performance.md says where to get such a file offline.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

INCEPTION_SIZE = 299
TF_INPUT_RANGE = (-1.0, 127 / 128)
"""What 8-bit pixels 0..255 become as (p - 128) / 128: the input of TensorFlow's Inception, which FID uses."""


class FIDError(ValueError):
    """The feature network cannot be used; the message names its file."""


@dataclass(frozen=True)
class FeatureNetwork:
    """A TorchScript network mapping a batch of 299x299 images to one feature vector each, and its file."""

    module: torch.jit.ScriptModule
    path: Path
    input_range: tuple[float, float] = TF_INPUT_RANGE

    @classmethod
    def load(cls, path: Path, device: torch.device | str = "cpu") -> FeatureNetwork:
        """The published FID networks are TorchScript files, which only `torch.jit.load` reads (deprecated:
        quietly)."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                module = torch.jit.load(str(path), map_location=device)
        except (RuntimeError, OSError, ValueError) as err:
            raise FIDError(f"{path}: not a TorchScript feature network ({str(err).splitlines()[0]})") from err
        return cls(module.eval(), Path(path))

    def features(self, images: Iterable[torch.Tensor], batch_size: int = 25) -> np.ndarray:
        """Features of RGB images in [-1, 1] (each 3 x H x W, any size), resized bilinearly to 299 x 299 and
        rescaled to the network's input range; one float64 row per image."""
        rows = [self._batch_features(batch) for batch in _batches(images, batch_size)]
        if not rows:
            raise FIDError("no images to compute features of")
        return np.concatenate(rows)

    def _batch_features(self, images: list[torch.Tensor]) -> np.ndarray:
        device = next(iter(self.module.parameters()), torch.empty(0)).device
        resized = torch.cat([F.interpolate(image[None].float(), size=(INCEPTION_SIZE, INCEPTION_SIZE),
                                           mode="bilinear", align_corners=False) for image in images])
        low, high = self.input_range
        with torch.inference_mode():
            features = self.module((resized.to(device) + 1) / 2 * (high - low) + low)
        if not isinstance(features, torch.Tensor) or features.dim() != 2 or features.shape[0] != len(images):
            shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
            raise FIDError(f"{self.path}: gave {shape} for {len(images)} images, not one feature vector per image")
        return features.double().cpu().numpy()


def _batches(images: Iterable[torch.Tensor], size: int) -> Iterator[list[torch.Tensor]]:
    batch: list[torch.Tensor] = []
    for image in images:
        batch.append(image)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between the Gaussians fitted to two feature sets.

    With A and B the centred features (m x d, n x d), S_a S_b = A'A B'B / ((m-1)(n-1)) has the nonzero eigenvalues
    of M M' for M = A B', so tr((S_a S_b)^(1/2)) is the sum of M's singular values over sqrt((m-1)(n-1)): exact,
    and an m x n problem instead of two d x d eigendecompositions (seconds for d = 2048) when sets are small."""
    if len(features_a) < 2 or len(features_b) < 2:
        raise FIDError("FID needs at least two images per set")
    mean_a, mean_b = features_a.mean(axis=0), features_b.mean(axis=0)
    centred_a, centred_b = features_a - mean_a, features_b - mean_b
    scale_a, scale_b = len(features_a) - 1, len(features_b) - 1
    if min(len(features_a), len(features_b)) < features_a.shape[1]:
        singular = np.linalg.svd(centred_a @ centred_b.T, compute_uv=False)
        trace_root = singular.sum() / np.sqrt(scale_a * scale_b)
    else:
        cov_a, cov_b = centred_a.T @ centred_a / scale_a, centred_b.T @ centred_b / scale_b
        root_a = _symmetric_sqrt(cov_a)
        trace_root = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum()
    traces = (centred_a**2).sum() / scale_a + (centred_b**2).sum() / scale_b
    return float(((mean_a - mean_b) ** 2).sum() + traces - 2 * trace_root)


def _symmetric_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
