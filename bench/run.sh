#!/usr/bin/env bash
# The benchmark command (see BENCHMARKS.md): builds wharf and the bench driver in release mode,
# installs the peers' tools (aws CLI + boto3, pinned) in a venv, starts the local emulators,
# and prints the tables. Options go to the driver: --runs N (default 5), --cli-runs N (3),
# --latency-runs N (3), --samples N (200), --skip-e2e (engine overhead only).
# Emulator ports and directories follow scripts/emulators.sh (WHARF_MOTO_PORT, ...).
set -euo pipefail
cd "$(dirname "$0")/.."

AWSCLI_VERSION=1.46.2
BOTO3_VERSION=1.44.2
TOOLS_DIR=${WHARF_TOOLS_DIR:-$HOME/.cache/wharf/tools}
VENV=$TOOLS_DIR/bench-venv

rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
cargo build --release -p wharf -p wharf-bench
# The workflow's build-push step packs workflows/app/dist/ecs-example-app into the image.
if grep -q 'plugin = "build-push"' workflows/ecs-example.toml && [[ ! -x workflows/app/dist/ecs-example-app ]]; then
  scripts/build-app.sh
fi
target=${CARGO_TARGET_DIR:-target}/release

if ! "$VENV/bin/python" -c 'import boto3' 2>/dev/null ||
  [[ $("$VENV/bin/aws" --version 2>&1) != aws-cli/$AWSCLI_VERSION* ]]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "awscli==$AWSCLI_VERSION" "boto3==$BOTO3_VERSION"
fi

scripts/emulators.sh install
scripts/emulators.sh start
eval "$(scripts/emulators.sh env)"

echo "# wharf benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr)," \
  "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "versions: $(rustc --version), wharf $("$target/wharf" --version 2>/dev/null | awk '{print $2}')," \
  "$("$VENV/bin/aws" --version 2>&1), boto3 $("$VENV/bin/python" -c 'import boto3; print(boto3.__version__)')," \
  "moto $("${WHARF_TOOLS_DIR:-$HOME/.cache/wharf/tools}/moto-venv/bin/python" -c 'import moto; print(moto.__version__)')"
echo
# moto's pid, so the driver can report the CPU moto spends on each tool's run.
moto_pid=$(ss -Hltnp "sport = :${WHARF_TEST_MOTO##*:}" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2 || true)
WHARF_BENCH_MOTO_PID=$moto_pid WHARF_BENCH_VENV=$VENV WHARF_BIN=$target/wharf "$target/wharf-bench" "$@"
