"""FID: the Fréchet distance against a reference formula, and image features through a user's TorchScript file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pix2pix.evaluation.fid import (
    INCEPTION_SIZE,
    TF_INPUT_RANGE,
    FeatureNetwork,
    FIDError,
    frechet_distance,
)

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


class ColourStatistics(nn.Module):
    """A stand-in for Inception: per-channel mean, spread and maximum of the 299x299 input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[-2:] == (299, 299)
        return torch.cat([x.mean((2, 3)), x.std((2, 3)), x.amax((2, 3))], dim=1)


class WrongShape(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0]


def saved(module: nn.Module, path):
    torch.jit.script(module).save(str(path))
    return path


def scipy_reference(a: np.ndarray, b: np.ndarray) -> float:
    """The formula as pytorch-fid computes it, with scipy's general matrix square root."""
    linalg = pytest.importorskip("scipy.linalg")
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(cov_a + cov_b - 2 * linalg.sqrtm(cov_a @ cov_b).real))


@pytest.mark.parametrize("dims", [8, 96], ids=["more images than features", "fewer images than features"])
def test_frechet_distance_matches_the_reference_formula_and_is_zero_for_the_same_set(dims):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(60, dims)) @ rng.normal(size=(dims, dims))
    b = rng.normal(0.3, 1.5, size=(50, dims)) @ rng.normal(size=(dims, dims))
    assert frechet_distance(a, b) == pytest.approx(scipy_reference(a, b), rel=1e-6)
    assert frechet_distance(a, b) > 1
    assert abs(frechet_distance(a, a)) < 1e-8 * np.abs(a).max() ** 2
    assert frechet_distance(a, a + 2.0) == pytest.approx(dims * 4.0, rel=1e-6)  # a shifted mean adds |shift|^2


def test_fid_of_images_is_small_within_a_distribution_and_grows_with_a_colour_shift(tmp_path):
    network = FeatureNetwork.load(saved(ColourStatistics(), tmp_path / "features.pt"))
    torch.manual_seed(0)
    real, other = (torch.rand(40, 3, 32, 48) * 1.6 - 0.8 for _ in range(2))
    shifted = (other + torch.tensor([0.3, -0.2, 0.0]).view(3, 1, 1)).clamp(-1, 1)
    features = {name: network.features(images, batch_size=16)
                for name, images in (("real", real), ("other", other), ("shifted", shifted))}
    assert features["real"].shape == (40, 9)
    same = frechet_distance(features["real"], features["other"])
    assert same < 0.01
    assert frechet_distance(features["real"], features["shifted"]) > 10 * same


def test_images_reach_the_network_in_its_input_range(tmp_path):
    network = FeatureNetwork.load(saved(ColourStatistics(), tmp_path / "features.pt"))
    black, white = -torch.ones(3, 20, 20), torch.ones(3, 20, 20)
    means = network.features([black, white])[:, :3]
    assert means[0] == pytest.approx([TF_INPUT_RANGE[0]] * 3)
    assert means[1] == pytest.approx([TF_INPUT_RANGE[1]] * 3)
    assert INCEPTION_SIZE == 299


def test_a_file_that_is_no_network_is_refused_with_its_name(tmp_path):
    bad = tmp_path / "inception.pt"
    bad.write_bytes(b"not a network")
    with pytest.raises(FIDError, match="inception.pt: not a TorchScript feature network"):
        FeatureNetwork.load(bad)
    with pytest.raises(FIDError, match="missing.pt"):
        FeatureNetwork.load(tmp_path / "missing.pt")


def test_a_network_without_one_feature_vector_per_image_is_refused(tmp_path):
    network = FeatureNetwork.load(saved(WrongShape(), tmp_path / "wrong.pt"))
    with pytest.raises(FIDError, match=r"wrong.pt: gave \(2, 299, 299\) for 2 images"):
        network.features(torch.zeros(2, 3, 8, 8))


def test_fid_needs_two_images_per_set():
    with pytest.raises(FIDError, match="at least two images"):
        frechet_distance(np.zeros((1, 4)), np.zeros((5, 4)))
