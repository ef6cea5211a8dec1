#!/usr/bin/env bash
# Installs the npm dependencies exactly as locked, from the npm registry only
# (better-sqlite3 builds from source against Node's headers; no binary downloads).
# Skips `npm ci` when node_modules was installed from this very package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=node_modules/.rtcplane-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "npm dependencies: up to date"
  exit 0
fi
npm ci --no-audit --no-fund
echo "$want" > "$stamp"
