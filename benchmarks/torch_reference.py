"""The reference networks and train step in PyTorch, for the benchmark's side-by-side timing.

This file imports nothing from minigan and no PyTorch at module level: the
harness (:class:`minigan.cli.bench.TorchProcess`) runs it in a child process that
imports PyTorch first and loads this file on its own (:data:`CHILD_CODE`), so
none of the settings ``import minigan`` makes for its own process (OpenMP's
wait policy, glibc's malloc thresholds) reach PyTorch: it runs as a user's
script would.  The child answers one JSON line per request (:func:`serve`).
"""
from __future__ import annotations

import json
import statistics
import sys
import time

NOISE_DIM = 100

# argv[1] is this file's path.  Run with -c, the child's sys.path[0] is the
# working directory, not minigan/ (whose io.py would shadow the standard one).
CHILD_CODE = (
    "import importlib.util, os, sys; policy = os.environ.get('OMP_WAIT_POLICY', '(unset)'); "
    "import torch; spec = importlib.util.spec_from_file_location('torch_reference', sys.argv[1]); "
    "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
    "m.serve(sys.stdin, sys.stdout, policy)"
)


def image_shape(model: str):
    """One real sample's shape: ``(1, 28, 28)`` for the DCGAN, ``(784,)`` for the MLP GAN."""
    return (1, 28, 28) if model == "dcgan" else (784,)


def block_timer(fn):
    """``block(n, warmup) -> [seconds]``: ``warmup`` untimed calls, then ``n`` timed ones."""
    def block(n, warmup):
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return times
    return block


def serve(inp, out, policy):
    """The child's loop: answer :class:`minigan.cli.bench.TorchProcess` requests, one JSON line each.

    ``policy`` is the ``OMP_WAIT_POLICY`` the child started with (PyTorch's
    OpenMP read it when it loaded).
    """
    import torch  # noqa: PLC0415

    blocks = {}
    for line in inp:
        req = json.loads(line)
        if req["cmd"] == "info":
            torch.set_num_threads(req["threads"])
            ans = {"version": torch.__version__, "threads": torch.get_num_threads(),
                   "OMP_WAIT_POLICY": policy, "minigan_imported": "minigan" in sys.modules}
        elif req["cmd"] == "setup":
            blocks[req["key"]] = block_timer(torch_step_fn(torch, req["model"], req["batch"],
                                                           req["joint"]))
            ans = {}
        elif req["cmd"] == "conv_setup":  # the lean conv pair's recipe (:func:`conv_step_fn`)
            blocks[req["key"]] = block_timer(conv_step_fn(torch, req))
            ans = {}
        elif req["cmd"] == "time":
            ans = {"times": blocks[req["key"]](req["n"], req["warmup"])}
        else:
            ans = {}
        out.write(json.dumps(ans) + "\n")
        out.flush()
        if req["cmd"] == "quit":
            return


def torch_nets(torch, model: str):
    """The same networks in PyTorch.  "same" padding with stride 2 and k5 is padding=2
    for Conv2d and padding=2, output_padding=1 for ConvTranspose2d (same shapes)."""
    nn = torch.nn
    if model == "mlp":
        G = nn.Sequential(nn.Linear(100, 128), nn.LeakyReLU(0.2), nn.Linear(128, 784), nn.Tanh())
        D = nn.Sequential(nn.Linear(784, 128), nn.LeakyReLU(0.2), nn.Linear(128, 1))
        return G, D
    G = nn.Sequential(
        nn.Linear(100, 7 * 7 * 256, bias=False), nn.BatchNorm1d(7 * 7 * 256), nn.LeakyReLU(0.3),
        nn.Unflatten(1, (256, 7, 7)),
        nn.ConvTranspose2d(256, 128, 5, 1, padding=2, bias=False), nn.BatchNorm2d(128),
        nn.LeakyReLU(0.3),
        nn.ConvTranspose2d(128, 64, 5, 2, padding=2, output_padding=1, bias=False),
        nn.BatchNorm2d(64), nn.LeakyReLU(0.3),
        nn.ConvTranspose2d(64, 1, 5, 2, padding=2, output_padding=1, bias=False), nn.Tanh(),
    )
    D = nn.Sequential(
        nn.Conv2d(1, 64, 5, 2, padding=2), nn.LeakyReLU(0.3), nn.Dropout(0.3),
        nn.Conv2d(64, 128, 5, 2, padding=2), nn.LeakyReLU(0.3), nn.Dropout(0.3),
        nn.Flatten(), nn.Linear(7 * 7 * 128, 1),
    )
    return G, D


def torch_step_fn(torch, model: str, batch: int, joint: bool = False, device: str = "cpu"):
    """A closure running the same step in PyTorch (float32, on ``device``: "cpu" or "cuda").

    ``joint=False`` is the step as PyTorch's DCGAN tutorial writes it, D on the
    real and the fake batch apart; ``joint=True`` sends them through D as one
    batch, as minigan's trainer does.  The harness times both and compares
    minigan with the faster.
    """
    torch.manual_seed(0)
    G, D = (net.to(device) for net in torch_nets(torch, model))
    oG = torch.optim.Adam(G.parameters(), 1e-4, betas=(0.5, 0.999))
    oD = torch.optim.Adam(D.parameters(), 1e-4, betas=(0.5, 0.999))
    bce = torch.nn.BCEWithLogitsLoss()
    z = torch.randn(batch, NOISE_DIM, device=device)
    real = torch.rand((batch,) + image_shape(model), device=device) * 2 - 1
    ones, zeros = torch.ones(batch, 1, device=device), torch.zeros(batch, 1, device=device)

    def step():
        fake = G(z)
        oD.zero_grad()
        if joint:
            out = D(torch.cat([real, fake.detach()]))
            (bce(out[:batch], ones) + bce(out[batch:], zeros)).backward()
        else:
            bce(D(real), ones).backward()
            bce(D(fake.detach()), zeros).backward()
        oD.step()
        oG.zero_grad()
        D.requires_grad_(False)
        bce(D(fake), ones).backward()
        D.requires_grad_(True)
        oG.step()

    return step


