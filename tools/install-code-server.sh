#!/usr/bin/env bash
# Install a real code-server for the tests from npm (Node here is 20, so 4.100.3, the last release that runs on it),
# as the test notes describe: krb5 headers for its native module, and ripgrep's download cache pre-filled
# from Debian's ripgrep so its postinstall does not call GitHub. Usage: install-code-server.sh DIR
set -euo pipefail
dir="${1:?usage: install-code-server.sh DIR}"
ver=4.100.3
if [ -x "$dir/node_modules/.bin/code-server" ] && HOME=/tmp "$dir/node_modules/.bin/code-server" --version 2>/dev/null | grep -q "^$ver"; then
  echo "code-server $ver already in $dir"; exit 0
fi
export DEBIAN_FRONTEND=noninteractive
need=""
dpkg -s libkrb5-dev >/dev/null 2>&1 || need="$need libkrb5-dev"
command -v rg >/dev/null 2>&1 || need="$need ripgrep"
command -v npm >/dev/null 2>&1 || need="$need nodejs npm"
if [ -n "$need" ]; then apt-get update -qq && apt-get install -y -qq $need >/dev/null; fi
mkdir -p "$dir"; cd "$dir"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
cache="$tmp/vscode-ripgrep-cache-1.15.11"; mkdir -p "$cache" "$tmp/rg/bin"
cp "$(command -v rg)" "$tmp/rg/rg"
tar -czf "$cache/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz" -C "$tmp/rg" rg
[ -f package.json ] || echo '{"name": "persistlab-test-code-server", "private": true}' > package.json
TMPDIR="$tmp" npm_config_cache="$tmp/npm" npm_config_nodedir=/usr npm_config_yes=true npm_config_unsafe_perm=true \
  npm install --no-audit --no-fund --loglevel=error "code-server@$ver"
HOME="$tmp" "$dir/node_modules/.bin/code-server" --version | head -1
