"""The GPU path end to end: a GPU (or the strict stand-in where there is none) trains every model
family as the CPU does, reads nothing on the host in a step without a log row, resumes exactly,
and moves checkpoints between devices.  Tiny networks (``width``), so that on the stand-in the
GPU kernels run under numba-cuda's simulator in seconds."""
import copy
import csv
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import gpu
from helpers import fit_until_interrupted
from test_trainer import synthetic, weights

from minigan import io
from minigan.gan.trainer import CHECKPOINT, TrainConfig, Trainer
from minigan.gan import averaging
from minigan.runtime import devices

pytestmark = pytest.mark.gpu

# The averaged G's BatchNorm estimate draws 2,500 noise points through G at every save: under
# the simulator that alone took minutes.  A handful checks the same code path.
SMALL_BN_POINTS = 40


@pytest.fixture(autouse=True)
def _few_bn_points(monkeypatch):
    monkeypatch.setattr(averaging, "BN_POINTS", SMALL_BN_POINTS)

FAMILIES = [dict(model="mlp"), dict(model="conv", clusters=4), dict(model="conv", clusters=0), dict(model="dcgan"), dict(model="mlp", conditional=True),
            dict(model="conv", conditional=True), dict(model="dcgan", conditional=True),
            dict(model="mlp2d", dataset="ring", pack=2)]
IDS = ["mlp", "conv", "conv-no-clusters", "dcgan", "cmlp", "cconv", "cdcgan", "ring-pack2"]


def _trainer(tmp_path, name, device, n=32, dataset="mnist", **kw):
    base = dict(model="mlp", epochs=1, batch_size=8, lr=1e-3, seed=2, log_every=2, checkpoint_every=3,
                n_samples=8, width=1 / 16, out=str(tmp_path / name), device=device, eval_every=0)
    base.update(kw)
    cfg = TrainConfig.for_dataset(dataset, **base)
    if cfg.is_mixture:
        return Trainer(cfg, progress=False)
    data = synthetic(cfg.model, n)
    labels = np.arange(n) % 10 if cfg.conditional else None
    return Trainer(cfg, data=data, labels=labels, progress=False)


def _gpu_table():
    from minigan.runtime import gpu as table

    return table.TABLE


@pytest.mark.parametrize("family", FAMILIES, ids=IDS)
def test_a_training_step_on_the_gpu_gives_the_cpus_numbers(tmp_path, family):
    gpu()
    t_cpu = _trainer(tmp_path, "cpu", "cpu", **family)
    t_gpu = _trainer(tmp_path, "gpu", "gpu", **family)
    assert all(m.device.name == "gpu" for m in list(t_gpu.G.modules()) + list(t_gpu.D.modules()))
    state = copy.deepcopy(devices.rng_state())  # both were seeded alike; each step draws the same seeds
    for _ in range(2):
        idx = np.arange(t_cpu.points_per_step)
        devices.set_rng_state(copy.deepcopy(state))
        s_cpu = t_cpu.train_step(*t_cpu.step_inputs(idx))
        devices.set_rng_state(state)
        s_gpu = t_gpu.train_step(*t_gpu.step_inputs(t_gpu.device.asarray(idx)))
        state = copy.deepcopy(devices.rng_state())
        t_cpu.step_in_epoch += 1
        t_gpu.step_in_epoch += 1
        for k in s_cpu:
            assert float(s_gpu[k]) == pytest.approx(float(s_cpu[k]), rel=1e-4, abs=1e-5), k
        # the step's gradients (Adam turns rounding in a near-zero gradient into a whole
        # step of either sign, so the weights are compared through what drives them)
        for net in ("G", "D"):
            a, b = getattr(t_cpu, net), getattr(t_gpu, net)
            for (name, la, key), (_, lb, _) in zip(a.named_parameters(), b.named_parameters()):
                want, got = la.grads[key], devices.to_numpy(lb.grads[key])
                np.testing.assert_allclose(got, want, rtol=0, atol=1e-3 * np.abs(want).max() + 1e-7,
                                           err_msg=f"{net}.{name}")


