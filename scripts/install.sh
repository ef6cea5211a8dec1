#!/usr/bin/env bash
# Installs the npm dependencies as locked, from the npm registry only (better-sqlite3
# builds from source against Node's headers; no binary downloads).
#
# Why `npm install` and not `npm ci`: the registry reachable here does not host other
# platforms' optional binaries (@biomejs/cli-darwin-*, @bufbuild/buf-win32-*, ...), so
# the lock cannot list them and `npm ci` refuses such a lock. `npm install` installs the
# same locked versions; we then check that it left package-lock.json untouched.
# Skips the install when node_modules was installed from this very package-lock.json and
# patches/. Applies patches/ (patch-package: small local fixes to dependencies, each
# explained in its file), then builds the server into dist/ (esbuild, under a second):
# `npm start` runs that.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=node_modules/.rtcplane-lock.sha256
want=$(cat package-lock.json patches/*.patch | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "npm dependencies: up to date"
  npm run --silent build
  exit 0
fi
npm install --no-audit --no-fund
if [ "$(cat package-lock.json patches/*.patch | sha256sum | cut -d' ' -f1)" != "$want" ]; then
  echo "package-lock.json changed during install: package.json and the lock are out of sync" >&2
  [ "${CI:-}" = "true" ] && exit 1
fi
npx --no-install patch-package --error-on-fail
echo "$want" > "$stamp"
npm run --silent build
