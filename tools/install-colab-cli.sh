#!/usr/bin/env bash
# Google's own Colab client (google-colab-cli on PyPI, needs Python >= 3.12) in a venv of its own, for
# tests/test_colabdoor.py: its `colab ssh --proxy-mode` is the laptop's real ProxyCommand there. Built once per
# version and Python under BASE/colab-cli-HASH, reused after; prints the venv's `colab` last.
# Usage: install-colab-cli.sh BASE
set -euo pipefail
base="${1:?usage: install-colab-cli.sh BASE}"
pin="google-colab-cli==0.7.5"
# the newest pyenv Python >= 3.12, picked by version number (3.9 sorts after 3.13 as a string)
root="$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")"
py="$(for d in "$root"/versions/3.*; do v="${d##*/}"; [ -x "$d/bin/python3" ] && echo "$v $d/bin/python3"; done 2>/dev/null \
      | awk '{split($1, p, "."); if (p[1] == 3 && p[2] + 0 >= 12) printf "%05d %05d %s\n", p[2], p[3], $2}' | sort -r | head -1 | cut -d' ' -f3)"
[ -n "$py" ] || py="$(command -v python3.13 || command -v python3.12 || true)"
[ -n "$py" ] || { echo "google-colab-cli needs Python >= 3.12: none found (pyenv install 3.12, or apt-get install python3.12)" >&2; exit 1; }
key="$(printf '%s\n%s\n' "$pin" "$("$py" -c 'import sys; print(sys.version.split()[0])')" | sha256sum | cut -c1-12)"
dir="$base/colab-cli-$key"
if [ ! -f "$dir/.complete" ]; then
  rm -rf "$dir"; mkdir -p "$base"
  "$py" -m venv "$dir"
  log="$(mktemp)"
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$dir/bin/python" -m pip install -q "$pin" >"$log" 2>&1 || { cat "$log"; rm -rf "$dir"; exit 1; }
  rm -f "$log"
  "$dir/bin/python" -c 'from importlib.metadata import version; assert version("google-colab-cli") == "0.7.5"; import colab_cli.commands.ssh'
  touch "$dir/.complete"
fi
echo "$dir/bin/colab"
