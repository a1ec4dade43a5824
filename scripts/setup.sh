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
# The project on the venv's import path, so `.venv/bin/python -m nuclei_app` runs from any
# folder, beside the user's data: a .pth file (no build, no network; rewritten each time, so
# a moved project follows).
site_packages=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
pwd > "$site_packages/nuclei_project.pth"
