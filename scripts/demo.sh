#!/usr/bin/env bash
# Runs the example workflow end to end against the local emulators: installs and starts them,
# builds wharf, runs workflows/ecs-example.toml, then shows the run and what it created.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
scripts/emulators.sh install
scripts/emulators.sh start
eval "$(scripts/emulators.sh env)"

cargo build -p wharf
wharf="${CARGO_TARGET_DIR:-target}/debug/wharf"
state_dir="${WHARF_STATE_DIR:-.wharf-demo}"

"$wharf" --state-dir "$state_dir" validate workflows/ecs-example.toml
"$wharf" --state-dir "$state_dir" run workflows/ecs-example.toml "$@"
"$wharf" --state-dir "$state_dir" status
echo "State is in $state_dir. The emulators keep running; stop them with scripts/emulators.sh stop."
