"""MPI between processes, through mpi4py (``pip install minigan[mpi]``: mpi4py and the
``mpich`` wheel, whose ``mpiexec`` starts the processes).

Every collective is the non-blocking MPI call followed by a wait that looks at the clock:
MPI's blocking calls wait for ever on a process that died without taking the job with
it, this one raises :class:`~minigan.distributed.comm.CommTimeout` after ``timeout``
seconds.  Device arrays (CuPy) go through host copies: the pip MPICH is not CUDA-aware
(several GPUs use :mod:`minigan.distributed.nccl`).
"""
from __future__ import annotations

import sys
import time

import numpy as np

from .comm import Communicator, default_timeout

SPIN = 2000  # polls of a request before the wait starts to sleep between polls
NAP = 5e-5  # seconds between polls after that
ABORT_GRACE_S = 0.5  # for mpiexec to forward the last output before an abort ends the job


def mpi():
    """mpi4py's ``MPI``, or an ImportError that says how to install it."""
    try:
        from mpi4py import MPI  # noqa: PLC0415
    except ImportError as e:
        raise ImportError("--distributed needs mpi4py and an MPI runtime: pip install 'minigan[mpi]' "
                          "(mpi4py and the mpich wheel); see docs/distributed.md") from e
    return MPI


def launched_by_mpi() -> bool:
    """Whether this process was started by mpiexec (its environment says so): checked
    before mpi4py is imported, which initialises MPI."""
    import os  # noqa: PLC0415

    return any(k in os.environ for k in ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_RANK",
                                         "MPI_LOCALRANKID"))


class MPIComm(Communicator):
    """The processes of an MPI communicator (default ``COMM_WORLD``)."""

    name = "MPI"

    def __init__(self, comm=None, timeout: float | None = None):
        MPI = self.MPI = mpi()
        self.comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.timeout = default_timeout() if timeout is None else float(timeout)

    def _wait(self, req, what):
        deadline = time.monotonic() + self.timeout
        polls = 0
        while not req.Test():
            polls += 1
            if polls > SPIN:
                if time.monotonic() > deadline:
                    raise self._timed_out(what)
                time.sleep(NAP)

    @staticmethod
    def _host(buf):
        """(host array, whether it is a copy) of a contiguous ``buf``."""
        if isinstance(buf, np.ndarray):
            if not buf.flags.c_contiguous:
                raise ValueError("MPIComm: buffers must be contiguous")
            return buf, False
        return buf.get(), True  # CuPy: through the host

    def allreduce(self, buf):
        host, copied = self._host(buf)
        self._wait(self.comm.Iallreduce(self.MPI.IN_PLACE, host, op=self.MPI.SUM),
                   f"allreduce of {host.size} values ({host.nbytes / 1e6:.3g} MB)")
        if copied:
            buf.set(host)
        return buf

    def broadcast(self, buf, root: int = 0):
        host, copied = self._host(buf)
        self._wait(self.comm.Ibcast(host, root=root), f"broadcast of {host.size} values from rank {root}")
        if copied:
            buf.set(host)
        return buf

    def barrier(self):
        self._wait(self.comm.Ibarrier(), "barrier")

    def abort(self, code: int = 1):
        # mpiexec forwards each process's output through a pipe; aborting at once ended the
        # job before the time-out's message was through in about one run in six
        sys.stdout.flush()
        sys.stderr.flush()
        time.sleep(ABORT_GRACE_S)
        self.comm.Abort(code)
