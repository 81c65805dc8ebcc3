#!/usr/bin/env bash
# A venv with Colab's widget stack (googlecolab/backend-info pip-freeze.txt, 2026-08) plus Jupyter Notebook 6.5, the
# front end that draws ipywidgets 7 with widgetsnbextension 3.6, for tests/test_browser7.py. Built once per set of pins
# under BASE/widgets7-HASH (HASH of the pins and the Python), reused after; prints the venv's python last.
# Usage: install-widgets7.sh BASE
set -euo pipefail
base="${1:?usage: install-widgets7.sh BASE}"
pins="ipython==7.34.0 ipywidgets==7.7.1 widgetsnbextension==3.6.10 ipykernel==6.17.1 jupyter_client==7.4.9 notebook==6.5.7
traitlets==5.7.1 tornado==6.5.7 fastcore==2.2.12 requests==2.32.4 tqdm==4.67.3"
# Python 3.11, as the test notes checked these pins with (the machine's, or pyenv's)
py="$(command -v python3.11 || true)"
[ -n "$py" ] || py="$(ls -d "$(pyenv root 2>/dev/null || echo /nonexistent)"/versions/3.11*/bin/python3.11 2>/dev/null | head -1 || true)"
[ -n "$py" ] || py="$(command -v python3)"
key="$(printf '%s\n%s\n' "$pins" "$("$py" -c 'import sys; print(sys.version.split()[0])')" | sha256sum | cut -c1-12)"
dir="$base/widgets7-$key"
if [ ! -f "$dir/.complete" ]; then
  rm -rf "$dir"; mkdir -p "$base"
  "$py" -m venv "$dir"
  log="$(mktemp)"
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$dir/bin/python" -m pip install -q $pins >"$log" 2>&1 || { cat "$log"; rm -rf "$dir"; exit 1; }
  rm -f "$log"
  "$dir/bin/python" -c 'import ipywidgets, notebook, IPython; assert ipywidgets.__version__ == "7.7.1" and notebook.__version__ == "6.5.7" and IPython.__version__ == "7.34.0"'
  touch "$dir/.complete"
fi
echo "$dir/bin/python"
