#!/usr/bin/env bash
# The project's one test command: everything CI checks, in order.
# Usage: scripts/check.sh            (from the repository root)
# Environment: CHECK_SKIP_LOOM=1 skips the loom models, CHECK_SKIP_MIRI=1 Miri,
# CHECK_SKIP_VALGRIND=1 valgrind (local quick runs only).
set -euo pipefail
cd "$(dirname "$0")/.."

start=$(date +%s)
step() { echo; echo "==> [$(( $(date +%s) - start ))s] $*"; }

# Library crates that must build alone for a bare-metal target (no_std).
NO_STD_CRATES="tmem-core zpool zcomp zbud zsmalloc zcache zcache-kglue"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test --workspace (unit, integration, property and doc tests)"
cargo test --workspace

step "no lock held across a host callback (feature lock-count: counted lock guards)"
for c in zpool zbud zsmalloc zcache; do
    echo "--- cargo test -p $c --features lock-count --test lock_count"
    cargo test -p "$c" --features lock-count --test lock_count
done

step "release build: every zcache path fits a 16 KiB (kernel) stack"
cargo test --release -p zcache --test stack

step "no_std builds for x86_64-unknown-none"
have_none_target=1
if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-none; then
    echo "installing rustup target x86_64-unknown-none"
    if ! rustup target add x86_64-unknown-none; then
        have_none_target=0
    fi
fi
for c in $NO_STD_CRATES; do
    [ -d "crates/$c" ] || continue
    if [ "$have_none_target" = 1 ]; then
        echo "--- cargo build -p $c --target x86_64-unknown-none"
        cargo build -p "$c" --target x86_64-unknown-none
    else
        echo "SKIP: no_std build of $c: rustup could not install the x86_64-unknown-none target"
    fi
done

if [ "${CHECK_SKIP_LOOM:-0}" = 1 ]; then
    step "SKIP: loom models (CHECK_SKIP_LOOM=1)"
else
    step "loom models (--cfg loom, release, LOOM_MAX_PREEMPTIONS=2)"
    for t in crates/*/tests/loom.rs; do
        [ -f "$t" ] || continue
        c=$(basename "$(dirname "$(dirname "$t")")")
        echo "--- loom: $c"
        RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}" \
            CARGO_TARGET_DIR=target/loom \
            cargo test --release -p "$c" --test loom
    done
fi

if [ "${CHECK_SKIP_MIRI:-0}" = 1 ]; then
    step "SKIP: Miri (CHECK_SKIP_MIRI=1)"
else
    step "Miri (nightly): zpool's unit tests and a subset of the allocators' directed tests"
    have_miri=1
    if ! cargo +nightly miri --version >/dev/null 2>&1; then
        echo "installing Miri: rustup component add miri rust-src --toolchain nightly"
        if ! rustup component add miri rust-src --toolchain nightly; then
            echo "installing a nightly toolchain with Miri"
            rustup toolchain install nightly --profile minimal --component miri,rust-src \
                || have_miri=0
        fi
    fi
    if [ "$have_miri" = 1 ] && cargo +nightly miri --version >/dev/null 2>&1; then
        # Strict provenance: frames are pointers the page sources hand around. Small
        # proptest case counts: Miri runs ~100x slower than native code.
        export MIRIFLAGS="-Zmiri-strict-provenance"
        CARGO_TARGET_DIR=target/miri cargo +nightly miri setup
        echo "--- miri: zpool --lib (frames, page sources, test sources)"
        CARGO_TARGET_DIR=target/miri PROPTEST_CASES=4 cargo +nightly miri test -p zpool --lib
        echo "--- miri: zbud --test layout (subset)"
        CARGO_TARGET_DIR=target/miri PROPTEST_CASES=4 cargo +nightly miri test -p zbud \
            --test layout -- first_buddy stale_double failed_allocation dropping_the_pool
        echo "--- miri: zsmalloc --test contracts (subset)"
        CARGO_TARGET_DIR=target/miri PROPTEST_CASES=4 cargo +nightly miri test -p zsmalloc \
            --test contracts -- stale_and_forged huge_objects zspages_grow_lazily \
            read_with_maps corrupted_headers
        unset MIRIFLAGS
    else
        echo "SKIP: Miri: the nightly toolchain's miri component could not be installed"
    fi
fi

if [ "${CHECK_SKIP_VALGRIND:-0}" = 1 ]; then
    step "SKIP: valgrind memcheck (CHECK_SKIP_VALGRIND=1)"
elif ! command -v valgrind >/dev/null 2>&1; then
    step "SKIP: valgrind memcheck: valgrind is not installed (apt-get install valgrind)"
else
    step "valgrind memcheck: directed test suites (no invalid access, no definite leak)"
    # crate:test-target pairs: the directed tests of each layer (the long property
    # tests run natively above; under valgrind they would take an hour).
    for spec in tmem-core:api zbud:layout zsmalloc:contracts zcache:front_ends zcache:reclaim; do
        c=${spec%%:*}; t=${spec##*:}
        exe=$(cargo test -p "$c" --test "$t" --no-run --message-format=json 2>/dev/null \
            | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["executable"])' | tail -1)
        if [ -z "$exe" ]; then
            echo "FAIL: could not find the test binary of $c --test $t"
            exit 1
        fi
        echo "--- valgrind $c --test $t"
        # The 4 x 2048-page replay of the sample runs natively above; skipped here for time.
        valgrind --quiet --error-exitcode=99 --leak-check=full --show-possibly-lost=no \
            --errors-for-leak-kinds=definite \
            "$exe" --test-threads=1 -q --skip sample_through_both_front_ends_byte_exact
    done
fi

if [ -x scripts/check-extra.sh ]; then
    step "extra checks (scripts/check-extra.sh)"
    scripts/check-extra.sh
fi

step "all checks passed in $(( $(date +%s) - start ))s"
