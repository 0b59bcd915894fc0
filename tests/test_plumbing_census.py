"""A reduced census of planted bugs in the normal suite: the trainer, step, sampler and data
layer mutations of tests/mutations.py (every name with "plumbing"), run through its own
machinery in a subprocess.  It fails unless every one of them is caught.  About two
minutes on two cores (a pass of the named tests on the unchanged copy, then a few seconds
per mutation)."""
import pathlib
import subprocess
import sys

import mutations

TESTS = pathlib.Path(__file__).resolve().parent


def test_every_plumbing_mutation_is_caught():
    chosen = [m for m in mutations.MUTATIONS if "plumbing" in m.name.lower()]
    assert len(chosen) == len(mutations.PLUMBING_MUTATIONS) >= 15
    res = subprocess.run([sys.executable, str(TESTS / "mutations.py"), "-k", "plumbing", "--timeout", "300"],
                         cwd=TESTS.parent, capture_output=True, text=True, timeout=900)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:]
    assert f"{len(chosen)} of {len(chosen)} mutations caught" in out, out[-6000:]
