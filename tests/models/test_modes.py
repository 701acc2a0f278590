"""The test-time modes, defined once: paper mode is nn.Dropout and batch norm on the batch's statistics, with masks
drawn or given alike; eval mode is the running statistics; the generator itself is never changed."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from pix2pix.models import MODES, PaperGenerator, UNetGenerator, check_mode, in_mode, with_cpu_kernels
from pix2pix.models.modes import PaperDropout, draw_masks, mask_specs
from tests.models.nets import trained_looking


def seeded(fn, seed: int = 3) -> torch.Tensor:
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(seed)
        return fn()


@pytest.fixture
def generator() -> UNetGenerator:
    return trained_looking(UNetGenerator(3, 3, 5, ngf=8)).eval()


def test_paper_mode_is_pytorchs_training_forward_without_touching_the_running_statistics(generator):
    """nn.Dropout and nn.BatchNorm2d in training mode draw the same masks and use the same statistics; the
    generator keeps its mode, its running statistics and their tracking."""
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    before = copy.deepcopy(generator.state_dict())
    reference = seeded(lambda: copy.deepcopy(generator).train()(x))
    torch.testing.assert_close(seeded(lambda: in_mode(generator, "paper")(x)), reference, atol=0, rtol=0)
    assert not generator.training
    assert all(m.track_running_stats for m in generator.modules() if isinstance(m, nn.BatchNorm2d))
    assert all(torch.equal(before[k], v) for k, v in generator.state_dict().items())
    assert (reference - seeded(lambda: generator(x))).abs().max() > 0.05  # running statistics would differ


def test_paper_mode_stays_on_in_eval_mode_and_repeats_by_seed(generator):
    """torch.export and ONNX take a module in eval mode: paper mode must not turn into the eval one there."""
    paper = in_mode(generator, "paper").eval()
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert torch.equal(seeded(lambda: paper(x)), seeded(lambda: in_mode(generator, "paper")(x)))
    assert not torch.equal(seeded(lambda: paper(x)), seeded(lambda: paper(x), seed=4))


def test_masks_drawn_for_a_backend_are_the_masks_paper_mode_draws(generator):
    """`draw_masks` (the ONNX graph's inputs) draws from torch's generator exactly as the dropouts do."""
    paper = in_mode(generator, "paper")
    x = torch.rand(2, 3, 64, 96) * 2 - 1
    specs = mask_specs(generator)
    assert [s["channels"] for s in specs] == [64, 32, 16] and [s["stride"] for s in specs] == [16, 8, 4]
    given = seeded(lambda: paper(x, draw_masks(specs, 2, 64, 96)))
    assert torch.equal(given, seeded(lambda: paper(x)))
    assert all(dropout.mask is None for dropout in paper.dropouts)  # given masks do not stay for the next call


def test_paper_mode_shares_the_weights_and_holds_no_running_statistics(generator):
    paper = in_mode(generator, "paper")
    assert isinstance(paper, PaperGenerator) and len(paper.dropouts) == 3
    assert not any(isinstance(m, nn.Dropout) for m in paper.modules())
    assert [id(p) for p in paper.parameters()] == [id(p) for p in generator.parameters()]
    assert not list(paper.buffers())


def test_eval_mode_is_the_running_statistics_without_dropout(generator):
    generator.train()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    evaluate = in_mode(generator, "eval")
    output = seeded(lambda: evaluate(x))
    assert torch.equal(output, seeded(lambda: evaluate(x), seed=4))
    assert generator.training
    assert torch.equal(output, seeded(lambda: copy.deepcopy(generator).eval()(x)))


@pytest.mark.parametrize("mode", MODES)
def test_the_cpu_kernels_give_each_modes_images(generator, mode):
    network = in_mode(generator, mode)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(seeded(lambda: with_cpu_kernels(network)(x)), seeded(lambda: network(x)),
                               atol=1e-5, rtol=1e-4)
    assert any(isinstance(m, PaperDropout) for m in with_cpu_kernels(network).modules()) == (mode == "paper")


def test_an_unknown_mode_is_refused_naming_the_modes(generator):
    with pytest.raises(ValueError, match="unknown `mode` 'train': use paper or eval"):
        check_mode("train")
    with pytest.raises(ValueError, match="use paper or eval"):
        in_mode(generator, "test")
