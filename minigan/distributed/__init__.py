"""Data-parallel training over several processes (DESIGN.md, section 4b).

Every process holds the whole model and a share of each global batch; gradients are
summed by one allreduce of each network's flat gradient buffer a step; BatchNorm's
statistics are summed across processes; rank 0 alone writes.  N processes compute what
one process computes on the whole batch, to float32 round-off.

Transports (:class:`Communicator`): :class:`Single` (one process, no dependency),
:class:`MPIComm` (mpi4py, CPUs; ``pip install 'minigan[mpi]'``), :class:`NCCLComm`
(``cupy.cuda.nccl`` between GPUs, bootstrapped over MPI).  Only NumPy is imported here;
mpi4py and CuPy when a transport is made.  See docs/distributed.md.
"""
from __future__ import annotations

from .comm import CommTimeout, Communicator, LocalGroup, Single, default_timeout
from .parallel import DataParallel, SyncStats

__all__ = ["CommTimeout", "Communicator", "DataParallel", "LocalGroup", "MPIComm", "NCCLComm", "Single",
           "SyncStats", "default_timeout", "world"]


def __getattr__(name):
    if name == "MPIComm":
        from .mpi import MPIComm

        return MPIComm
    if name == "NCCLComm":
        from .nccl import NCCLComm

        return NCCLComm
    raise AttributeError(name)


def world(device: str = "cpu", timeout: float | None = None) -> Communicator:
    """The communicator of the processes mpiexec started: NCCL between GPUs for
    ``device="gpu"``, else MPI; :class:`Single` when this process was not started by
    mpiexec (and mpi4py is not needed)."""
    from .mpi import MPIComm, launched_by_mpi

    if not launched_by_mpi():
        return Single(timeout)
    comm = MPIComm(timeout=timeout)
    if device == "gpu" and comm.size > 1:
        from .nccl import NCCLComm

        return NCCLComm(bootstrap=comm, timeout=timeout)
    return comm
