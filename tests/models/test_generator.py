"""The U-Net generator: shapes, depth, the paper's layer recipe, dropout, skips and any-size inference."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pix2pix.config import RunConfig
from pix2pix.models import UNetGenerator, build_generator

PAPER_G_PARAMS = 54_414_019
"""ngf 64, depth 8, batch norm. The canonical PyTorch code has 54,413,955: it also drops the bias of the very
first encoder convolution (64 values), which this implementation keeps, as the paper's original Torch code does,
because no norm follows it."""


def _params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def _of_type(net: nn.Module, kind: type) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, kind)]


@pytest.fixture(scope="module")
def paper_generator() -> UNetGenerator:
    return build_generator(RunConfig())


@pytest.mark.parametrize(("depth", "size", "ngf", "input_nc", "output_nc"), [
    (5, 32, 8, 3, 3),
    (5, 64, 8, 1, 3),
    (6, 64, 4, 3, 1),
    (4, 48, 8, 3, 3),
    (3, 24, 8, 3, 2),
])
def test_output_has_input_size_and_output_channels(depth, size, ngf, input_nc, output_nc):
    torch.manual_seed(0)
    net = UNetGenerator(input_nc, output_nc, depth, ngf=ngf)
    x = torch.randn(2, input_nc, size, size)
    out = net(x)
    assert out.shape == (2, output_nc, size, size)
    assert out.abs().max() <= 1.0  # tanh range


def test_non_square_input():
    net = UNetGenerator(3, 3, 5, ngf=4)
    assert net(torch.randn(1, 3, 32, 96)).shape == (1, 3, 32, 96)


def test_bottleneck_is_one_pixel_at_the_crop_size():
    net = UNetGenerator(3, 3, 5, ngf=4)
    sizes = []
    hooks = [block.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[-2:]))) for block in net.encoder]
    net(torch.randn(2, 3, 32, 32))
    for hook in hooks:
        hook.remove()
    assert sizes == [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]


def test_batch_of_one_trains_with_a_one_pixel_bottleneck():
    """The paper's batch size 1: batch norm on the 1x1 bottleneck would fail in training mode, so it has none."""
    net = UNetGenerator(3, 3, 5, ngf=4).train()
    out = net(torch.randn(1, 3, 32, 32))
    out.mean().backward()
    assert out.shape == (1, 3, 32, 32)


@pytest.mark.parametrize(("crop", "depth"), [(256, 8), (128, 7), (64, 6), (32, 5), (8, 3)])
def test_depth_follows_crop_size(crop, depth):
    config = RunConfig().updated({"crop_size": crop, "load_size": max(crop, 36), "ngf": 2})
    assert config.generator_depth == depth
    net = build_generator(config)
    assert net.depth == depth
    assert len(net.encoder) == depth and len(net.decoder) == depth
    assert net.multiple == crop


def test_num_downs_overrides_depth():
    config = RunConfig().updated({"crop_size": 64, "load_size": 72, "num_downs": 4, "ngf": 2})
    assert config.generator_depth == 4
    assert build_generator(config).depth == 4


def test_paper_generator_channels_and_parameter_count(paper_generator):
    assert paper_generator.depth == 8
    encoder_out = [block[-1].out_channels if isinstance(block[-1], nn.Conv2d) else block[-2].out_channels
                   for block in paper_generator.encoder]
    assert encoder_out == [64, 128, 256, 512, 512, 512, 512, 512]
    assert _params(paper_generator) == PAPER_G_PARAMS


def test_all_convolutions_are_4x4_stride_2(paper_generator):
    convs = _of_type(paper_generator, nn.Conv2d)
    deconvs = _of_type(paper_generator, nn.ConvTranspose2d)
    assert len(convs) == 8 and len(deconvs) == 8
    for conv in convs + deconvs:
        assert conv.kernel_size == (4, 4)
        assert conv.stride == (2, 2)
        assert conv.padding == (1, 1)


def test_activations_leaky_in_encoder_relu_in_decoder_tanh_out(paper_generator):
    g = paper_generator
    # the first encoder layer sees the raw image: no activation before it
    assert not any(isinstance(m, (nn.ReLU, nn.LeakyReLU)) for m in g.encoder[0])
    for block in g.encoder[1:]:
        assert type(block[0]) is nn.LeakyReLU and block[0].negative_slope == 0.2
        assert not _of_type(block, nn.ReLU)
    for block in g.decoder:
        assert type(block[0]) is nn.ReLU
        assert not _of_type(block, nn.LeakyReLU)
    assert type(g.decoder[-1][-1]) is nn.Tanh
    assert len(_of_type(g, nn.Tanh)) == 1
    assert len(_of_type(g, nn.LeakyReLU)) == 7
    assert len(_of_type(g, nn.ReLU)) == 8


def test_no_norm_on_first_and_innermost_encoder_layers(paper_generator):
    g = paper_generator
    has_norm = [bool(_of_type(block, nn.BatchNorm2d)) for block in g.encoder]
    assert has_norm == [False, True, True, True, True, True, True, False]
    # every decoder block but the output one is normalized
    assert [bool(_of_type(block, nn.BatchNorm2d)) for block in g.decoder] == [True] * 7 + [False]


def test_bias_only_where_no_batch_norm_follows(paper_generator):
    g = paper_generator
    assert g.encoder[0][0].bias is not None
    assert g.decoder[-1][1].bias is not None
    for block in list(g.encoder[1:]) + list(g.decoder[:-1]):
        conv = next(m for m in block if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))
        assert conv.bias is None


