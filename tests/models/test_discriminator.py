"""The PatchGAN discriminator: receptive fields (computed and measured), output maps, conditioning and init."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pix2pix.config import RunConfig
from pix2pix.models import PatchDiscriminator, build_discriminator, build_generator, receptive_field
from pix2pix.models.discriminator import input_problem, smallest_input

PAPER_D_PARAMS = 2_768_705
"""The 70x70 PatchGAN on 6 input channels with ndf 64 and batch norm, as in the canonical implementation."""


def _params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.fixture(scope="module")
def paper_discriminator() -> PatchDiscriminator:
    torch.manual_seed(0)
    return build_discriminator(RunConfig())


@pytest.mark.parametrize("patch", [1, 16, 70, 286])
def test_receptive_field_is_the_patch_size(patch):
    assert receptive_field(PatchDiscriminator(6, patch=patch, ndf=4)) == patch


def test_receptive_field_of_plain_convolutions():
    assert receptive_field(nn.Sequential(nn.Conv2d(1, 1, 3))) == 3
    assert receptive_field(nn.Sequential(nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 3))) == 5
    assert receptive_field(nn.Sequential(nn.Conv2d(1, 1, 2, stride=2), nn.Conv2d(1, 1, 3))) == 6
    assert receptive_field(nn.Sequential(nn.Conv2d(1, 1, 3, dilation=2))) == 5


def _measured_receptive_field(net: nn.Module, channels: int, patch: int) -> tuple[int, bool, bool]:
    """Width of the input columns that one central output value depends on, whether they are contiguous, and
    whether they stay clear of the input border (so that padding did not clip them)."""
    height, width = 128, 2 * patch + 64
    x = (torch.rand(1, channels, height, width, dtype=torch.float64) + 0.5).requires_grad_(True)
    out = net(x)
    assert out.shape[-1] > 2
    out[0, 0, out.shape[-2] // 2, out.shape[-1] // 2].backward()
    columns = torch.nonzero(x.grad.abs().sum(dim=(0, 1, 2)) > 0).flatten()
    first, last = columns.min().item(), columns.max().item()
    contiguous = len(columns) == last - first + 1
    return len(columns), contiguous, first > 0 and last < width - 1


@pytest.mark.parametrize("patch", [1, 16, 70, 286])
def test_receptive_field_matches_a_measurement(patch):
    net = PatchDiscriminator(3, patch=patch, ndf=2, norm="none").double().eval()
    with torch.no_grad():
        for conv in (m for m in net.modules() if isinstance(m, nn.Conv2d)):
            conv.weight.fill_(1.0 / conv.weight[0].numel())  # positive everywhere: no gradient cancels out
            conv.bias.zero_()
    measured, contiguous, inside = _measured_receptive_field(net, 3, patch)
    assert contiguous and inside
    assert measured == receptive_field(net) == patch


@pytest.mark.parametrize(("patch", "side"), [(1, 256), (16, 126), (70, 30), (286, 6)])
def test_output_map_for_a_256_input(patch, side):
    net = PatchDiscriminator(6, patch=patch, ndf=2)
    with torch.no_grad():
        out = net(torch.randn(1, 6, 256, 256))
    assert out.shape == (1, 1, side, side)


def test_output_is_a_map_of_logits_per_image():
    net = PatchDiscriminator(6, patch=70, ndf=4)
    with torch.no_grad():
        out = net(torch.randn(3, 6, 64, 96))
    assert out.shape == (3, 1, 6, 10)
    assert out.min() < 0 or out.max() > 1  # raw logits, no sigmoid on the output


def test_paper_discriminator_layers_and_parameter_count(paper_discriminator):
    d = paper_discriminator
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 1, 1]
    assert all(c.kernel_size == (4, 4) for c in convs)
    # C64 has no norm: it is followed directly by the activation
    layers = list(d.net)
    assert type(layers[1]) is nn.LeakyReLU
    assert len([m for m in d.modules() if isinstance(m, nn.BatchNorm2d)]) == 3
    assert all(m.negative_slope == 0.2 for m in d.modules() if isinstance(m, nn.LeakyReLU))
    assert _params(d) == PAPER_D_PARAMS


def test_pixel_gan_uses_only_1x1_convolutions():
    convs = [m for m in PatchDiscriminator(6, patch=1, ndf=4).modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(c.kernel_size == (1, 1) for c in convs)


def test_unsupported_patch_size_is_refused():
    with pytest.raises(ValueError, match="patch"):
        PatchDiscriminator(6, patch=34)


@pytest.mark.parametrize(("settings", "channels"), [
    ({}, 6),
    ({"conditional": False}, 3),
    ({"input_nc": 1}, 4),
    ({"input_nc": 1, "conditional": False}, 3),
    ({"output_nc": 1, "conditional": False}, 1),
])
def test_conditional_discriminator_sees_input_and_output(settings, channels):
    config = RunConfig().updated({"ndf": 4, **settings})
    d = build_discriminator(config)
    first = next(m for m in d.modules() if isinstance(m, nn.Conv2d))
    assert first.in_channels == channels
    with torch.no_grad():
        assert d(torch.randn(1, channels, 32, 32)).shape[1] == 1


def test_conv_weights_are_drawn_from_n_0_002(paper_discriminator):
    big = paper_discriminator.net[8]  # C512, 2M weights
    assert isinstance(big, nn.Conv2d) and big.weight.numel() > 1_000_000
    assert abs(big.weight.mean().item()) < 1e-3
    assert big.weight.std().item() == pytest.approx(0.02, rel=0.02)
    for conv in (m for m in paper_discriminator.modules() if isinstance(m, nn.Conv2d)):
        if conv.bias is not None:
            assert torch.count_nonzero(conv.bias) == 0


def test_batch_norm_scales_near_one_and_shifts_zero(paper_discriminator):
    norms = [m for m in paper_discriminator.modules() if isinstance(m, nn.BatchNorm2d)]
    scales = torch.cat([m.weight.detach() for m in norms])
    assert abs(scales.mean().item() - 1.0) < 5e-3
    assert 0.01 < scales.std().item() < 0.03
    assert all(torch.count_nonzero(m.bias) == 0 for m in norms)


def test_init_gain_sets_the_std():
    config = RunConfig().updated({"ndf": 64, "init_gain": 0.05, "crop_size": 32, "load_size": 36, "ngf": 16})
    d = build_discriminator(config)
    assert d.net[8].weight.std().item() == pytest.approx(0.05, rel=0.02)
    g = build_generator(config)
    deconv = g.decoder[1][1]
    assert isinstance(deconv, nn.ConvTranspose2d)
    assert deconv.weight.std().item() == pytest.approx(0.05, rel=0.05)


SMALLEST_INPUT = {1: 2, 16: 6, 70: 24, 286: 96}
"""The smallest side each PatchGAN trains on: its stride-2 layers must leave 3 (then 2 after the stride-1 4x4
convolution with its norm, and 1 after the output convolution); the PixelGAN's norm needs 2x2 at batch 1."""


