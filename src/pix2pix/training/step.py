"""The networks in training: G and D with their optimizers, schedules and gradient scaler, and one D step then
one G step."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

from pix2pix.config import RunConfig
from pix2pix.devices import AUTOCAST_DTYPES, training_layouts
from pix2pix.losses import discriminator_loss, generator_loss
from pix2pix.models import build_discriminator, build_generator, with_cpu_kernels
from pix2pix.training.processes import ONE_PROCESS, Processes


class Diverged(RuntimeError):
    """Training produced a NaN or an infinity; what was saved before it is kept, nothing after it is saved."""

    def __init__(self, where: str) -> None:
        super().__init__(f"training diverged: {where}; the checkpoints and generator saved before are kept; "
                         "train again with a lower `lr`")


def lr_factor(epoch: int, n_epochs: int, n_epochs_decay: int) -> float:
    """Constant for `n_epochs`, then linear decay towards zero over `n_epochs_decay` more (the paper's schedule)."""
    return 1.0 - max(0, epoch + 1 - n_epochs) / (n_epochs_decay + 1)


class Networks(nn.Module):
    """G and D with what trains them; `step` is one training iteration.

    With several processes, G and D train through their DistributedDataParallel replicas, which average the
    gradients over the global batch; `generator` and `discriminator` stay the plain networks that are saved
    and translated with (in one process, the replicas are those same networks; on CPU, G trains through a copy
    running `with_cpu_kernels`, which holds G's own parameters).
    """

    def __init__(self, config: RunConfig, device: torch.device, processes: Processes = ONE_PROCESS) -> None:
        super().__init__()
        t = config.train
        self.gan_mode, self.lambda_l1 = t.gan_mode, t.lambda_l1
        self.conditional = config.model.conditional
        self.device = device
        self.layouts = training_layouts(device, config.machine.memory_format)
        self.generator = build_generator(config).to(device, memory_format=self.layouts.weights)
        self.discriminator = (build_discriminator(config).to(device, memory_format=self.layouts.weights)
                              if t.gan_mode != "none" else None)
        sync = config.model.norm == "syncbatch"
        fast = with_cpu_kernels(self.generator) if device.type == "cpu" else self.generator
        self.generator_replica = processes.replicate(fast, device, sync)
        self.discriminator_replica = (processes.replicate(self.discriminator, device, sync)
                                      if self.discriminator is not None else None)
        self.optimizers = {"generator": self._adam(self.generator, t)}
        if self.discriminator is not None:
            self.optimizers["discriminator"] = self._adam(self.discriminator, t)
        schedule = lambda epoch: lr_factor(epoch, t.n_epochs, t.n_epochs_decay)  # noqa: E731
        self.schedulers = {name: torch.optim.lr_scheduler.LambdaLR(opt, schedule)
                           for name, opt in self.optimizers.items()}
        self.precision = t.precision
        self.scaler = torch.amp.GradScaler(device.type, enabled=t.precision == "fp16")

    def autocast(self) -> contextlib.AbstractContextManager:
        """Forward passes in bf16/fp16 when asked; losses are always computed in fp32."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=AUTOCAST_DTYPES[self.precision])

    def _adam(self, net: nn.Module, t) -> torch.optim.Adam:
        """The fused kernel updates all parameters in one pass: on CPU it cuts Adam's share of a paper-default
        step from about a fifth to a few percent, with results within float rounding of the loop version."""
        fused = self.device.type in ("cpu", "cuda")
        return torch.optim.Adam(net.parameters(), lr=t.lr, betas=(t.beta1, t.beta2), fused=fused)

    @property
    def lr(self) -> float:
        return self.optimizers["generator"].param_groups[0]["lr"]

    def pair(self, source: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        """What D judges, in D's layout: <input, output> concatenated (cGAN), or the output alone (unconditional
        GAN)."""
        judged = torch.cat([source, output], dim=1) if self.conditional else output
        return judged.contiguous(memory_format=self.layouts.discriminator)

    def step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """One D step on a real and a fake pair, then one G step; returns the detached loss terms."""
        source = batch["input"].to(self.device, non_blocking=True, memory_format=self.layouts.generator)
        target = batch["target"].to(self.device, non_blocking=True, memory_format=self.layouts.generator)
        with self.autocast():
            fake = self.generator_replica(source)
        terms = self._discriminator_step(source, target, fake) if self.discriminator is not None else {}
        terms.update(self._generator_step(source, target, fake))
        self.scaler.update()
        return {name: value.detach() for name, value in terms.items()}

    def _discriminator_step(self, source, target, fake) -> dict[str, torch.Tensor]:
        with self.autocast():
            real_logits = self.discriminator_replica(self.pair(source, target))
            fake_logits = self.discriminator_replica(self.pair(source, fake.detach()))
        terms = discriminator_loss(real_logits.float(), fake_logits.float(), self.gan_mode)
        self._optimize("discriminator", terms["D"])
        return terms

    def _generator_step(self, source, target, fake) -> dict[str, torch.Tensor]:
        """G's step judges the fake with the plain D, frozen: D's replica would wait for gradients that D does not
        get here."""
        fake_logits = None
        if self.discriminator is not None:
            self.discriminator.requires_grad_(False)
            with self.autocast():
                fake_logits = self.discriminator(self.pair(source, fake)).float()
        terms = generator_loss(fake_logits, fake.float(), target, self.gan_mode, self.lambda_l1)
        self._optimize("generator", terms["G"])
        if self.discriminator is not None:
            self.discriminator.requires_grad_(True)
        return terms

    def _optimize(self, name: str, loss: torch.Tensor) -> None:
        """Backward and step; with fp16 the loss is scaled so small gradients survive, and steps with
        overflowed gradients are skipped."""
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)

    def non_finite_weights(self) -> list[str]:
        """Names of the parameters and buffers of G and D holding a NaN or an infinity; one sync when none do."""
        nets = {"generator": self.generator, "discriminator": self.discriminator}
        tensors = {f"{net}.{name}": value for net, module in nets.items() if module is not None
                   for name, value in module.state_dict().items() if value.is_floating_point()}
        if bool(torch.stack([torch.isfinite(t).all() for t in tensors.values()]).all()):
            return []
        return [name for name, value in tensors.items() if not bool(torch.isfinite(value).all())]

    def end_epoch(self) -> None:
        for scheduler in self.schedulers.values():
            scheduler.step()

    def training_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"generator": self.generator.state_dict()}
        if self.discriminator is not None:
            state["discriminator"] = self.discriminator.state_dict()
        for name in self.optimizers:
            state[f"optimizer_{name}"] = self.optimizers[name].state_dict()
            state[f"scheduler_{name}"] = self.schedulers[name].state_dict()
        if self.scaler.is_enabled():
            state["grad_scaler"] = self.scaler.state_dict()
        return state

    def load_training_state(self, state: dict[str, Any]) -> None:
        self.generator.load_state_dict(state["generator"])
        if self.discriminator is not None:
            self.discriminator.load_state_dict(state["discriminator"])
        for name in self.optimizers:
            self.optimizers[name].load_state_dict(state[f"optimizer_{name}"])
            match_parameter_layouts(self.optimizers[name])
            self.schedulers[name].load_state_dict(state[f"scheduler_{name}"])
        if self.scaler.is_enabled() and "grad_scaler" in state:  # none in a run resumed into fp16 from fp32 or bf16
            self.scaler.load_state_dict(state["grad_scaler"])


def match_parameter_layouts(optimizer: torch.optim.Optimizer) -> None:
    """Gives each optimizer state tensor its parameter's memory layout. A checkpoint keeps the layout it trained in
    (channels_last weights on CUDA, NCHW on CPU), and PyTorch's fused Adam on CPU updates wrongly when a state's
    layout differs from its parameter's."""
    for param, param_state in optimizer.state.items():
        for key, value in param_state.items():
            if torch.is_tensor(value) and value.shape == param.shape and value.stride() != param.stride():
                param_state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)
