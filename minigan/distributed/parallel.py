"""Data parallelism over a communicator: the shard of a batch, the gradient sum, synchronised BatchNorm.

N processes each hold the whole model and train on rows ``rank * B/N .. (rank+1) * B/N``
of every global batch of B rows (:meth:`DataParallel.shard`).  Every loss is a mean over
its batch, so a process's gradient is ``g_r = (N/B) sum over its rows``; one allreduce
(sum) of the model's flat gradient buffer and a scale by 1/N give every process

    (1/N) sum_r g_r = (1/B) sum over all B rows,

the gradient one process computes on the whole batch (:meth:`DataParallel.reduce_grads`).

BatchNorm (:class:`SyncStats`, set as each layer's ``reducer``): with M = sum_r m_r values
per channel over all processes, the statistics of the whole batch are, from each
process's m_r, mean mu_r and biased variance var_r (Chan et al.'s pairwise merge, in
float64; one allreduce of 3C numbers; every m_r is the same)::

    mu  = sum m_r mu_r / M
    var = (sum m_r var_r + sum m_r mu_r^2) / M - mu^2

and in backward (one allreduce of 2C numbers), with the global ``dbeta = sum dy`` and
``dgamma = sum dy * xh`` over all processes' rows::

    dx = gamma / sqrt(var + eps) * (dy - dbeta / M - xh * dgamma / M)

The layer's own gradients (``grads["gamma"]``, ``grads["beta"]``) take the local sums:
the gradient allreduce adds them up with the rest.
"""
from __future__ import annotations

import time

from ..nn import BatchNorm
from ..runtime.arrays import get_xp

from .comm import Communicator


class SyncStats:
    """A BatchNorm ``reducer``: batch statistics and their gradient sums over every process."""

    def __init__(self, comm: Communicator, clock=None):
        self.comm, self.clock = comm, clock

    def _allreduce(self, buf):
        if self.clock is None:
            return self.comm.allreduce(buf)
        with self.clock:
            return self.comm.allreduce(buf)

    def stats(self, mu, var, m: int):
        """``(mu, var, M)`` over all processes from this one's ``mu``, ``var`` (C,) over ``m`` values."""
        xp = _xp(mu)
        C = mu.shape[0]
        mu64, var64 = mu.astype(xp.float64), var.astype(xp.float64)
        buf = xp.empty(3 * C, dtype=xp.float64)
        buf[:C] = m * mu64
        buf[C:2 * C] = m * var64
        buf[2 * C:] = m * (mu64 * mu64)
        self._allreduce(buf)
        M = m * self.comm.size  # every process has an equal share (DataParallel.shard): no read
        mean = buf[:C] / M
        var_all = (buf[C:2 * C] + buf[2 * C:3 * C]) / M - mean * mean
        return mean.astype(mu.dtype), xp.maximum(var_all, 0.0).astype(var.dtype), M

    def grad(self, dx_eval, xh, inv_std, gamma, dgamma, dbeta, M: int):
        """The training-mode ``dx`` from the eval-mode one (``dy * gamma * inv_std``) and this
        process's ``dgamma``, ``dbeta``, with the sums over every process."""
        xp = _xp(dgamma)
        C = dgamma.shape[0]
        buf = xp.empty(2 * C, dtype=dgamma.dtype)
        buf[:C], buf[C:] = dgamma, dbeta
        self._allreduce(buf)
        v = (1, -1) if xh.ndim == 2 else (1, -1, 1, 1)
        scale = (gamma * inv_std).reshape(v)
        corr = xh * (buf[:C] / M).reshape(v)
        corr += (buf[C:] / M).reshape(v)
        corr *= scale
        dx_eval -= corr
        return dx_eval


def _xp(a):
    return get_xp(a)


class Clock:
    """Wall time spent in collectives (a context manager), and the bytes they moved."""

    def __init__(self):
        self.seconds, self.calls = 0.0, 0

    def __enter__(self):
        self._t = time.perf_counter()

    def __exit__(self, *exc):
        self.seconds += time.perf_counter() - self._t
        self.calls += 1


class DataParallel:
    """What a trainer needs to train on ``comm``'s processes as one: shards, sums, BatchNorm."""

    def __init__(self, comm: Communicator):
        self.comm = comm
        self.clock = Clock()
        self.grad_bytes = 0  # bytes of gradients allreduced, summed over steps

    @property
    def size(self):
        return self.comm.size

    def shard(self, rows: int) -> slice:
        """This process's rows of a global batch of ``rows`` rows."""
        N = self.comm.size
        if rows % N:
            raise ValueError(f"a global batch of {rows} rows does not split into {N} equal shares: "
                             f"choose --batch-size divisible by the number of processes ({N})")
        share = rows // N
        return slice(self.comm.rank * share, (self.comm.rank + 1) * share)

    def attach(self, *models):
        """Set a :class:`SyncStats` as the reducer of every BatchNorm in ``models``; returns how many."""

        n = 0
        for model in models:
            for m in model.modules():
                if isinstance(m, BatchNorm):
                    m.reducer = SyncStats(self.comm, self.clock)
                    n += 1
        return n

    def broadcast(self, *models):
        """Every process takes rank 0's parameters and buffers."""
        for model in models:
            self.comm.broadcast_model(model)

    def reduce_grads(self, model):
        """One allreduce (sum) per flat gradient buffer of ``model`` (one per dtype: one in
        practice), then the scale to the mean over the global batch."""
        scale = 1.0 / self.comm.size
        for group in model.flat().groups:
            with self.clock:
                self.comm.allreduce(group.grads)
            group.grads *= group.grads.dtype.type(scale)
            self.grad_bytes += group.grads.nbytes

    def mean(self, values):
        """The mean over processes of a device vector (a log row's sums), in place."""
        with self.clock:
            self.comm.allreduce(values)
        values /= self.comm.size
        return values
