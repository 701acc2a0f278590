"""Pixel scores and the colour histograms on tiny arrays whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pix2pix.evaluation.metrics import as_unit, intersection, lab_counts, pixel_scores


def colourful(size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((size, size, 3))


def test_identical_images_score_perfectly():
    image = colourful()
    scores = pixel_scores(image, image.copy())
    assert scores.l1 == 0 and scores.ssim == pytest.approx(1) and math.isinf(scores.psnr)
    assert intersection(lab_counts(image), lab_counts(image)) == pytest.approx(1)


def test_a_colour_shift_lowers_intersection_and_psnr():
    image = colourful()
    shifted = image.copy()
    shifted[..., 0] = np.clip(shifted[..., 0] + 0.4, 0, 1)
    slightly = image.copy()
    slightly[..., 0] = np.clip(slightly[..., 0] + 0.05, 0, 1)
    real = lab_counts(image)
    assert intersection(lab_counts(shifted), real) < intersection(lab_counts(slightly), real) < 1
    assert pixel_scores(shifted, image).psnr < pixel_scores(slightly, image).psnr


def test_l1_by_hand_and_psnr_from_it():
    target = np.zeros((32, 32, 3))
    pred = target.copy()
    pred[:16] = 0.5  # half the pixels off by 0.5: L1 0.25, MSE 0.125
    scores = pixel_scores(pred, target)
    assert scores.l1 == pytest.approx(0.25)
    assert scores.psnr == pytest.approx(10 * math.log10(1 / 0.125))
    assert scores.ssim < 1


def test_bit_depths_share_one_scale():
    assert as_unit(np.array([255], np.uint8), 8)[0] == as_unit(np.array([65535], np.uint16), 16)[0] == 1


def test_disjoint_histograms_do_not_intersect():
    assert intersection(np.array([1, 0, 0]), np.array([0, 0, 5])) == 0
