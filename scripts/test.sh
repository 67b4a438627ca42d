#!/usr/bin/env bash
# The project's single test command: installs and starts the local emulators
# (scripts/emulators.sh), exports their settings, builds the example app (scripts/build-app.sh),
# then runs `cargo test --workspace "$@"`.
# Emulators are left running for the next run (fast); set WHARF_STOP_EMULATORS=1 to stop them.
set -euo pipefail
cd "$(dirname "$0")/.."

# Guest plugins are built for wasm32-wasip2.
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  rustup target add wasm32-wasip2
fi

scripts/emulators.sh install
scripts/emulators.sh start
eval "$(scripts/emulators.sh env)"

# The example app's static binary: the image tests and the deployment build its image.
scripts/build-app.sh

status=0
cargo test --workspace "$@" || status=$?

if [[ ${WHARF_STOP_EMULATORS:-} == 1 ]]; then
  scripts/emulators.sh stop
else
  echo "test.sh: emulators left running (stop: scripts/emulators.sh stop)" >&2
fi
exit "$status"
