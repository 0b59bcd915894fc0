"""The planted bugs of ``tests/mutations.py`` still fit the code: each mutation's text is
found exactly once in its file, and each test it names exists.  (Running them is the
census itself, ``python tests/mutations.py``: minutes, not part of the suite.)"""
from __future__ import annotations

import ast
import pathlib

import pytest

import mutations

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _defined(path: pathlib.Path) -> set:
    """Test functions and classes of a test file, with ``Class::method`` for methods."""
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
            names |= {f"{node.name}::{m.name}" for m in node.body if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))}
    return names


@pytest.mark.parametrize("m", mutations.MUTATIONS, ids=lambda m: m.name)
def test_mutation_text_found_once(m):
    path = ROOT / m.file
    assert path.is_file(), f"{m.name}: no file {m.file}"
    count = path.read_text().count(m.old)
    assert count == 1, f"{m.name}: its text is found {count} times in {m.file}, not once"
    assert m.old != m.new, f"{m.name}: changes nothing"


@pytest.mark.parametrize("m", mutations.MUTATIONS, ids=lambda m: m.name)
def test_mutation_tests_exist(m):
    assert m.tests, f"{m.name}: names no test"
    for test in m.tests:
        file, _, name = test.partition("::")
        path = ROOT / file
        assert path.is_file(), f"{m.name}: no test file {file}"
        if name:
            name = name.split("[")[0]
            assert name in _defined(path), f"{m.name}: no test {name} in {file}"


def test_mutation_names_are_unique():
    names = [m.name for m in mutations.MUTATIONS]
    assert len(names) == len(set(names))
