"""minigan's per-user folder, where its caches live (MNIST, the compiled kernels)."""
from __future__ import annotations

import os
from pathlib import Path


def minigan_home() -> Path:
    """``$MINIGAN_HOME``, else ``~/.cache/minigan``."""
    env = os.environ.get("MINIGAN_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "minigan"
