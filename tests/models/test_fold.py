"""Batch norm folded into the convolutions: the same eval-mode outputs, one layer fewer, the trained model intact."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pix2pix.models import UNetGenerator
from pix2pix.models.fold import fold_batch_norm
from tests.models.nets import trained_looking


@pytest.mark.parametrize("size", [32, 96])  # a 1x1 bottleneck, and 3x3 with padding at every depth
def test_folded_generator_equals_the_original_in_eval_mode(size):
    net = trained_looking(UNetGenerator(3, 3, 5, ngf=8)).eval()
    x = torch.rand(2, 3, size, size) * 2 - 1
    with torch.no_grad():
        expected = net(x)
        folded = fold_batch_norm(net)(x)
    torch.testing.assert_close(folded, expected, atol=1e-5, rtol=1e-4)
    assert (expected - net.train()(x)).abs().max() > 1e-2  # batch statistics would differ: the check has teeth


def test_folding_removes_every_batch_norm_and_dropout_and_leaves_the_original_alone():
    net = trained_looking(UNetGenerator(3, 3, 5, ngf=8)).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    folded = fold_batch_norm(net)
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.Dropout)) for m in folded.modules())
    assert not folded.training and not any(p.requires_grad for p in folded.parameters())
    assert net.training and sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 3 + 4
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(m.bias is None for m in net.modules() if isinstance(m, nn.Conv2d) and m.out_channels == 16)


def test_instance_norm_is_left_in_place():
    net = UNetGenerator(3, 3, 5, ngf=8, norm="instance").eval()
    folded = fold_batch_norm(net)
    assert sum(isinstance(m, nn.InstanceNorm2d) for m in folded.modules()) == 3 + 4
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), net(x))
