"""Data parallelism in one process: threads joined by a LocalGroup stand in for processes.

N threads, each with its share of a batch, must compute what one model computes on the
whole batch: BatchNorm's outputs, input gradients and running statistics, and (summed)
weight gradients, to float32 round-off.
"""
import copy
import threading

import numpy as np
import pytest

from minigan import nn, runtime
from minigan.distributed import CommTimeout, DataParallel, LocalGroup, Single
from minigan.gan import models


def on_ranks(n, fn, timeout=30.0):
    """``fn(comm)`` on ``n`` threads joined by a LocalGroup; their results in rank order."""
    group = LocalGroup(n, timeout=timeout)
    res, errs = [None] * n, [None] * n

    def run(r):
        try:
            res[r] = fn(group.comm(r))
        except Exception as e:  # noqa: BLE001
            errs[r] = e
    threads = [threading.Thread(target=run, args=(r,)) for r in range(n)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    for e in errs:
        if e is not None:
            raise e
    return res


@pytest.mark.parametrize("shape", [(64, 6), (64, 4, 5, 5)])
@pytest.mark.parametrize("n", [2, 4])
def test_synchronised_batchnorm_over_shares_is_batchnorm_over_the_batch(shape, n):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    full = nn.BatchNorm(shape[1]).to(runtime.device("cpu"))
    y, dx = full.forward(x), full.backward(dy)
    share = shape[0] // n

    def rank(comm):
        bn = nn.BatchNorm(shape[1]).to(runtime.device("cpu"))
        DataParallel(comm).attach(bn)
        sl = slice(comm.rank * share, (comm.rank + 1) * share)
        return bn.forward(x[sl]), bn.backward(dy[sl]), bn
    res = on_ranks(n, rank)
    np.testing.assert_allclose(np.concatenate([r[0] for r in res]), y, atol=1e-6)
    np.testing.assert_allclose(np.concatenate([r[1] for r in res]), dx, atol=1e-6)
    for _, _, bn in res:
        for k in ("running_mean", "running_var"):
            np.testing.assert_allclose(bn.buffers[k], full.buffers[k], rtol=1e-6, atol=1e-7)
    for k in ("gamma", "beta"):  # each rank keeps its own sum; the gradient allreduce adds them
        np.testing.assert_allclose(sum(r[2].grads[k] for r in res), full.grads[k], rtol=1e-5, atol=1e-5)


def test_the_conv_generator_on_two_shares_gives_the_whole_batch_gradients():
    """The lean conv pair's G (two synchronised BatchNorms) on im2col (the Winograd engine's
    float32 error depends on the batch's size): outputs and reduced gradients."""
    runtime.manual_seed(0)
    G, _ = models.build("conv", clusters=8)
    G.to(runtime.device("cpu"))
    for m in G.modules():
        if hasattr(m, "engine"):
            m.engine = "im2col"
    rng = np.random.default_rng(1)
    z = rng.standard_normal((16, models.noise_dim("conv", 8))).astype(np.float32)
    dy = (rng.standard_normal((16, 1, 28, 28)) * 1e-2).astype(np.float32)
    copies = [copy.deepcopy(G) for _ in range(2)]
    out = G.forward(z)
    G.zero_grad()
    G.backward_weights(dy / 16)  # the gradient of a mean over the batch
    want = G.flat().groups[0].grads.copy()

    def rank(comm):
        g, dp = copies[comm.rank], DataParallel(comm)
        dp.attach(g)
        sl = dp.shard(16)
        o = g.forward(z[sl])
        g.zero_grad()
        g.backward_weights(dy[sl] / 8)  # a mean over this rank's share
        dp.reduce_grads(g)
        return o, g.flat().groups[0].grads.copy()
    res = on_ranks(2, rank)
    np.testing.assert_allclose(np.concatenate([r[0] for r in res]), out, atol=1e-6)
    for _, grads in res:
        np.testing.assert_allclose(grads, want, atol=1e-6 * np.abs(want).max())


def test_shares_must_split_the_batch_evenly():
    dp = DataParallel(LocalGroup(3).comm(1))
    assert dp.shard(9) == slice(3, 6)
    with pytest.raises(ValueError, match="does not split into 3 equal shares"):
        dp.shard(64)


def test_one_process_changes_nothing_and_a_missing_rank_times_out():
    buf = np.arange(4.0)
    assert Single().allreduce(buf) is buf and list(buf) == [0, 1, 2, 3]
    lonely = LocalGroup(2, timeout=0.2).comm(0)
    with pytest.raises(CommTimeout, match=r"rank 0 of 2: allreduce of 4 values did not finish within 0.2 s"):
        lonely.allreduce(buf)


def test_a_model_with_dropout_is_refused_on_several_processes(tmp_path):
    """The DCGAN's D has Dropout, whose masks each process would hash from its own rows: with
    several processes the trainer refuses it, naming the reason, before any step."""
    from minigan.gan.trainer import TrainConfig, Trainer  # noqa: PLC0415

    group, errors = LocalGroup(2, timeout=30), []

    def make(rank):
        cfg = TrainConfig(model="dcgan", batch_size=4, width=0.05, out=str(tmp_path / f"r{rank}"))
        try:
            Trainer(cfg, data=np.zeros((8, 1, 28, 28), np.float32), progress=False, comm=group.comm(rank))
        except ValueError as e:
            errors.append(str(e))

    threads = [threading.Thread(target=make, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 2 and all("Dropout" in e for e in errors), errors
