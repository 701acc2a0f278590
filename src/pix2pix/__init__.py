"""pix2pix: paired image-to-image translation with conditional GANs (Isola et al., CVPR 2017)."""

from pix2pix.config import DataConfig, ModelConfig, RunConfig, TrainConfig

__all__ = ["DataConfig", "ModelConfig", "RunConfig", "TrainConfig", "Translator"]
__version__ = "0.1.0"


def __getattr__(name: str):
    """`pix2pix.Translator` is imported on first use: the package's reports and configs work without torch."""
    if name == "Translator":
        from pix2pix.inference import Translator

        return Translator
    raise AttributeError(f"module 'pix2pix' has no attribute {name!r}")