def _train_step(net: nn.Module, side: int, batch: int = 1) -> None:
    net.train()
    net(torch.randn(batch, 2, side, side)).mean().backward()


@pytest.mark.parametrize("patch", [1, 16, 70, 286])
def test_the_smallest_input_trains_and_the_next_smaller_is_refused_as_it_fails(patch):
    side = smallest_input(patch)
    assert side == SMALLEST_INPUT[patch] and input_problem(patch, side, side) is None
    for norm in ("batch", "instance"):
        _train_step(PatchDiscriminator(2, patch=patch, ndf=2, norm=norm), side)
    assert input_problem(patch, side - 1, side - 1) is not None
    assert (input_problem(patch, side - 1, 4 * side) is None) == (patch == 1)  # a PixelGAN judges any 2 pixels
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        _train_step(PatchDiscriminator(2, patch=patch, ndf=2), side - 1)


def test_input_problem_says_how_the_maps_shrink():
    assert input_problem(70, 16, 16) == ("its layers take a 16x16 input to 8x8, 4x4, 2x2, then 1x1, where a norm "
                                         "layer needs more than one value per image")
    assert input_problem(286, 32, 32).startswith("its layers take a 32x32 input to 16x16, 8x8")
    assert input_problem(70, 1, 1) == "its layers take a 1x1 input to nothing"
