#!/usr/bin/env bash
# Fuzzes workflow parsing + validation (target `workflow`) and template rendering (`template`)
# with cargo-fuzz / libFuzzer, SECONDS per target (default 600), one job (cores are shared).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Needs only the stable toolchain: RUSTC_BOOTSTRAP=1 unlocks the nightly flags cargo-fuzz passes.
# cargo-fuzz is installed into $WHARF_TOOLS (default /var/tmp/wharf-tools) when missing. The
# corpus is seeded from workflows/ and tests/fixtures/bad-workflows/; crashes land in
# fuzz/artifacts/<target>/ (add each as a regression fixture before fixing it).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(workflow template)

tools="${WHARF_TOOLS:-/var/tmp/wharf-tools}"
export PATH="$tools/bin:$PATH"
if ! command -v cargo-fuzz >/dev/null; then
    CARGO_TARGET_DIR="$tools/target" cargo install cargo-fuzz --locked --root "$tools"
fi
export RUSTC_BOOTSTRAP=1
target_dir="${CARGO_TARGET_DIR:-/var/tmp/wharf-target}/fuzz"

mkdir -p fuzz/corpus/workflow fuzz/corpus/template
cp workflows/*.toml tests/fixtures/bad-workflows/*.toml fuzz/corpus/workflow/
# Template seeds: every quoted string of the seed workflows that holds a `$`.
grep -ho '"[^"]*\$[^"]*"' workflows/*.toml tests/fixtures/bad-workflows/*.toml | sort -u | while read -r s; do
    printf '%s' "${s:1:${#s}-2}" >"fuzz/corpus/template/seed-$(printf '%s' "$s" | sha1sum | cut -c1-12)"
done

for t in "${targets[@]}"; do
    echo "== fuzzing $t for ${seconds}s"
    # -s none: the code under test is safe Rust, we hunt panics; debug assertions catch overflows.
    cargo fuzz run --fuzz-dir fuzz --target-dir "$target_dir" -s none --debug-assertions "$t" \
        "fuzz/corpus/$t" -- -max_total_time="$seconds" -dict=fuzz/dict/workflow.dict \
        -max_len=8192 -print_final_stats=1
done
