#!/usr/bin/env bash
# Creates .venv and installs the given requirements file into it (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
requirements="${1:-requirements.txt}"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -r "$requirements"
# The project itself, editable: `.venv/bin/python -m nuclei_app` then runs from any folder.
# (PYTHONWARNINGS: setuptools warns about flat layouts on every editable install.)
PYTHONWARNINGS=ignore .venv/bin/python -m pip install --quiet --no-deps --editable .
