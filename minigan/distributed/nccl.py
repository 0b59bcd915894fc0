"""NCCL between GPUs, through CuPy's ``cupy.cuda.nccl``, bootstrapped over MPI.

Rank 0 makes NCCL's unique id and broadcasts it over MPI (:class:`MPIComm`); every
process then joins the NCCL communicator with it, on the GPU of its rank within its
node.  A collective is queued on a CUDA stream and waited for by polling the stream
against the clock, so a process that died makes the others raise
:class:`~minigan.distributed.comm.CommTimeout` (after aborting the NCCL communicator)
instead of spinning in the GPU for ever.

``nccl``, ``stream`` and ``bootstrap`` can be given: the tests run this class without a
GPU against a stand-in NCCL module working on host memory (``tests/distributed``).
"""
from __future__ import annotations

import time

import numpy as np

from .comm import Communicator, default_timeout

NAP = 2e-5


def _ptr(a) -> int:
    """The address of a contiguous array's first element: CuPy's device pointer, or a host one."""
    data = getattr(a, "data", None)
    return data.ptr if hasattr(data, "ptr") else a.ctypes.data


def local_rank(bootstrap) -> int:
    """This process's rank among the processes of its node (which GPU it takes)."""
    comm = getattr(bootstrap, "comm", None)
    if comm is None:
        return bootstrap.rank
    MPI = bootstrap.MPI
    node = comm.Split_type(MPI.COMM_TYPE_SHARED, bootstrap.rank)
    try:
        return node.Get_rank()
    finally:
        node.Free()


class NCCLComm(Communicator):
    """The GPUs of the processes of ``bootstrap`` (an :class:`MPIComm` by default), one each."""

    name = "NCCL"

    def __init__(self, bootstrap=None, timeout: float | None = None, nccl=None, stream=None,
                 select_device: bool = True):
        if nccl is None:
            from cupy.cuda import nccl  # noqa: PLC0415
        if bootstrap is None:
            from .mpi import MPIComm  # noqa: PLC0415

            bootstrap = MPIComm(timeout=timeout)
        self.nccl, self.bootstrap = nccl, bootstrap
        self.rank, self.size = bootstrap.rank, bootstrap.size
        self.timeout = default_timeout() if timeout is None else float(timeout)
        if select_device:
            import cupy  # noqa: PLC0415

            cupy.cuda.Device(local_rank(bootstrap) % cupy.cuda.runtime.getDeviceCount()).use()
        if stream is None:
            import cupy  # noqa: PLC0415

            stream = cupy.cuda.Stream(non_blocking=True)
        self.stream = stream
        uid = np.array(nccl.get_unique_id(), np.int8).tobytes() if self.rank == 0 else None
        uid = tuple(int(v) for v in np.frombuffer(bootstrap.bcast_bytes(uid, 0), np.int8))
        self.comm = nccl.NcclCommunicator(self.size, uid, self.rank)
        self._types = {np.dtype(np.float32): nccl.NCCL_FLOAT32, np.dtype(np.float64): nccl.NCCL_FLOAT64,
                       np.dtype(np.int64): nccl.NCCL_INT64, np.dtype(np.int32): nccl.NCCL_INT32,
                       np.dtype(np.uint8): nccl.NCCL_UINT8}

    def _type(self, buf):
        try:
            return self._types[np.dtype(buf.dtype)]
        except KeyError:
            raise TypeError(f"NCCLComm: no NCCL type for {buf.dtype}") from None

    def _stream_ptr(self) -> int:
        return getattr(self.stream, "ptr", 0)

    def _wait(self, what):
        """Wait for the stream's work, looking at the clock; abort NCCL on time-out."""
        deadline = time.monotonic() + self.timeout
        while not getattr(self.stream, "done", True):
            if time.monotonic() > deadline:
                self.comm.abort()
                raise self._timed_out(what)
            time.sleep(NAP)

    def _after_compute(self):
        """Order the collective after the work queued on the current stream (the gradients)."""
        record = getattr(self.stream, "wait_event", None)
        if record is not None:
            import cupy  # noqa: PLC0415

            self.stream.wait_event(cupy.cuda.get_current_stream().record())

    def allreduce(self, buf):
        if not buf.flags.c_contiguous:
            raise ValueError("NCCLComm: buffers must be contiguous")
        self._after_compute()
        p = _ptr(buf)
        self.comm.allReduce(p, p, buf.size, self._type(buf), self.nccl.NCCL_SUM, self._stream_ptr())
        self._wait(f"allreduce of {buf.size} values ({buf.nbytes / 1e6:.3g} MB)")
        return buf

    def broadcast(self, buf, root: int = 0):
        if not buf.flags.c_contiguous:
            raise ValueError("NCCLComm: buffers must be contiguous")
        self._after_compute()
        self.comm.bcast(_ptr(buf), buf.size, self._type(buf), root, self._stream_ptr())
        self._wait(f"broadcast of {buf.size} values from rank {root}")
        return buf

    def barrier(self):
        self.bootstrap.barrier()

    def abort(self, code: int = 1):
        try:
            self.comm.abort()
        finally:
            self.bootstrap.abort(code)
