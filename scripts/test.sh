#!/usr/bin/env bash
# `npm test`: every check CI runs, in order of cost. Assumes dependencies are installed
# (`npm run test:all` installs them first).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"

echo "== buf lint"
buf lint
echo "== buf generate leaves no diff"
buf generate
if [ -n "$(git status --porcelain -- gen)" ]; then
  git status --porcelain -- gen
  echo "gen/ is out of date: run 'npm run generate' and commit the result" >&2
  exit 1
fi
echo "== typecheck (tsc --strict)"
tsc --noEmit
echo "== biome (format + lint)"
biome check .
echo "== tests"
mapfile -t files < <(find test -name '*.test.ts' -not -path 'test/.tmp/*' | sort)
node --import tsx --test --test-reporter=spec "${files[@]}"
