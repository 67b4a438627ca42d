#!/usr/bin/env bash
# Crash-resume torture (tests/e2e/torture.rs): N runs of workflows/ecs-example.toml against moto,
# each killed with SIGKILL at one point (before/after each AWS call in turn, or a random delay),
# resumed to the end, checked, torn down, checked again.
#
# Usage: scripts/torture.sh [N]      (default 200; WHARF_TORTURE_SEED=... to reproduce a run)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/emulators.sh start
eval "$(scripts/emulators.sh env)"
# The workflow builds and pushes the example app's image.
[[ -x workflows/app/dist/ecs-example-app ]] || scripts/build-app.sh
WHARF_TORTURE_N=${1:-200} exec cargo test -p wharf-tests --test torture -- --nocapture
