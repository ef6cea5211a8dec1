#!/usr/bin/env bash
# `npm test`: every check CI runs, in order of cost. Assumes dependencies are installed
# (`npm run test:all` installs them first).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"

echo "== buf lint"
buf lint
echo "== buf generate leaves no diff"
before=$(mktemp -d)
cp -r gen "$before/gen"
buf generate
if ! diff -r "$before/gen" gen; then
  echo "gen/ was out of date with proto/: 'npm run generate' rewrote it; commit the result" >&2
  rm -rf "$before"
  exit 1
fi
rm -rf "$before"
echo "== build (dist/server.js, what npm start runs)"
npm run --silent build
echo "== typecheck (tsc --strict)"
tsc --noEmit
echo "== biome (format + lint)"
biome check .
mapfile -t files < <(find test -name '*.test.ts' -not -path 'test/.tmp/*' | sort)
mapfile -t e2e < <(find test/e2e -name '*.e2e.test.ts' | sort)
# --test-force-exit: libwebrtc (@roamhq/wrtc) keeps native handles alive after its peers close.
echo "== tests (embedded SQLite store)"
node --import tsx --test --test-force-exit --test-reporter=spec "${files[@]}"
echo "== end-to-end tests again on PostgreSQL (DATABASE_URL; one throwaway server for the run)"
node --import tsx test/helpers/with-postgres.ts \
  node --import tsx --test --test-force-exit --test-reporter=spec "${e2e[@]}"