def test_a_step_without_a_log_row_reads_nothing_on_the_host(tmp_path):
    """The sync budget: no synchronisation and no transfer in a step (data, noise and labels on
    the device; losses and flags stay there), one read for a log row (its gradient norms too)
    and one for a checkpoint (the device's arrays laid end to end in one buffer)."""
    dev = gpu()
    if dev.xp.__name__ != "minigan.testing.gpu_standin.xp":
        pytest.skip("counting synchronisations needs the stand-in's arrays")
    from minigan.testing.gpu_standin import counting

    t = _trainer(tmp_path, "sync", "gpu", model="dcgan", conditional=True, batch_size=4, g_ema=0.9)
    order = t.device.asarray(t.batch_indices(0))
    t.train_step(*t.step_inputs(order[0]))  # the first step builds plans and buffers
    with counting() as c:
        for i in range(1, 3):
            t.window.add(t.train_step(*t.step_inputs(order[i])))
            t.step_in_epoch += 1
    assert (c.syncs, c.to_device, c.to_host) == (0, 0, 0), c.reasons
    with counting() as c:
        row = t.read_window()
    assert c.syncs == 1 and c.to_host == 1 and set(row) == {"d_loss", "g_loss", "d_real", "d_fake"}
    os.makedirs(t.config.out, exist_ok=True)
    with counting() as c:  # the row with gradients.csv's norms of every parameter: still one read
        t.log_row(0.0)
    assert (c.syncs, c.to_host) == (1, 1), c.reasons
    t.window.add(t.train_step(*t.step_inputs(order[3])))
    with counting() as c:  # flags, window and every weight, buffer and Adam moment: one read
        assert t.save()
    assert (c.syncs, c.to_host) == (1, 1), c.reasons
    with open(os.path.join(t.config.out, "gradients.csv")) as f:
        assert len(f.read().splitlines()) == 1 + sum(1 for net in (t.G, t.D) for _ in net.named_parameters())


def test_the_gpu_kernel_table_runs(tmp_path):
    """The GPU's own kernels run, not the reference code: every twin a DCGAN step uses is called."""
    gpu()
    table = _gpu_table()
    called = set()
    saved = dict(table)

    def spy(name, fn):
        def wrapped(*a, **kw):
            called.add(name)
            return fn(*a, **kw)
        return wrapped

    try:
        for name, fn in saved.items():
            table[name] = spy(name, fn)
        t = _trainer(tmp_path, "table", "gpu", model="dcgan", g_ema=0.9)
        t.train_step(*t.step_inputs(t.device.asarray(np.arange(8))))
    finally:
        table.update(saved)
    assert t.G.device.table == "cuda"
    want = {"im2col", "col2im", "leaky_relu", "leaky_relu_grad", "dropout", "dropout_grad",
            "batchnorm_stats", "batchnorm_apply", "batchnorm_grad", "adam_update", "ema_update",
            "bce_with_logits_sum", "channel_sums", "keyed_normal"}
    assert want & set(saved) <= called, sorted((want & set(saved)) - called)


def test_resume_on_the_gpu_is_bit_identical(tmp_path):
    gpu()
    ref = _trainer(tmp_path, "ref", "gpu", model="dcgan", epochs=2).fit(log=lambda s: None)
    cut = _trainer(tmp_path, "cut", "gpu", model="dcgan", epochs=2)
    fit_until_interrupted(cut, 5)  # mid-epoch 2, two steps after the checkpoint at step 3
    resumed = _trainer(tmp_path, "cut", "gpu", model="dcgan", epochs=2)
    resumed.restore()
    resumed.fit(log=lambda s: None)
    a, b = weights(ref), weights(resumed)
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    rows = [[r[k] for k in ("step", "d_loss", "g_loss", "d_real", "d_fake")]
            for r in csv.DictReader(open(tmp_path / "ref" / "log.csv"))]
    again = [[r[k] for k in ("step", "d_loss", "g_loss", "d_real", "d_fake")]
             for r in csv.DictReader(open(tmp_path / "cut" / "log.csv"))]
    assert rows == again  # the window's partial sums came back with the checkpoint


