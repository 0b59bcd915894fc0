"""Convolution layers and the engines that run them (see :mod:`.layers`).

* :mod:`.reference`: the textbook engine, im2col + one GEMM + col2im;
* :mod:`.im2col`: the same maps with the device's kernels, per-sample GEMMs and kept buffers;
* :mod:`.spectral`: the same maps as products in the DFT domain;
* :mod:`.geometry`: the shapes and padding rules they share.
"""
from .geometry import ConvGeom, same_padding
from .layers import ENGINES, Conv2D, Conv2DTranspose, ConvContext, choose_engine

__all__ = ["Conv2D", "Conv2DTranspose", "ConvGeom", "ConvContext", "ENGINES", "choose_engine",
           "same_padding"]
