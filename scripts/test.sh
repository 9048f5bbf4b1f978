#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what is missing, then lint, types, import contracts
# and pytest against a real Kafka broker (KAFKA_BOOTSTRAP, else testcontainers, else the local jars).
# Extra arguments go to pytest, e.g. `scripts/test.sh tests/unit -k links`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy (strict)"
.venv/bin/mypy
echo "== import contracts"
.venv/bin/lint-imports
echo "== pytest"
exec .venv/bin/pytest "$@"