def test_instance_norm_variant_uses_instance_norm_and_biases():
    g = UNetGenerator(3, 3, 5, ngf=4, norm="instance")
    assert not _of_type(g, nn.BatchNorm2d)
    assert len(_of_type(g, nn.InstanceNorm2d)) == 3 + 4
    assert all(m.bias is not None for m in _of_type(g, nn.Conv2d) + _of_type(g, nn.ConvTranspose2d))


@pytest.mark.parametrize("depth", [5, 8])
def test_dropout_only_in_three_innermost_decoder_blocks(depth):
    g = UNetGenerator(3, 3, depth, ngf=2)
    with_dropout = [[m.p for m in _of_type(block, nn.Dropout)] for block in g.decoder]
    assert with_dropout == [[0.5], [0.5], [0.5]] + [[]] * (depth - 3)
    assert not any(_of_type(block, nn.Dropout) for block in g.encoder)


def test_dropout_zero_removes_it():
    assert not _of_type(UNetGenerator(3, 3, 5, ngf=2, dropout=0.0), nn.Dropout)


def test_paper_generator_dropout(paper_generator):
    assert [m.p for m in _of_type(paper_generator, nn.Dropout)] == [0.5] * 3


def test_dropout_is_the_noise_in_training_and_off_in_eval():
    torch.manual_seed(0)
    g = UNetGenerator(3, 3, 5, ngf=4, norm="none")
    x = torch.randn(1, 3, 32, 32)
    g.train()
    assert not torch.equal(g(x), g(x))
    g.eval()
    assert torch.equal(g(x), g(x))


def test_encoder_decoder_variant_has_no_skip_channels():
    unet = UNetGenerator(3, 3, 5, ngf=8)
    plain = UNetGenerator(3, 3, 5, ngf=8, skip_connections=False)
    unet_in = [_of_type(b, nn.ConvTranspose2d)[0].in_channels for b in unet.decoder]
    plain_in = [_of_type(b, nn.ConvTranspose2d)[0].in_channels for b in plain.decoder]
    assert plain_in == [64, 64, 32, 16, 8]
    assert unet_in == [64, 128, 64, 32, 16]
    assert _params(plain) < _params(unet)
    assert plain(torch.randn(2, 3, 32, 32)).shape == (2, 3, 32, 32)


@pytest.mark.parametrize("skips", [True, False])
def test_outer_encoder_feature_reaches_output_only_through_the_skip(skips):
    """Cut the deep path after the first encoder block (zero weights), then perturb that block's output:
    the output can only change through the skip connection."""
    torch.manual_seed(0)
    g = UNetGenerator(3, 3, 5, ngf=4, norm="none", skip_connections=skips).eval()
    cut = g.encoder[1][1]
    with torch.no_grad():
        cut.weight.zero_()
        cut.bias.zero_()
    x = torch.randn(1, 3, 32, 32)
    delta = torch.randn(1, 4, 16, 16)
    with torch.no_grad():
        before = g(x)
        hook = g.encoder[0].register_forward_hook(lambda m, i, o: o + delta)
        after = g(x)
        hook.remove()
    changed = not torch.allclose(before, after, atol=1e-6)
    assert changed == skips


def test_output_depends_on_input_with_skips_in_fine_detail():
    """With skips, a one-pixel change of the input changes the output at that pixel."""
    torch.manual_seed(0)
    g = UNetGenerator(3, 3, 5, ngf=4, norm="none").eval()
    x = torch.randn(1, 3, 32, 32, requires_grad=True)
    g(x)[0, :, 10, 10].sum().backward()
    assert x.grad[0, :, 10, 10].abs().sum() > 0


@pytest.mark.parametrize(("depth", "height", "width"), [(8, 217, 300), (5, 33, 47), (5, 5, 7), (5, 31, 64)])
def test_forward_any_size_keeps_the_size(depth, height, width):
    torch.manual_seed(0)
    g = UNetGenerator(3, 3, depth, ngf=2).eval()
    with torch.no_grad():
        out = g.forward_any_size(torch.rand(1, 3, height, width) * 2 - 1)
    assert out.shape == (1, 3, height, width)
    assert torch.isfinite(out).all()


def test_forward_any_size_equals_forward_for_multiples():
    torch.manual_seed(0)
    g = UNetGenerator(3, 3, 5, ngf=4).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        assert torch.equal(g.forward_any_size(x), g(x))



@pytest.mark.parametrize(("depth", "start", "count", "expected"), [
    (8, 1, 3, [[], [0.5], [0.5], [0.5], [], [], [], []]),
    (7, 1, 2, [[], [0.5], [0.5], [], [], [], []]),
    (5, 1, 0, [[]] * 5),
    (5, 3, 3, [[], [], [], [0.5], []]),  # never in the output block
])
def test_dropout_blocks_can_start_after_the_innermost(depth, start, count, expected):
    """The canonical PyTorch U-Net's layout: num_downs - 5 dropout blocks, after the innermost one."""
    g = UNetGenerator(3, 3, depth, ngf=2, dropout_start=start, dropout_blocks=count)
    assert [[m.p for m in _of_type(block, nn.Dropout)] for block in g.decoder] == expected


@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
def test_generator_bias_sets_every_bias_but_the_output_layers(norm):
    for bias in (True, False):
        g = UNetGenerator(3, 3, 5, ngf=4, norm=norm, bias=bias)
        convs = _of_type(g, nn.Conv2d) + _of_type(g, nn.ConvTranspose2d)[:-1]
        assert all((conv.bias is not None) == bias for conv in convs)
        assert g.decoder[-1][1].bias is not None


def test_without_generator_bias_the_paper_generator_has_the_canonical_parameter_count():
    g = build_generator(RunConfig().updated({"generator_bias": False}))
    assert _params(g) == PAPER_G_PARAMS - 64
