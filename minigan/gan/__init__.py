"""GAN model builders and the trainer."""
from .mixture_models import Pack, build_mixture, mixture_discriminator, mixture_generator
from .models import build, dcgan_discriminator, dcgan_generator, mlp_discriminator, mlp_generator

__all__ = ["build", "mlp_generator", "mlp_discriminator", "dcgan_generator", "dcgan_discriminator",
           "build_mixture", "mixture_generator", "mixture_discriminator", "Pack"]
