#!/usr/bin/env bash
# Install configurable-http-proxy (JupyterHub's proxy, from npm) into a local dir for the hub tests, as
# the test notes describe. Usage: install-chp.sh DIR
set -euo pipefail
dir="${1:?usage: install-chp.sh DIR}"
ver=5.3.0
if [ -x "$dir/node_modules/.bin/configurable-http-proxy" ] && "$dir/node_modules/.bin/configurable-http-proxy" --version 2>/dev/null | grep -q "^$ver"; then
  echo "configurable-http-proxy $ver already in $dir"; exit 0
fi
command -v npm >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
mkdir -p "$dir"; cd "$dir"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
[ -f package.json ] || echo '{"name": "persistlab-test-chp", "private": true}' > package.json
npm_config_cache="$tmp/npm" npm_config_yes=true npm install --no-audit --no-fund --loglevel=error "configurable-http-proxy@$ver"
"$dir/node_modules/.bin/configurable-http-proxy" --version
