"""The package's shape: imports point down only, and there is no import circle.

Every module's imports (at the top and inside functions alike) are read with
``ast``, without importing anything, so this is fast and sees imports that
only run on some paths.  Rooms, from the ground up: ``runtime`` (devices,
kernels) and ``data``; ``nn``; the modules beside ``nn`` (losses, optim,
gradcheck, io, viz); ``metrics``; ``gan``; ``cli``.  The GPU stand-in
(``testing``) sits on ``runtime``; the tests and the command line install it,
and the engine never imports it.
"""
from __future__ import annotations

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "minigan"

# room -> floor; a module may import its own floor or below, never above
FLOORS = {"_version": 0, "runtime": 1, "data": 1, "testing": 2, "nn": 2, "losses": 3, "optim": 3,
          "gradcheck": 3, "io": 3, "viz": 3, "metrics": 4, "distributed": 4, "gan": 5, "cli": 6,
          "__main__": 7}
GPU_ONLY = ("cupy", "numba.cuda")  # may be imported at module level by runtime/gpu.py alone


def _modules() -> dict:
    """``{dotted module name: path}`` for every module of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ("minigan",) + path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: pathlib.Path, modules: dict):
    """``[(imported name, line, at module level)]``: package modules as dotted names, other
    imports as written."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    top = {id(n) for n in tree.body}
    top |= {id(c) for n in tree.body if isinstance(n, (ast.If, ast.Try)) for c in ast.walk(n)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for a in node.names:
                sub = f"{base}.{a.name}"
                found.append((sub if sub in modules else base, node.lineno, id(node) in top))
    return found


def _graph():
    modules = _modules()
    return modules, {m: _imports(m, p, modules) for m, p in modules.items()}


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _cycles(edges: dict) -> list:
    """Strongly connected components of more than one module (Tarjan), or a module that
    imports itself."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges.get(v, ()):
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_every_module_has_a_floor():
    modules, _ = _graph()
    rooms = {_room(m) for m in modules} - {"__init__"}
    assert rooms <= set(FLOORS), f"modules in rooms without a floor: {sorted(rooms - set(FLOORS))}"


def test_no_import_circle():
    modules, graph = _graph()
    edges = {m: {t for t, _, _ in imps if t in modules and t != m} for m, imps in graph.items()}
    assert _cycles(edges) == []


def test_imports_point_down():
    modules, graph = _graph()
    up = []
    for m, imps in graph.items():
        room = _room(m)
        if room == "__init__":  # the package's face hands on what is public
            continue
        for target, line, _ in imps:
            if target.startswith("minigan") and target != "minigan":
                there = _room(target)
                if FLOORS[there] > FLOORS[room]:
                    up.append(f"{modules[m].relative_to(PACKAGE.parent)}:{line} imports {target}")
            elif target == "minigan":
                up.append(f"{modules[m].relative_to(PACKAGE.parent)}:{line} imports the package's face")
    assert up == []


def test_runtime_imports_nothing_above_it():
    modules, graph = _graph()
    bad = [f"{modules[m].relative_to(PACKAGE.parent)}:{line} imports {t}"
           for m, imps in graph.items() if _room(m) == "runtime"
           for t, line, _ in imps if t.startswith("minigan.") and _room(t) not in ("runtime", "_version")]
    assert bad == []


def test_the_engine_never_imports_the_testing_aids():
    modules, graph = _graph()
    bad = [f"{modules[m].relative_to(PACKAGE.parent)}:{line} imports {t}"
           for m, imps in graph.items() if _room(m) not in ("cli", "testing", "__main__")
           for t, line, _ in imps if t.startswith("minigan.testing")]
    bad += [f"{p.relative_to(PACKAGE.parent)} names minigan.testing for importlib"
            for m, p in modules.items() if _room(m) not in ("cli", "testing")
            and "import_module(\"minigan.testing" in p.read_text()]
    assert bad == []


def test_gpu_modules_imported_at_module_level_by_the_gpu_table_only():
    modules, graph = _graph()
    bad = [f"{modules[m].relative_to(PACKAGE.parent)}:{line} imports {t}"
           for m, imps in graph.items() if m != "minigan.runtime.gpu"
           for t, line, top in imps if top and any(t == g or t.startswith(g + ".") for g in GPU_ONLY)]
    assert bad == []


def test_the_checks_see_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
