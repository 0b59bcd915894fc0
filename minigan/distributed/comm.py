"""The communicator interface of data-parallel training, and its one-process and in-process forms.

A communicator joins ``size`` processes, numbered ``rank`` 0 .. size-1.  Data-parallel
training needs four operations of it:

* ``allreduce(buf)``: every process's ``buf`` (a flat, contiguous array on its device)
  becomes the elementwise sum over all processes, in place;
* ``broadcast(buf, root)``: every ``buf`` becomes root's, in place;
* ``barrier()``: no process passes until all have reached it;
* ``timeout`` (seconds): a collective that does not finish within it (a process died,
  hangs or took another path) raises :class:`CommTimeout`, whose message says which
  operation waited and for how long, instead of waiting for ever.

:class:`Single` is the one-process communicator (every operation a no-op);
:class:`LocalGroup` joins threads of one process (a stand-in for several processes in
the tests).  :mod:`minigan.distributed.mpi` and :mod:`minigan.distributed.nccl` hold
the transports between processes.
"""
from __future__ import annotations

import os
import threading

import numpy as np

DEFAULT_TIMEOUT = 600.0  # seconds; the first step compiles kernels, which may take a minute


def default_timeout() -> float:
    """``$MINIGAN_DIST_TIMEOUT`` (seconds), else :data:`DEFAULT_TIMEOUT`."""
    v = os.environ.get("MINIGAN_DIST_TIMEOUT")
    return float(v) if v else DEFAULT_TIMEOUT


class CommTimeout(RuntimeError):
    """A collective operation did not finish in time: another process died or hangs."""


class Communicator:
    """What data-parallel training asks of a transport (see the module's docstring)."""

    rank: int = 0
    size: int = 1
    timeout: float = DEFAULT_TIMEOUT
    name = "communicator"

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def allreduce(self, buf):
        """Sum ``buf`` elementwise over all processes, in place; returns ``buf``."""
        raise NotImplementedError

    def broadcast(self, buf, root: int = 0):
        """Overwrite ``buf`` with root's ``buf``, in place; returns ``buf``."""
        raise NotImplementedError

    def barrier(self):
        raise NotImplementedError

    def broadcast_model(self, model, root: int = 0):
        """Give every process root's parameters and buffers (BatchNorm statistics) of ``model``:
        one broadcast per flat parameter buffer, one per buffer array."""
        for group in model.flat().groups:
            self.broadcast(group.params, root)
        for _, layer, key in model.named_buffers():
            self.broadcast(layer.buffers[key], root)
        return model

    def bcast_bytes(self, data: bytes | None, root: int = 0) -> bytes:
        """Root's ``data`` (a small message, e.g. NCCL's unique id) on every process: two
        broadcasts, its length and its bytes."""
        n = np.array([len(data) if self.rank == root else 0], np.int64)
        self.broadcast(n, root)
        buf = np.frombuffer(data, np.uint8).copy() if self.rank == root else np.empty(int(n[0]), np.uint8)
        self.broadcast(buf, root)
        return buf.tobytes()

    def abort(self, code: int = 1):
        """End every process of the group at once (after a :class:`CommTimeout`)."""
        os._exit(code)

    def _timed_out(self, what: str):
        return CommTimeout(f"rank {self.rank} of {self.size}: {what} did not finish within "
                           f"{self.timeout:g} s ({self.name}); another process has died or hangs, "
                           f"so this one stops (set MINIGAN_DIST_TIMEOUT to wait longer)")

    def __repr__(self):
        return f"{type(self).__name__}(rank={self.rank}, size={self.size})"


class Single(Communicator):
    """One process: the sum over one process is the buffer itself; nothing to wait for."""

    name = "one process"

    def __init__(self, timeout: float | None = None):
        self.timeout = default_timeout() if timeout is None else float(timeout)

    def allreduce(self, buf):
        return buf

    def broadcast(self, buf, root: int = 0):
        if root != 0:
            raise ValueError(f"broadcast from rank {root} in a group of one")
        return buf

    def barrier(self):
        pass


class LocalGroup:
    """``size`` communicators (:meth:`comm`) for ``size`` threads of one process.

    A stand-in for several processes in tests: its collectives meet at a barrier and
    sum in rank order, in float64 for floats, as MPI's reduction may not promise but a
    test wants to be exact about.  ``timeout`` applies as in the real transports."""

    def __init__(self, size: int, timeout: float = 30.0):
        self.size, self.timeout = int(size), float(timeout)
        self._barrier = threading.Barrier(self.size)
        self._slots = [None] * self.size

    def comm(self, rank: int) -> "LocalComm":
        return LocalComm(self, rank)


class LocalComm(Communicator):
    name = "threads of one process"

    def __init__(self, group: LocalGroup, rank: int):
        self.group, self.rank, self.size, self.timeout = group, int(rank), group.size, group.timeout

    def _wait(self, what):
        try:
            self.group._barrier.wait(self.timeout)
        except threading.BrokenBarrierError:
            raise self._timed_out(what) from None

    def _exchange(self, buf, what):
        self.group._slots[self.rank] = np.array(buf, copy=True)  # host copies of everyone's
        self._wait(what)
        parts = list(self.group._slots)
        self._wait(what)  # everyone has read before anyone writes the next
        return parts

    def allreduce(self, buf):
        parts = self._exchange(buf, f"allreduce of {buf.size} values")
        total = parts[0].astype(np.float64 if parts[0].dtype.kind == "f" else parts[0].dtype)
        for p in parts[1:]:
            total = total + p
        buf[...] = total.astype(buf.dtype)
        return buf

    def broadcast(self, buf, root: int = 0):
        parts = self._exchange(buf, f"broadcast of {buf.size} values")
        buf[...] = parts[root]
        return buf

    def barrier(self):
        self._wait("barrier")