# -- the lean conv pair's step under torch.profiler (benchmarks/profile_step.py) ----------

# argv[1]: this file, argv[2]: the request (JSON).  PyTorch first, minigan never.
PROFILE_CHILD_CODE = (
    "import importlib.util, json, sys; import torch; "
    "spec = importlib.util.spec_from_file_location('torch_reference', sys.argv[1]); "
    "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
    "print(json.dumps(m.profile_conv_step(torch, json.loads(sys.argv[2]))))"
)

# What each op's self time is charged to: the first rule that matches the op's name or,
# failing that, the name of its nearest enclosing op or annotation that one matches.
OP_CATEGORIES = (
    ("conv dX + dW (one op)", ("convolution_backward", "ConvolutionBackward")),
    ("conv forward", ("convolution", "conv2d", "conv_transpose")),
    ("dense GEMM (all passes)", ("addmm", "aten::mm", "aten::bmm", "aten::linear", "MmBackward",
                                 "AddmmBackward")),
    ("BatchNorm", ("batch_norm", "BatchNorm")),
    ("activations", ("leaky_relu", "LeakyRelu", "tanh", "Tanh")),
    ("losses", ("binary_cross_entropy", "BinaryCrossEntropy", "loss")),
    ("concatenate", ("aten::cat", "CatBackward")),
    ("Adam", ("adam",)),
    ("weight average (EMA)", ("ema",)),
    ("code and labels", ("code", "embedding", "Embedding")),
)


def op_category(chain) -> str:
    """The category of an op from ``chain``: its name, then its parents' names outwards."""
    for name in chain:
        for category, keys in OP_CATEGORIES:
            if any(k in name for k in keys):
                return category
    return "other ops (elementwise, copies, views)"


def conv_step_fn(torch, req):
    """The lean conv pair's train step as ``benchmarks/quality.py torch`` runs it (one
    joint D pass, the projection head told the clusters, Adam, G's weight average in
    float64), on a fixed batch, noise and labels; phases that run only generic ops are
    annotated for :func:`op_category`."""
    import importlib.util  # noqa: PLC0415
    import os  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "quality.py")
    spec = importlib.util.spec_from_file_location("quality", path)
    quality = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quality)  # its networks; it imports no minigan when given the code
    B, K, decay = req["batch"], req["clusters"], req["g_ema"]
    torch.manual_seed(req["seed"])
    G, D = quality.torch_conv_pair(torch, K, np.full(K, 1.0 / K) if K else None, tuple(req["code"]))
    opt_G = torch.optim.Adam(G.parameters(), req["lr"], tuple(req["betas"]), eps=1e-8)
    opt_D = torch.optim.Adam(D.parameters(), req["lr"], tuple(req["betas"]), eps=1e-8)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    gen = torch.Generator().manual_seed(req["seed"])
    real = torch.rand((B, 1, 28, 28), generator=gen) * 2 - 1
    z = torch.randn(B, NOISE_DIM, generator=gen)
    ones, zeros = torch.ones(B, 1), torch.zeros(B, 1)
    head = D[-1]
    y_real = torch.randint(0, max(K, 1), (B,), generator=gen)
    with torch.no_grad():
        y_fake = G[0].codes(z)  # drawn before the step, as minigan's trainer does
    avg = [p.detach().double().clone() for p in G.parameters()] if decay else None
    note = torch.profiler.record_function

    def step():
        fake = G(z)
        if K:
            head.labels = torch.cat([y_real, y_fake])
        out = D(torch.cat([real, fake.detach()]))
        with note("loss"):
            d_loss = bce(out[:B], ones) + bce(out[B:], zeros)
        opt_D.zero_grad(set_to_none=True)
        d_loss.backward()
        with note("adam"):
            opt_D.step()
        D.requires_grad_(False)
        if K:
            head.labels = y_fake
        with note("loss"):
            g_loss = bce(D(fake), ones)
        opt_G.zero_grad(set_to_none=True)
        g_loss.backward()
        with note("adam"):
            opt_G.step()
        D.requires_grad_(True)
        if avg is not None:
            with note("ema"), torch.no_grad():
                for a, p in zip(avg, G.parameters()):
                    a.lerp_(p.double(), 1.0 - decay)

    return step


def profile_conv_step(torch, req) -> dict:
    """Whole-step median (``repeats`` after a warm-up), then ``steps`` steps under
    torch.profiler: every op's self CPU time per step, and their sums per
    :func:`op_category`."""
    torch.set_num_threads(req["threads"])
    step = conv_step_fn(torch, req)
    times = block_timer(step)(req["repeats"], 3)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        for _ in range(req["steps"]):
            step()
        profiled = (time.perf_counter() - t0) / req["steps"]
    ops, categories = {}, {}
    for e in prof.events():
        chain, p = [e.name], e.cpu_parent
        while p is not None:
            chain.append(p.name)
            p = p.cpu_parent
        us = e.self_cpu_time_total / req["steps"]
        if not e.is_user_annotation:
            total, calls = ops.get(e.name, (0.0, 0))
            ops[e.name] = (total + us, calls + 1)
        category = op_category(chain)
        categories[category] = categories.get(category, 0.0) + us
    return {"version": torch.__version__, "threads": torch.get_num_threads(),
            "step_s": statistics.median(times), "profiled_step_s": profiled,
            "ops": {k: (us, calls / req["steps"]) for k, (us, calls) in ops.items()},
            "categories": categories}
