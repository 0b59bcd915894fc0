"""GAN model builders and the trainer."""
from .models import build, dcgan_discriminator, dcgan_generator, mlp_discriminator, mlp_generator

__all__ = ["build", "mlp_generator", "mlp_discriminator", "dcgan_generator", "dcgan_discriminator"]
