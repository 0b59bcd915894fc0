"""Where Numba keeps minigan's compiled kernels: a per-user folder, never the installed package.

Numba's ``cache=True`` writes its files beside the source by default, into
``site-packages/minigan/.../__pycache__`` for an installed copy.  A later
``pip install -e .`` removes the package's files but not that folder, which
then remains as a namespace package hiding the editable install.  So the
kernels here are cached under :func:`minigan_home` instead::

    $MINIGAN_HOME/numba/<minigan version>-<hash of the package's folder>/

one folder per install and version, so two installs never share files
(Numba also checks each file against its source's time stamp and size).
``NUMBA_CACHE_DIR`` set by the user still wins, as Numba documents.  Only
minigan's own kernels use this cache; nothing else in the process changes.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

from numba.core import event
from numba.core.caching import (CompileResultCacheImpl, FunctionCache, UserProvidedCacheLocator,
                                _CacheLocator, _SourceFileBackedLocatorMixin)

from .._version import __version__
from .home import minigan_home

PACKAGE_DIR = Path(__file__).resolve().parents[1]


def kernel_cache_dir() -> Path:
    """The folder of this install's compiled kernels (see the module's docstring)."""
    key = hashlib.sha256(str(PACKAGE_DIR).encode()).hexdigest()[:12]
    return minigan_home() / "numba" / f"{__version__}-{key}"


class _HomeLocator(_SourceFileBackedLocatorMixin, _CacheLocator):
    """Numba's cache locator for a source file of this package: the folder of
    :func:`kernel_cache_dir`, mirroring the file's place inside the package."""

    def __init__(self, py_func, py_file):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        rel = Path(py_file).resolve().relative_to(PACKAGE_DIR).with_suffix("")
        self._cache_path = str(kernel_cache_dir() / rel)

    def get_cache_path(self):
        return self._cache_path

    @classmethod
    def from_function(cls, py_func, py_file):
        try:
            Path(py_file).resolve().relative_to(PACKAGE_DIR)
        except ValueError:
            return None
        return super().from_function(py_func, py_file)  # None if the folder is not writable


class _Impl(CompileResultCacheImpl):
    # the user's NUMBA_CACHE_DIR first, as everywhere in Numba; then minigan's home.
    # No fallback beside the source: a folder that cannot be written means no cache.
    _locator_classes = [UserProvidedCacheLocator, _HomeLocator]


class _Cache(FunctionCache):
    _impl_class = _Impl


def cache_in_home(dispatcher):
    """Give a Numba dispatcher (made with ``cache=False``) the on-disk cache of this module."""
    try:
        dispatcher._cache = _Cache(dispatcher.py_func)
    except RuntimeError:  # no locator: neither folder can be written; compile per process
        pass
    return dispatcher


class _FirstCompile(event.Listener):
    """Calls ``say`` the first time a kernel of this package is compiled, not loaded."""

    def __init__(self, say):
        self.say, self.said = say, False

    def on_start(self, ev):
        fn = getattr(ev.data.get("dispatcher"), "py_func", None)
        if not self.said and fn is not None and (fn.__module__ or "").startswith("minigan."):
            self.said = True
            where = os.environ.get("NUMBA_CACHE_DIR") or kernel_cache_dir()
            self.say("compiling the CPU kernels for this install, once: the first step waits for it "
                     f"(about half a minute for the conv pair); later runs load them from {where}")

    def on_end(self, ev):
        pass


@contextlib.contextmanager
def announce_compilation(say):
    """While inside, ``say(message)`` once, the first time one of minigan's kernels is compiled
    rather than loaded from the cache: on a fresh install the first train step takes half a
    minute of compilation, which would otherwise look like a hang.  Numba signals a compile
    (``numba:compile``) only on a cache miss, so a warm cache says nothing."""
    listener = _FirstCompile(say)
    event.register("numba:compile", listener)
    try:
        yield listener
    finally:
        event.unregister("numba:compile", listener)
