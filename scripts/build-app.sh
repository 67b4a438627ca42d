#!/usr/bin/env bash
# Builds the example app (workflows/app, the tutorial's container program) as a static Linux
# binary and copies it to workflows/app/dist/ecs-example-app, where its Dockerfile COPYs it from.
#
# No musl target can be installed here, so the binary is glibc linked statically (crt-static).
# The flags apply to the target only (explicit --target), so build scripts and proc macros are
# built normally; the separate target dir keeps the main build's artifacts valid.
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-gnu
target_dir="${WHARF_APP_TARGET_DIR:-${CARGO_TARGET_DIR:-target}/ecs-example-app}"
# A relative CARGO_TARGET_DIR means the repository root, not workflows/app.
[[ $target_dir == /* ]] || target_dir="$PWD/$target_dir"

CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --release --locked --manifest-path workflows/app/Cargo.toml --target "$target" \
  --target-dir "$target_dir"

bin="$target_dir/$target/release/ecs-example-app"
if command -v file >/dev/null && ! file "$bin" | grep -Eq 'statically linked|static-pie linked'; then
  echo "build-app.sh: $bin is not statically linked: $(file -b "$bin")" >&2
  exit 1
fi
mkdir -p workflows/app/dist
# Copy to a temp name and rename: a reader never sees a half-written binary.
cp "$bin" workflows/app/dist/.ecs-example-app.tmp
mv workflows/app/dist/.ecs-example-app.tmp workflows/app/dist/ecs-example-app
echo "build-app.sh: built workflows/app/dist/ecs-example-app" >&2
