"""The matmul form of the transposed convolution matches PyTorch's, values and gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pix2pix.models.layers import MATMUL_MAX_PIXELS, UpConv


@pytest.mark.parametrize("height, width, bias", [(1, 1, True), (2, 3, False), (4, 4, True), (16, 16, False)])
def test_upconv_matmul_path_equals_conv_transpose(height, width, bias):
    assert height * width <= MATMUL_MAX_PIXELS
    torch.manual_seed(0)
    fast = UpConv(24, 8, 4, stride=2, padding=1, bias=bias)
    reference = nn.ConvTranspose2d(24, 8, 4, stride=2, padding=1, bias=bias)
    reference.load_state_dict(fast.state_dict())
    x = torch.randn(2, 24, height, width, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    out, expected = fast(x), reference(x_ref)
    assert out.shape == expected.shape == (2, 8, 2 * height, 2 * width)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    grad = torch.randn_like(out)
    out.backward(grad)
    expected.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast.weight.grad, reference.weight.grad, atol=1e-4, rtol=1e-5)


def test_upconv_takes_pytorchs_path_for_large_inputs(monkeypatch):
    calls = []
    monkeypatch.setattr("pix2pix.models.layers.transposed_conv_as_matmul", lambda *a: calls.append(a))
    layer = UpConv(4, 2, 4, stride=2, padding=1)
    assert layer(torch.randn(1, 4, 17, 16)).shape == (1, 2, 34, 32)
    assert calls == []
