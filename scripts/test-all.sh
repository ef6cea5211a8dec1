#!/usr/bin/env bash
# The README's second quick-start command (and what .ci/run calls): install every
# dependency (Debian packages, then npm), then run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-system-deps.sh
bash scripts/install.sh
bash scripts/build-mediasoup-worker.sh >/dev/null
npm test
