#!/usr/bin/env bash
# AWS fault injection (tests/e2e/faults.rs): K deploy+teardown runs of workflows/ecs-example.toml
# through a proxy that fails 20% of the requests to moto (5xx, throttling, resets, hangs, slow
# answers, before or after moto applied them), then the fail-fast checks.
#
# Usage: scripts/faults.sh [K]       (default 50; WHARF_FAULT_RATE=0.2, WHARF_FAULTS_SEED=...)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/emulators.sh start
eval "$(scripts/emulators.sh env)"
# The workflow builds and pushes the example app's image.
[[ -x workflows/app/dist/ecs-example-app ]] || scripts/build-app.sh
WHARF_FAULTS_K=${1:-50} exec cargo test -p wharf-tests --test faults -- --nocapture --test-threads 1
