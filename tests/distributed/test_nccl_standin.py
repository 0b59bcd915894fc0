"""NCCLComm without a GPU: against a stand-in NCCL module that works on host memory.

The stand-in takes the same calls as ``cupy.cuda.nccl`` (a unique id, a communicator
made of (size, id, rank), ``allReduce`` / ``bcast`` on raw pointers, counts, NCCL type
codes and a stream), sums in host memory across threads, and completes the stream when
every rank has called.  So the tests check what NCCLComm hands NCCL (pointers, counts,
types, the id's way through the bootstrap) and that a rank that never calls makes the
others time out, after aborting the NCCL communicator.
"""
import ctypes
import threading

import numpy as np
import pytest

from minigan.distributed import CommTimeout, LocalGroup
from minigan.distributed.nccl import NCCLComm

pytestmark = pytest.mark.gpu

CTYPES = {7: ctypes.c_float, 8: ctypes.c_double, 4: ctypes.c_int64, 2: ctypes.c_int32, 1: ctypes.c_uint8}


class Stream:
    def __init__(self):
        self.done, self.ptr = True, 0


class StandinNccl:
    """The part of ``cupy.cuda.nccl`` NCCLComm uses, on host memory, for ``size`` threads."""

    NCCL_FLOAT32, NCCL_FLOAT64, NCCL_INT64, NCCL_INT32, NCCL_UINT8, NCCL_SUM = 7, 8, 4, 2, 1, 0

    def __init__(self, size):
        self.size, self.ids, self.aborted = size, [], []
        self.lock = threading.Lock()
        self.pending = {}  # call number -> {rank: (array view, stream)}

    def get_unique_id(self):
        return tuple(int(v) for v in np.arange(-64, 64))

    def NcclCommunicator(self, ndev, uid, rank):  # noqa: N802 (CuPy's name)
        assert ndev == self.size
        self.ids.append(uid)
        return _StandinComm(self, rank)


class _StandinComm:
    def __init__(self, nccl, rank):
        self.nccl, self.rank, self.calls = nccl, rank, 0

    def _view(self, ptr, count, dtype):
        return np.ctypeslib.as_array((CTYPES[dtype] * count).from_address(ptr))

    def _collective(self, ptr, count, dtype, stream, finish):
        stream = self.stream
        stream.done = False
        n = self.nccl
        with n.lock:
            mine = n.pending.setdefault(self.calls, {})
            mine[self.rank] = (self._view(ptr, count, dtype), stream)
            if len(mine) == n.size:  # the last rank to call completes everyone's
                finish([mine[r][0] for r in range(n.size)])
                for _, s in mine.values():
                    s.done = True
        self.calls += 1

    def allReduce(self, send, recv, count, dtype, op, stream):  # noqa: N802
        assert send == recv and op == self.nccl.NCCL_SUM

        def finish(views):
            total = sum(v.astype(np.float64) for v in views)
            for v in views:
                v[...] = total
        self._collective(recv, count, dtype, stream, finish)

    def bcast(self, buf, count, dtype, root, stream):
        def finish(views):
            for v in views:
                v[...] = views[root]
        self._collective(buf, count, dtype, stream, finish)

    def abort(self):
        self.nccl.aborted.append(self.rank)


def comms(size=2, timeout=5.0):
    nccl, group = StandinNccl(size), LocalGroup(size, timeout=timeout)
    out = [None] * size

    def make(r):
        stream = Stream()
        c = NCCLComm(bootstrap=group.comm(r), timeout=timeout, nccl=nccl, stream=stream, select_device=False)
        c.comm.stream = stream
        out[r] = c
    threads = [threading.Thread(target=make, args=(r,)) for r in range(size)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    return nccl, out


def on_threads(fns):
    res, errs = [None] * len(fns), [None] * len(fns)

    def run(i):
        try:
            res[i] = fns[i]()
        except Exception as e:  # noqa: BLE001
            errs[i] = e
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    [t.start() for t in threads]
    [t.join() for t in threads]
    return res, errs


def test_the_unique_id_reaches_every_rank_through_the_bootstrap():
    nccl, cs = comms(3)
    assert [c.rank for c in cs] == [0, 1, 2] and all(c.size == 3 for c in cs)
    assert nccl.ids == [nccl.get_unique_id()] * 3


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_allreduce_sums_in_place_and_broadcast_copies_the_root(dtype):
    _, cs = comms(2)
    bufs = [np.arange(10, dtype=dtype) * (r + 1) for r in range(2)]
    res, errs = on_threads([lambda r=r: cs[r].allreduce(bufs[r]) for r in range(2)])
    assert errs == [None, None]
    for r in range(2):
        assert res[r] is bufs[r]
        np.testing.assert_array_equal(bufs[r], np.arange(10, dtype=dtype) * 3)
    bufs = [np.full(4, r + 1.0, dtype) for r in range(2)]
    on_threads([lambda r=r: cs[r].broadcast(bufs[r], root=1) for r in range(2)])
    for b in bufs:
        np.testing.assert_array_equal(b, np.full(4, 2.0, dtype))


def test_a_rank_that_never_calls_makes_the_other_time_out_and_abort():
    nccl, cs = comms(2, timeout=0.5)
    with pytest.raises(CommTimeout, match=r"rank 0 of 2: allreduce of 5 values .* within 0.5 s \(NCCL\)"):
        cs[0].allreduce(np.ones(5, np.float32))
    assert nccl.aborted == [0]


def test_a_buffer_nccl_has_no_type_for_is_refused():
    _, cs = comms(2)
    with pytest.raises(TypeError, match="no NCCL type"):
        cs[0].allreduce(np.ones(3, np.float16))
