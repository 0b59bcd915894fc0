#!/usr/bin/env bash
# The README's two commands in the README's order in one fresh virtual environment
# (install and run, then the test install), then a command again: the second install
# must not be broken by what the first run left behind.  A 2-D ring run stands in for
# `minigan train` (it compiles and runs the same CPU kernels in a few seconds).
set -euo pipefail
venv=$1
python3 -m venv "$venv"
. "$venv/bin/activate"
python -m pip install --quiet --upgrade pip
python -m pip install --quiet .
minigan train --dataset ring --epochs 1 --out "$venv/run1" --quiet
python -m pip install --quiet -e ".[test]"
minigan train --dataset ring --epochs 1 --out "$venv/run2" --quiet
python -c "import minigan.runtime.cpu"
echo "the README's commands in order: install, run, test install, run again: ok"
