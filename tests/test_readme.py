"""The README says what the command line does: its list of ``minigan train`` options is the
parser's, and the exit-status scheme it documents holds for every command."""
import pathlib
import re

import pytest

from minigan import __version__
from minigan.cli import EXAMPLES, main
from minigan.cli import bench as bench_cli

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def subparsers():
    import argparse  # noqa: PLC0415

    captured = {}
    real = argparse.ArgumentParser.parse_args

    def grab(self, args=None, namespace=None):
        if self.prog == "minigan":
            for action in self._actions:
                if isinstance(action, argparse._SubParsersAction):
                    captured.update(action.choices)
        raise SystemExit(0)

    argparse.ArgumentParser.parse_args = grab
    try:
        with pytest.raises(SystemExit):
            main(["summary"])
    finally:
        argparse.ArgumentParser.parse_args = real
    return captured


def options(parser):
    return {s for a in parser._actions for s in a.option_strings if s.startswith("--")} - {"--help"}


def test_the_readme_lists_every_train_option_and_no_other():
    listed = re.search(r"`minigan train --help` lists every option \((.*?)\)", README, re.S).group(1)
    in_readme = set(re.findall(r"`(--[a-z0-9-]+)", listed))
    assert in_readme == options(subparsers()["train"])


def test_every_option_has_help_and_every_command_has_examples():
    parsers = dict(subparsers(), bench=bench_cli.parser())
    assert set(parsers) == set(EXAMPLES)
    for name, p in parsers.items():
        for a in p._actions:
            if a.option_strings:
                assert a.help, f"minigan {name} {a.option_strings[0]} has no help"
        assert p.epilog.startswith("examples:"), name
        assert "examples:\n  minigan " + name in p.format_help()


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"minigan {__version__}"


def status(argv, capsys):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert "Traceback" not in err and isinstance(code, int), (argv, code, err)
    return code, err


@pytest.mark.parametrize("argv, said", [
    (["sample", "--checkpoint", "missing.npz"], "no checkpoint at missing.npz"),
    (["eval", "--checkpoint", "missing.npz"], "no checkpoint at missing.npz"),
    (["sample", "--checkpoint", "corrupt.npz"], "corrupt.npz"),
    (["eval", "--checkpoint", "corrupt.npz", "--no-csv"], "corrupt.npz"),
    (["train", "--resume", "--out", "nothing-here"], "--resume"),
    (["train", "--model", "mlp", "--clusters", "1"], "clusters"),
    (["train", "--threads", "0"], "--threads"),
    (["summary", "--model", "vae"], "--model"),
    (["gradcheck", "--tol", "-1"], "--tol"),
    (["bench", "--repeats", "0"], "--repeats"),
    (["bench", "--threads", "0"], "--threads"),
])
def test_bad_usage_or_input_exits_2_in_one_line(tmp_path, monkeypatch, capsys, argv, said):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "corrupt.npz").write_bytes(b"not a checkpoint")
    code, err = status(argv, capsys)
    assert code == 2 and said in err, err
    assert len(err.strip().splitlines()) == 1, err


def test_a_bad_minigan_threads_exits_2(monkeypatch, capsys):
    monkeypatch.setenv("MINIGAN_THREADS", "lots")
    code, err = status(["gradcheck"], capsys)
    assert code == 2 and "MINIGAN_THREADS must be an integer >= 1" in err


def test_the_readme_states_the_scheme():
    assert "**Exit status**, the same for every command: 0 done; 2 bad usage or input" in README
    assert "1 a failure at run time" in README and "130 Ctrl-C" in README
