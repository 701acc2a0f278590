"""`with_cpu_kernels`: the matmul forms of the convolution and the transposed convolution give PyTorch's values and
gradients on both sides of their thresholds, in fp32 and bf16, and the network they are applied to stays plain."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pix2pix.models import UNetGenerator, with_cpu_kernels
from pix2pix.models.cpu_kernels import (
    CONV_MATMUL_MAX_COLUMNS,
    MATMUL_MAX_COLUMNS,
    MatmulConv2d,
    MatmulConvTranspose2d,
    transposed_conv_as_matmul,
)

native_bf16 = pytest.mark.skipif(not torch.ops.mkldnn._is_mkldnn_bf16_supported(),
                                 reason="this CPU has no native bf16")

TOLERANCES = {torch.float32: {"atol": 1e-5, "rtol": 1e-5}, torch.bfloat16: {"atol": 2e-2, "rtol": 2e-2}}
"""fp32 sums in another order round alike; bf16 rounds each output to 8 bits of mantissa, in both layers."""


def assert_same_values_and_gradients(plain: nn.Module, x: torch.Tensor, dtype: torch.dtype,
                                     autocast: bool = False) -> torch.Tensor:
    """`with_cpu_kernels(plain)` gives `plain`'s output, input gradient and parameter gradients, in `dtype`
    (parameters converted, or under autocast as training runs); relative to the output's and gradients' scale."""
    plain = plain.to(torch.float32 if autocast else dtype)
    fast = with_cpu_kernels(plain)
    x = x.to(torch.float32 if autocast else dtype)
    results = []
    for net in (fast, plain):
        net.zero_grad()
        x_grad = x.detach().clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = net(x_grad)
        out.backward(torch.ones_like(out) / out.numel() ** 0.5)
        results.append((out, x_grad.grad, *[p.grad.clone() for p in net.parameters()]))
    out = results[0][0]
    assert out.dtype == results[1][0].dtype
    for got, expected in zip(*results, strict=True):
        scale = expected.abs().max().float()
        torch.testing.assert_close(got.float() / scale, expected.float() / scale, **TOLERANCES[dtype])
    return out


def layer_calls(monkeypatch, path: str, function) -> list:
    """Records each call of `function`, patched in at `path`."""
    calls = []
    monkeypatch.setattr(path, lambda *a, **k: calls.append(a) or function(*a, **k))
    return calls


TRANSPOSED_SHAPES = [(2, 1, 1, True), (2, 2, 3, False), (4, 8, 8, True), (1, 16, 16, False),  # matmul
                     (1, 17, 16, True), (4, 16, 16, False)]  # PyTorch's kernel
CONV_SHAPES = [(2, 2, 2, True), (1, 16, 16, False), (4, 8, 6, True), (1, 5, 7, False),  # matmul
               (1, 18, 16, True), (4, 16, 16, False)]  # PyTorch's kernel


@pytest.mark.parametrize("dtype", [torch.float32, pytest.param(torch.bfloat16, marks=native_bf16)])
@pytest.mark.parametrize("batch, height, width, bias", TRANSPOSED_SHAPES)
def test_transposed_convolution_gives_pytorchs_values_and_gradients(monkeypatch, batch, height, width, bias, dtype):
    calls = layer_calls(monkeypatch, "pix2pix.models.cpu_kernels.transposed_conv_as_matmul", transposed_conv_as_matmul)
    torch.manual_seed(0)
    out = assert_same_values_and_gradients(nn.ConvTranspose2d(24, 8, 4, stride=2, padding=1, bias=bias),
                                           torch.randn(batch, 24, height, width), dtype)
    assert out.shape == (batch, 8, 2 * height, 2 * width)
    assert bool(calls) == (batch * height * width <= MATMUL_MAX_COLUMNS)


@pytest.mark.parametrize("dtype", [torch.float32, pytest.param(torch.bfloat16, marks=native_bf16)])
@pytest.mark.parametrize("batch, height, width, bias", CONV_SHAPES)
def test_convolution_gives_pytorchs_values_and_gradients(monkeypatch, batch, height, width, bias, dtype):
    calls = layer_calls(monkeypatch, "pix2pix.models.cpu_kernels.F.unfold", F.unfold)
    torch.manual_seed(0)
    out = assert_same_values_and_gradients(nn.Conv2d(24, 8, 4, stride=2, padding=1, bias=bias),
                                           torch.randn(batch, 24, height, width), dtype)
    assert bool(calls) == (out.shape[0] * out.shape[2] * out.shape[3] <= CONV_MATMUL_MAX_COLUMNS)


@pytest.mark.parametrize("shape, matmul", [((1, 4, 16, 16), True), ((1, 4, 17, 16), False),
                                          ((4, 4, 8, 8), True), ((4, 4, 16, 16), False)])
def test_transposed_matmul_counts_the_whole_batch(monkeypatch, shape, matmul):
    """Four 16x16 inputs are as many columns as one 32x32."""
    calls = layer_calls(monkeypatch, "pix2pix.models.cpu_kernels.transposed_conv_as_matmul", transposed_conv_as_matmul)
    layer = with_cpu_kernels(nn.ConvTranspose2d(4, 2, 4, stride=2, padding=1))
    assert layer(torch.randn(shape)).shape == (shape[0], 2, 2 * shape[2], 2 * shape[3])
    assert bool(calls) == matmul


@pytest.mark.parametrize("shape, matmul", [((1, 4, 16, 16), True), ((1, 4, 18, 16), False),
                                          ((4, 4, 8, 8), True), ((4, 4, 16, 16), False)])
def test_convolution_matmul_counts_the_whole_batch(monkeypatch, shape, matmul):
    calls = layer_calls(monkeypatch, "pix2pix.models.cpu_kernels.F.unfold", F.unfold)
    layer = with_cpu_kernels(nn.Conv2d(4, 2, 4, stride=2, padding=1))
    assert layer(torch.randn(shape)).shape == (shape[0], 2, shape[2] // 2, shape[3] // 2)
    assert bool(calls) == matmul


@native_bf16
@pytest.mark.parametrize("batch, height, width", [(1, 2, 2), (4, 16, 16)])
def test_bf16_autocast_gives_pytorchs_values_gradients_and_dtype(batch, height, width):
    """A bias added in fp32 would turn the layer's output to fp32 where PyTorch's own layer gives bf16."""
    torch.manual_seed(0)
    x = torch.randn(batch, 8, height, width)
    for layer in (nn.Conv2d(8, 4, 4, stride=2, padding=1), nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1)):
        out = assert_same_values_and_gradients(layer, x, torch.bfloat16, autocast=True)
        assert out.dtype == torch.bfloat16


def test_only_plain_ungrouped_zero_padded_layers_change():
    net = nn.Sequential(nn.Conv2d(4, 4, 4, stride=2, padding=1), nn.ConvTranspose2d(4, 4, 4, stride=2, padding=1),
                        nn.Conv2d(4, 4, 3, groups=2), nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"),
                        nn.ConvTranspose2d(4, 4, 3, stride=2, output_padding=1), nn.Conv2d(4, 4, 3, padding="same"))
    kept = [type(m) for m in net[2:]]
    assert [type(m) for m in with_cpu_kernels(net)] == [MatmulConv2d, MatmulConvTranspose2d, *kept]


def test_the_network_stays_plain_and_shares_its_parameters_and_buffers():
    """Training the fast copy trains the network: same tensors under the same state_dict keys, one optimizer."""
    net = UNetGenerator(3, 3, 5, ngf=8)
    fast = with_cpu_kernels(net)
    assert {type(m) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))} == \
        {nn.Conv2d, nn.ConvTranspose2d}
    assert sum(isinstance(m, (MatmulConv2d, MatmulConvTranspose2d)) for m in fast.modules()) == 10
    assert list(fast.state_dict()) == list(net.state_dict())
    shared = fast.state_dict(keep_vars=True)
    assert all(shared[k] is v for k, v in net.state_dict(keep_vars=True).items())
    assert [id(p) for p in fast.parameters()] == [id(p) for p in net.parameters()]


@pytest.mark.parametrize("size", [32, 96])  # every inner layer on the matmul path; the outer ones on PyTorch's
def test_the_generator_trains_alike_with_and_without_the_kernels(size):
    torch.manual_seed(0)
    net = UNetGenerator(3, 3, 5, ngf=8)
    x = torch.rand(2, 3, size, size) * 2 - 1
    outputs, gradients = [], []
    for model in (with_cpu_kernels(net), net):
        net.zero_grad()
        with torch.random.fork_rng():
            torch.manual_seed(1)
            out = model(x)  # training mode: dropout and batch statistics
        out.square().mean().backward()
        outputs.append(out)
        gradients.append([p.grad.clone() for p in net.parameters()])
    torch.testing.assert_close(outputs[0], outputs[1], atol=1e-5, rtol=1e-4)
    for fast, plain in zip(*gradients, strict=True):
        torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-4)