def test_checkpoints_move_between_devices(tmp_path):
    """Trained on the CPU, continued on the GPU (and back): the GPU continues where the CPU would."""
    gpu()
    cpu_run = _trainer(tmp_path, "a", "cpu", model="dcgan", epochs=2)
    fit_until_interrupted(cpu_run, 3)  # a checkpoint at step 3
    on_gpu = _trainer(tmp_path, "a", "gpu", model="dcgan", epochs=2)
    on_gpu.restore()
    assert on_gpu.global_step == 3 and on_gpu.G.device.name == "gpu"
    on_cpu = _trainer(tmp_path, "a", "cpu", model="dcgan", epochs=2)
    on_cpu.restore()
    for k, v in weights(on_cpu).items():
        assert np.array_equal(weights(on_gpu)[k], v), k
    on_gpu.save()  # written from the GPU, read on the CPU
    back = _trainer(tmp_path, "a", "cpu", model="dcgan", epochs=2)
    back.restore()
    for k, v in weights(on_cpu).items():
        assert np.array_equal(weights(back)[k], v), k


def test_sampling_and_scoring_on_the_gpu(tmp_path):
    from minigan.gan.sampler import sample

    gpu()
    t = _trainer(tmp_path, "s", "gpu", model="dcgan", conditional=True).fit(log=lambda s: None)
    ck = str(tmp_path / "s" / CHECKPOINT)
    on_gpu = sample(ck, n=12, seed=1, device="gpu", digit=3)
    on_cpu = sample(ck, n=12, seed=1, device="cpu", digit=3)
    assert isinstance(on_gpu, np.ndarray) and on_gpu.shape == (12, 28, 28)
    np.testing.assert_allclose(on_gpu, on_cpu, atol=1e-5)
    assert t.G.device.name == "gpu" and isinstance(t.G.layers[1].params["W"], t.device.array_type)


def test_cli_trains_and_samples_on_the_gpu(tmp_path):
    """``--device gpu`` through the command line; without a GPU the stand-in stands in
    (``MINIGAN_GPU=standin``), with the GPU kernels under the simulator."""
    env = dict(os.environ)
    if devices.cupy_module() is None:
        env.update(MINIGAN_GPU="standin", NUMBA_ENABLE_CUDASIM="1")
    out = tmp_path / "ring"
    run = subprocess.run([sys.executable, "-m", "minigan", "train", "--dataset", "ring", "--pack", "2",
                          "--device", "gpu", "--width", "0.05", "--epochs", "1", "--limit", "400",
                          "--eval-every", "0", "--out", str(out), "--quiet"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "on the gpu" in run.stdout
    assert io.read_checkpoint_meta(out / CHECKPOINT)["config"]["device"] == "gpu"
    run = subprocess.run([sys.executable, "-m", "minigan", "sample", "--checkpoint", str(out / CHECKPOINT),
                          "--device", "gpu", "--n", "20", "--out", str(tmp_path / "p.npz")],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert np.load(tmp_path / "p.npz")["points"].shape == (20, 2)


def test_asking_for_a_gpu_without_one_is_one_clear_line(tmp_path):
    if devices.cupy_module() is not None:
        pytest.skip("this machine has a GPU")
    env = {k: v for k, v in os.environ.items() if k != "MINIGAN_GPU"}
    run = subprocess.run([sys.executable, "-m", "minigan", "train", "--dataset", "ring", "--device", "gpu",
                          "--out", str(tmp_path / "x")], env=env, capture_output=True, text=True, timeout=120)
    # exit 1: the machine, not the command, is at fault (tests/test_gpu_env.py: each cause)
    assert run.returncode == 1 and "minigan train: no GPU to run on: " in run.stderr
    assert "Traceback" not in run.stderr
