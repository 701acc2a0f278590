"""The objective of the paper: a (conditional) GAN term plus lambda times L1 to the target."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gan_loss(logits: torch.Tensor, real: bool, mode: str) -> torch.Tensor:
    """How far D's patch logits are from saying `real`: BCE on logits (vanilla) or least squares (lsgan)."""
    target = torch.full_like(logits, 1.0 if real else 0.0)
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(logits, target)
    if mode == "lsgan":
        return F.mse_loss(logits, target)
    raise ValueError(f"no GAN loss for mode {mode!r}")


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, mode: str) -> dict[str, torch.Tensor]:
    """D's terms; the total is halved, as in the paper, to slow D relative to G."""
    real = gan_loss(real_logits, True, mode)
    fake = gan_loss(fake_logits, False, mode)
    return {"D_real": real, "D_fake": fake, "D": 0.5 * (real + fake)}


def generator_loss(fake_logits: torch.Tensor | None, fake: torch.Tensor, target: torch.Tensor, mode: str,
                   lambda_l1: float) -> dict[str, torch.Tensor]:
    """G's terms: fool D (unless mode is 'none') plus lambda * L1 (unless lambda is 0)."""
    terms: dict[str, torch.Tensor] = {}
    total = fake.new_zeros(())
    if mode != "none":
        terms["G_GAN"] = gan_loss(fake_logits, True, mode)
        total = total + terms["G_GAN"]
    if lambda_l1 > 0:
        terms["G_L1"] = F.l1_loss(fake, target)
        total = total + lambda_l1 * terms["G_L1"]
    terms["G"] = total
    return terms
