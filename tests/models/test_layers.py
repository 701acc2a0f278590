"""The matmul forms of the convolution and the transposed convolution match PyTorch's, values and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pix2pix.models.layers import (
    CONV_MATMUL_MAX_COLUMNS,
    MATMUL_MAX_COLUMNS,
    DownConv,
    UpConv,
    transposed_conv_as_matmul,
    with_plain_convolutions,
)


def assert_same_values_and_gradients(fast: nn.Module, reference: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`fast` (with `reference`'s parameters) gives the same output, input gradient and weight gradient."""
    reference.load_state_dict(fast.state_dict())
    x = x.requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    out, expected = fast(x), reference(x_ref)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    grad = torch.randn_like(out)
    out.backward(grad)
    expected.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast.weight.grad, reference.weight.grad, atol=1e-4, rtol=1e-5)
    return out


@pytest.mark.parametrize("batch, height, width, bias",
                         [(2, 1, 1, True), (2, 2, 3, False), (4, 8, 8, True), (1, 16, 16, False)])
def test_upconv_matmul_path_equals_conv_transpose(batch, height, width, bias):
    assert batch * height * width <= MATMUL_MAX_COLUMNS
    torch.manual_seed(0)
    out = assert_same_values_and_gradients(UpConv(24, 8, 4, stride=2, padding=1, bias=bias),
                                           nn.ConvTranspose2d(24, 8, 4, stride=2, padding=1, bias=bias),
                                           torch.randn(batch, 24, height, width))
    assert out.shape == (batch, 8, 2 * height, 2 * width)


@pytest.mark.parametrize("shape, matmul", [((1, 4, 16, 16), True), ((1, 4, 17, 16), False),
                                          ((4, 4, 8, 8), True), ((4, 4, 16, 16), False)])
def test_upconv_takes_pytorchs_path_beyond_the_matmul_columns(monkeypatch, shape, matmul):
    """The batch counts: four 16x16 inputs are as many columns as one 32x32."""
    calls = []
    real = transposed_conv_as_matmul
    monkeypatch.setattr("pix2pix.models.layers.transposed_conv_as_matmul", lambda *a: calls.append(a) or real(*a))
    layer = UpConv(4, 2, 4, stride=2, padding=1)
    assert layer(torch.randn(shape)).shape == (shape[0], 2, 2 * shape[2], 2 * shape[3])
    assert bool(calls) == matmul


@pytest.mark.parametrize("batch, height, width, bias", [(2, 2, 2, True), (1, 16, 16, False), (4, 8, 6, True),
                                                        (1, 5, 7, False)])
def test_downconv_matmul_path_equals_conv2d(batch, height, width, bias):
    torch.manual_seed(0)
    out = assert_same_values_and_gradients(DownConv(24, 8, 4, stride=2, padding=1, bias=bias),
                                           nn.Conv2d(24, 8, 4, stride=2, padding=1, bias=bias),
                                           torch.randn(batch, 24, height, width))
    assert out.shape[0] * out.shape[2] * out.shape[3] <= CONV_MATMUL_MAX_COLUMNS


@pytest.mark.parametrize("shape, matmul", [((1, 4, 16, 16), True), ((1, 4, 18, 16), False),
                                          ((4, 4, 8, 8), True), ((4, 4, 16, 16), False)])
def test_downconv_takes_pytorchs_path_beyond_the_matmul_columns(monkeypatch, shape, matmul):
    calls = []
    real = F.unfold
    monkeypatch.setattr("pix2pix.models.layers.F.unfold", lambda *a: calls.append(a) or real(*a))
    layer = DownConv(4, 2, 4, stride=2, padding=1)
    assert layer(torch.randn(shape)).shape == (shape[0], 2, shape[2] // 2, shape[3] // 2)
    assert bool(calls) == matmul


def test_bf16_autocast_keeps_the_matmul_paths_in_bf16_like_pytorchs_layers():
    """A bias added in fp32 would turn the layer's output to fp32 where PyTorch's own layer gives bf16."""
    x = torch.randn(1, 8, 4, 4)
    for layer in (DownConv(8, 4, 4, stride=2, padding=1), UpConv(8, 4, 4, stride=2, padding=1)):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert layer(x).dtype == torch.bfloat16


def test_plain_convolutions_replace_both_matmul_layers():
    net = nn.Sequential(DownConv(4, 4, 4, stride=2, padding=1), UpConv(4, 4, 4, stride=2, padding=1))
    assert [type(m) for m in with_plain_convolutions(net)] == [nn.Conv2d, nn.ConvTranspose2d]
