"""pix2pix: paired image-to-image translation with conditional GANs (Isola et al., CVPR 2017)."""

from pix2pix.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from pix2pix.inference import Translator

__all__ = ["DataConfig", "ModelConfig", "RunConfig", "TrainConfig", "Translator"]
__version__ = "0.1.0"
