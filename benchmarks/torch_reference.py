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
