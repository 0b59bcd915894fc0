"""Layers with hand-written forward and backward passes (see :mod:`minigan.nn.layer`)."""
from . import init
from .activations import LeakyReLU, ReLU, Sigmoid, Tanh
from .batchnorm import BatchNorm
from .conditioning import LabelJoin, LabelProjection, is_conditional, set_labels, takes_labels
from .conv import Conv2D, Conv2DTranspose
from .dense import Dense
from .latent import DiscreteCode
from .layer import DeviceError, Layer, ShapeError
from .misc import Dropout, Flatten, Reshape
from .sequential import Sequential
from .spectralnorm import SpectralNorm

__all__ = ["Layer", "ShapeError", "DeviceError", "Dense", "Conv2D", "Conv2DTranspose", "BatchNorm", "ReLU",
           "LeakyReLU", "Tanh", "Sigmoid", "Dropout", "Flatten", "Reshape", "Sequential", "SpectralNorm",
           "LabelJoin", "LabelProjection", "DiscreteCode", "set_labels", "is_conditional", "takes_labels",
           "init"]
