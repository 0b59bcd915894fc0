"""The docs point at code that is there: each ``[`Name`](../minigan/FILE.py#LN)`` link names the
function, method (``Class.method``) or class defined on line N of FILE."""
import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
LINK = re.compile(r"\[`([\w.]+)`\]\(\.\./(minigan/[\w/]+\.py)#L(\d+)\)")
DOCS = sorted((ROOT / "docs").glob("*.md"))


def definitions(path):
    """``{dotted name: line}`` of the classes, functions and methods in a file."""
    out = {}

    def walk(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.ClassDef)):
                name = prefix + child.name
                out[name] = child.lineno
                walk(child, name + ".")

    walk(ast.parse(path.read_text()), "")
    return out


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_line_links_name_what_is_defined_there(doc):
    for name, path, line in LINK.findall(doc.read_text()):
        defs = definitions(ROOT / path)
        assert name in defs, f"{doc.name}: {path} defines no {name}"
        assert defs[name] == int(line), f"{doc.name}: {name} is on line {defs[name]} of {path}, not {line}"


def test_backward_md_points_at_the_reference_code():
    assert len(LINK.findall((ROOT / "docs" / "backward.md").read_text())) >= 25


def fix_links():
    """Rewrite every line link of docs/*.md to where its name is defined now
    (``python tests/test_docs.py``, after code has moved)."""
    for doc in DOCS:
        text = doc.read_text()
        new = LINK.sub(lambda m: f"[`{m[1]}`](../{m[2]}#L{definitions(ROOT / m[2])[m[1]]})", text)
        if new != text:
            doc.write_text(new)
            print(f"updated {doc}")


if __name__ == "__main__":
    fix_links()
