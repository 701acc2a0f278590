"""The objective (GAN term + lambda * L1), the paper's loss ablations, and one D step then one G step."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from pix2pix.config import OBJECTIVES, RunConfig
from pix2pix.losses import discriminator_loss, gan_loss, generator_loss
from pix2pix.models import build_discriminator
from pix2pix.training.step import Networks

SMALL = {"crop_size": 32, "load_size": 36, "ngf": 4, "ndf": 4}
CPU = torch.device("cpu")

EXPECTED_G_TERMS = {
    "l1": {"G_L1", "G"},
    "gan": {"G_GAN", "G"},
    "cgan": {"G_GAN", "G"},
    "l1+gan": {"G_GAN", "G_L1", "G"},
    "l1+cgan": {"G_GAN", "G_L1", "G"},
}


def _batch(size: int = 32, batch: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {"input": torch.rand(batch, 3, size, size, generator=generator) * 2 - 1,
            "target": torch.rand(batch, 3, size, size, generator=generator) * 2 - 1}


def _trainer(settings: dict, seed: int = 0) -> Networks:
    torch.manual_seed(seed)
    return Networks(RunConfig().updated({**SMALL, **settings}), CPU)


# --- the GAN term ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("real", [True, False])
def test_vanilla_gan_loss_is_bce_with_logits(real):
    logits = torch.tensor([[-3.0, -0.5], [0.0, 2.0]])
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    expected = F.binary_cross_entropy_with_logits(logits, target)
    assert torch.allclose(gan_loss(logits, real, "vanilla"), expected)
    by_hand = -torch.log(torch.sigmoid(logits if real else -logits)).mean()
    assert torch.allclose(gan_loss(logits, real, "vanilla"), by_hand)


def test_lsgan_loss_is_mse_against_one_or_zero():
    logits = torch.tensor([-1.0, 0.5, 2.0, 3.0])
    assert torch.allclose(gan_loss(logits, True, "lsgan"), ((logits - 1) ** 2).mean())
    assert torch.allclose(gan_loss(logits, False, "lsgan"), (logits ** 2).mean())


def test_gan_loss_of_a_confident_correct_discriminator_is_small():
    assert gan_loss(torch.full((4,), 20.0), True, "vanilla") < 1e-6
    assert gan_loss(torch.full((4,), -20.0), True, "vanilla") > 19


def test_unknown_gan_mode_raises():
    with pytest.raises(ValueError, match="bogus"):
        gan_loss(torch.zeros(2), True, "bogus")


@pytest.mark.parametrize("mode", ["vanilla", "lsgan"])
def test_discriminator_loss_halves_the_sum(mode):
    real, fake = torch.randn(2, 1, 6, 6), torch.randn(2, 1, 6, 6)
    terms = discriminator_loss(real, fake, mode)
    assert set(terms) == {"D_real", "D_fake", "D"}
    assert torch.allclose(terms["D_real"], gan_loss(real, True, mode))
    assert torch.allclose(terms["D_fake"], gan_loss(fake, False, mode))
    assert torch.allclose(terms["D"], 0.5 * (terms["D_real"] + terms["D_fake"]))


# --- the objective presets (Table 1 of the paper) -------------------------------------------------------------


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_objective_preset_names_itself_back(name):
    config = RunConfig().updated(OBJECTIVES[name])
    assert config.objective == name


def test_default_objective_is_l1_plus_cgan_and_others_are_custom():
    assert RunConfig().objective == "l1+cgan"
    assert RunConfig().updated({"gan_mode": "lsgan"}).objective == "custom"
    assert RunConfig().updated({"lambda_l1": 10.0}).objective == "custom"


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_generator_loss_terms_per_objective(name):
    config = RunConfig().updated(OBJECTIVES[name])
    t = config.train
    torch.manual_seed(1)
    fake, target = torch.rand(2, 3, 8, 8) * 2 - 1, torch.rand(2, 3, 8, 8) * 2 - 1
    logits = None if t.gan_mode == "none" else torch.randn(2, 1, 2, 2)
    terms = generator_loss(logits, fake, target, t.gan_mode, t.lambda_l1)
    assert set(terms) == EXPECTED_G_TERMS[name]
    l1 = (fake - target).abs().mean()
    gan = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits)) if logits is not None else 0.0
    if "G_L1" in terms:
        assert t.lambda_l1 == 100.0
        assert torch.allclose(terms["G_L1"], l1)
    if "G_GAN" in terms:
        assert torch.allclose(terms["G_GAN"], gan)
    assert torch.allclose(terms["G"], torch.as_tensor(terms.get("G_GAN", 0.0) + t.lambda_l1 * terms.get("G_L1", 0.0)))
    expected = (gan if "G_GAN" in terms else 0.0) + (t.lambda_l1 * l1 if "G_L1" in terms else 0.0)
    assert torch.allclose(terms["G"], torch.as_tensor(expected))


def test_generator_loss_is_differentiable_through_both_terms():
    fake = torch.zeros(1, 3, 4, 4, requires_grad=True)
    logits = fake.mean().view(1, 1, 1, 1) * 3
    terms = generator_loss(logits, fake, torch.ones(1, 3, 4, 4), "vanilla", 100.0)
    terms["G"].backward()
    assert fake.grad is not None and (fake.grad < 0).all()  # both terms pull the output up


@pytest.mark.parametrize("name", ["gan", "l1+gan"])
def test_unconditional_presets_have_a_discriminator_of_the_output_only(name):
    config = RunConfig().updated({**OBJECTIVES[name], "ndf": 4})
    assert config.model.conditional is False
    first = next(m for m in build_discriminator(config).modules() if isinstance(m, torch.nn.Conv2d))
    assert first.in_channels == config.channels[1]


@pytest.mark.parametrize("name", ["cgan", "l1+cgan"])
def test_conditional_presets_have_a_discriminator_of_the_pair(name):
    config = RunConfig().updated({**OBJECTIVES[name], "ndf": 4})
    first = next(m for m in build_discriminator(config).modules() if isinstance(m, torch.nn.Conv2d))
    assert first.in_channels == sum(config.channels)


def test_l1_objective_builds_no_discriminator():
    trainer = _trainer(OBJECTIVES["l1"])
    assert trainer.discriminator is None
    assert set(trainer.optimizers) == {"generator"}
    assert set(trainer.training_state()) == {"generator", "optimizer_generator", "scheduler_generator"}


# --- one training step ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_step_runs_for_each_objective(name):
    trainer = _trainer(OBJECTIVES[name])
    terms = trainer.step(_batch())
    expected = set(EXPECTED_G_TERMS[name])
    if name != "l1":
        expected |= {"D_real", "D_fake", "D"}
    assert set(terms) == expected
    for value in terms.values():
        assert value.dim() == 0 and torch.isfinite(value) and not value.requires_grad


def test_pair_is_concatenated_only_when_conditional():
    source, output = torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4)
    assert _trainer(OBJECTIVES["cgan"]).pair(source, output).shape == (1, 6, 4, 4)
    assert torch.equal(_trainer(OBJECTIVES["gan"]).pair(source, output), output)


def _flat(net: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in net.parameters()])


@pytest.mark.parametrize("settings", [{}, {"gan_mode": "lsgan"}, OBJECTIVES["gan"]])
def test_step_updates_both_nets_and_restores_requires_grad(settings):
    trainer = _trainer(settings)
    g_before, d_before = _flat(trainer.generator).clone(), _flat(trainer.discriminator).clone()
    trainer.step(_batch())
    assert not torch.equal(_flat(trainer.generator), g_before)
    assert not torch.equal(_flat(trainer.discriminator), d_before)
    assert all(p.requires_grad for p in trainer.discriminator.parameters())
    assert all(p.requires_grad for p in trainer.generator.parameters())


def test_l1_step_updates_the_generator():
    trainer = _trainer(OBJECTIVES["l1"])
    before = _flat(trainer.generator).clone()
    trainer.step(_batch())
    assert not torch.equal(_flat(trainer.generator), before)


def test_d_step_then_g_step_against_the_updated_discriminator():
    """D learns from the initial G's output; G's GAN term is then judged by the updated D, and neither
    net's gradients leak into the other's."""
    trainer = _trainer({"dropout": 0.0})
    g0, d0 = copy.deepcopy(trainer.generator), copy.deepcopy(trainer.discriminator)
    batch = _batch()
    source, target = batch["input"], batch["target"]
    terms = trainer.step(batch)

    # D's step: the initial D on the real pair and on the initial G's output
    fake0 = g0(source)
    expected_d = discriminator_loss(d0(torch.cat([source, target], 1)),
                                    d0(torch.cat([source, fake0.detach()], 1)), "vanilla")
    assert torch.allclose(terms["D"], expected_d["D"], atol=1e-6)
    expected_d["D"].backward()
    for p, p0 in zip(trainer.discriminator.parameters(), d0.parameters()):
        assert torch.allclose(p.grad, p0.grad, atol=1e-6, rtol=1e-4)  # no G-loss gradient in D

    # G's step: the updated D judges the initial G's output
    d1 = copy.deepcopy(trainer.discriminator)
    expected_g = generator_loss(d1(torch.cat([source, fake0], 1)), fake0, target, "vanilla", 100.0)
    assert torch.allclose(terms["G_GAN"], expected_g["G_GAN"], atol=1e-6)
    assert not torch.allclose(terms["G_GAN"], gan_loss(d0(torch.cat([source, fake0], 1)), True, "vanilla"),
                              atol=1e-6)
    assert torch.allclose(terms["G"], expected_g["G"], atol=1e-5)
    g0.zero_grad()
    expected_g["G"].backward()
    for p, p0 in zip(trainer.generator.parameters(), g0.parameters()):
        assert torch.allclose(p.grad, p0.grad, atol=1e-6, rtol=1e-4)  # no D-loss gradient in G


def test_steps_are_reproducible_from_the_seed():
    a = _trainer({}, seed=3).step(_batch())
    b = _trainer({}, seed=3).step(_batch())
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
