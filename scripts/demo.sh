#!/usr/bin/env bash
# The product end to end on a fresh machine: installs what is missing, then `cdc demo` (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/cdc demo "$@"
