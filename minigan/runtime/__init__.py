"""Where code runs: devices (the array module, transfers, the seeded generator), the
kernel registry and one kernel table per device, BLAS helpers, counter-based random
numbers and the CPU's tuning.  Nothing here imports the layers, the trainer or the data."""
from .arrays import get_xp, to_numpy
from .devices import Device, device, device_of, gpu_available, manual_seed, to_device
from .registry import reference

__all__ = ["Device", "device", "device_of", "get_xp", "to_numpy", "to_device", "gpu_available",
           "manual_seed", "reference"]
