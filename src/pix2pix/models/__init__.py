"""The paper's networks: a U-Net generator and a PatchGAN discriminator, built from a `ModelConfig`."""

from pix2pix.models import discriminator, generator
from pix2pix.models.cpu_kernels import with_cpu_kernels
from pix2pix.models.discriminator import PatchDiscriminator, receptive_field
from pix2pix.models.generator import UNetGenerator
from pix2pix.models.layers import init_weights
from pix2pix.models.modes import MODES, PaperGenerator, check_mode, in_mode

__all__ = ["PatchDiscriminator", "UNetGenerator", "build_discriminator", "build_generator", "input_problem",
           "init_weights", "receptive_field", "MODES", "PaperGenerator", "check_mode", "in_mode", "with_cpu_kernels"]


def build_generator(config) -> UNetGenerator:
    """G for a `RunConfig`, initialised from N(0, init_gain) as in the paper."""
    m = config.model
    input_nc, output_nc = config.channels
    generator = UNetGenerator(input_nc, output_nc, config.generator_depth, ngf=m.ngf, norm=m.norm,
                              dropout=m.dropout, skip_connections=m.skip_connections,
                              dropout_start=m.dropout_start, dropout_blocks=m.dropout_blocks, bias=m.generator_bias)
    return init_weights(generator, m.init_gain)


def build_discriminator(config) -> PatchDiscriminator:
    """D for a `RunConfig`: it sees the input beside the output unless the GAN is unconditional."""
    m = config.model
    input_nc, output_nc = config.channels
    in_channels = output_nc + (input_nc if m.conditional else 0)
    return init_weights(PatchDiscriminator(in_channels, patch=m.patch, ndf=m.ndf, norm=m.norm), m.init_gain)


def input_problem(config, height: int, width: int) -> str | None:
    """Why the networks of a `RunConfig` cannot train on height x width images, or None (D only where there is one)."""
    problem = generator.input_problem(config.generator_depth, height, width)
    if problem is None and config.train.gan_mode != "none":
        judged = discriminator.input_problem(config.model.patch, height, width)
        problem = judged and f"D cannot judge it: {judged}"
    return problem
