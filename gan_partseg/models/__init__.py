"""Model classes: the StyleGAN2 generator / discriminator, few-shot heads and the U-Net."""

from gan_partseg.models.stylegan2 import (
    StyleGAN2Config,
    StyleGAN2Discriminator,
    StyleGAN2DiscriminatorConfig,
    StyleGAN2Generator,
    StyleGAN2Output,
)

__all__ = [
    "StyleGAN2Config",
    "StyleGAN2Discriminator",
    "StyleGAN2DiscriminatorConfig",
    "StyleGAN2Generator",
    "StyleGAN2Output",
]
