#!/usr/bin/env bash
# A Colab-like run of every chapter: a separate Python 3.12 environment that starts as Colab's does (ipywidgets
# 7.7.1, torch and Jupyter already there), the package installed NON-editable from this checkout (as a chapter's
# set-up cell installs it from the repository), then each chapter copied alone into an empty folder and executed
# at the default scale, with progress bars on. Usage: scripts/colab_like_test.sh [python3.12]
set -euo pipefail
cd "$(dirname "$0")/.."
# Colab's Python: the one given, else the first python3.12 that actually runs (a pyenv shim may exist without
# its version being active, so try pyenv's own folders too).
PY312=""
for candidate in "${1:-}" python3.12 "$(pyenv root 2>/dev/null)"/versions/3.12*/bin/python3.12 /usr/bin/python3.12; do
  if [ -n "$candidate" ] && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1; then
    PY312="$candidate"; break
  fi
done
if [ -z "$PY312" ]; then
  echo "test-colab needs Python 3.12 (Colab's version): install it (e.g. pyenv install 3.12) or pass its path." >&2
  exit 1
fi
echo "Colab-like environment with $("$PY312" --version) ($PY312)"
VENV=.venv-colab
if [ ! -x "$VENV/bin/python" ]; then
  "$PY312" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# What a Colab runtime already has before the course is installed (torch pinned like CI's main environment).
"$VENV/bin/python" -m pip install --quiet -c constraints.txt "ipywidgets==7.7.1" ipykernel nbclient nbformat torch torchvision
# The course package, as the set-up cell would install it: not editable, from the repository's files.
"$VENV/bin/python" -m pip install --quiet --no-cache-dir .
rm -rf build
"$VENV/bin/python" scripts/colab_like_test.py book
