#!/usr/bin/env bash
# The project's one test command: everything CI checks, in order.
# Usage: scripts/check.sh            (from the repository root)
# Environment: CHECK_SKIP_LOOM=1 skips the loom models, CHECK_SKIP_MIRI=1 Miri,
# CHECK_SKIP_VALGRIND=1 valgrind, CHECK_SKIP_FUZZ=1 the fuzz targets (local quick runs only).
# CHECK_FUZZ_SECS: seconds per fuzz target (default 30); CHECK_FUZZ_MODE=stable forces the
# fuzz step's stable fallback, CHECK_FUZZ_MODE=cargo-fuzz fails instead of falling back.
set -euo pipefail
cd "$(dirname "$0")/.."

start=$(date +%s)
step() { echo; echo "==> [$(( $(date +%s) - start ))s] $*"; }

# Library crates that must build alone for a bare-metal target (no_std).
NO_STD_CRATES="zplat tmem-core zpool zcomp zbud zsmalloc zcache zcache-kglue"

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

step "the lock back ends (zplat::sync): the host's own locks (host-lock) and a blocking lock (std-lock)"
echo "--- cargo test -p zplat --features host-lock --test host_lock"
cargo test -p zplat --features host-lock --test host_lock
echo "--- cargo test -p zplat --features std-lock --lib"
cargo test -p zplat --features std-lock --lib
echo "--- cargo test -p zcache --features host-lock --test host_lock"
cargo test -p zcache --features host-lock --test host_lock
echo "--- cargo test -p zcache --features std-lock --test front_ends --test reclaim"
cargo test -p zcache --features std-lock --test front_ends --test reclaim

step "page sizes 16 KiB and 64 KiB (features page-16k, page-64k: zplat::PAGE_SIZE through the stack)"
# opt-level 1 for this step only: debug assertions and overflow checks stay on (the dev
# profile's), and the suites' 16/64 KiB pages run about 7x faster than unoptimised
# (the 64 KiB list: 342 s of tests at opt-level 0, 48 s at 1, on the dev machine).
export CARGO_PROFILE_DEV_OPT_LEVEL=1
for ps in page-16k page-64k; do
    for t in "zplat --lib" \
             "tmem-core --lib --test api --test model" \
             "zpool --lib" \
             "zpool-conformance --test self_test" \
             "zbud --lib --test conformance --test layout" \
             "zsmalloc --lib --test conformance --test contracts --test model" \
             "zcomp --lib --test api --test props --test sample" \
             "zcache --lib --test model --test front_ends --test reclaim --test shadow_swap --test handles --test alloc_failure" \
             "zcache-kglue-harness --test c_harness" \
             "zcache-cli --bin zcache" \
             "zcache-cli --test cli page_size"; do
        set -- $t
        c=$1; shift
        echo "--- cargo test -p $c --features $ps $*"
        cargo test -p "$c" --features "$ps" "$@"
    done
    echo "--- cargo test -p zcache --features $ps,lock-count --test lock_count"
    cargo test -p zcache --features "$ps,lock-count" --test lock_count
done
echo "--- cargo test --release -p zcache --features page-64k --test stack (no page on the stack)"
cargo test --release -p zcache --features page-64k --test stack
unset CARGO_PROFILE_DEV_OPT_LEVEL

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
        if [ "$c" = zcache-kglue ]; then
            echo "--- cargo build -p zcache-kglue --features host-lock --target x86_64-unknown-none"
            cargo build -p zcache-kglue --features host-lock --target x86_64-unknown-none
        fi
        for ps in page-16k page-64k; do
            echo "--- cargo build -p $c --features $ps --target x86_64-unknown-none"
            cargo build -p "$c" --features "$ps" --target x86_64-unknown-none
        done
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
        echo "--- miri: zplat --lib (fallible Box, TryArc, the lock layer)"
        CARGO_TARGET_DIR=target/miri cargo +nightly miri test -p zplat --lib
        echo "--- miri: zplat --features host-lock --test host_lock (the host lock's storage)"
        CARGO_TARGET_DIR=target/miri cargo +nightly miri test -p zplat --features host-lock \
            --test host_lock
        echo "--- miri: zpool --lib (frames and their tags, page sources, test sources)"
        CARGO_TARGET_DIR=target/miri PROPTEST_CASES=4 cargo +nightly miri test -p zpool --lib \
            -- --skip frame_table --skip frame_chain
        echo "--- miri: zbud --test layout (subset)"
        CARGO_TARGET_DIR=target/miri PROPTEST_CASES=4 cargo +nightly miri test -p zbud \
            --test layout -- first_buddy stale_double failed_allocation dropping_the_pool
        # zpool's FrameTable and FrameChain keep frames as numbers (exposed provenance:
        # strict provenance cannot express it), and zsmalloc's zspages reach their
        # frames through them: these run under permissive provenance.
        export MIRIFLAGS="-Zmiri-permissive-provenance"
        echo "--- miri: zpool --lib frame_table frame_chain (permissive provenance)"
        CARGO_TARGET_DIR=target/miri cargo +nightly miri test -p zpool --lib -- frame_table \
            frame_chain
        echo "--- miri: zsmalloc --test contracts (subset; permissive provenance)"
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

if [ "${CHECK_SKIP_FUZZ:-0}" = 1 ]; then
    step "SKIP: fuzz targets (CHECK_SKIP_FUZZ=1)"
else
    # Every target in fuzz/ for a bounded time (its own workspace and target dir,
    # fuzz/target). cargo-fuzz on nightly (libFuzzer, AddressSanitizer) when it can be
    # installed; otherwise the stable driver fuzz/tests/stable.rs runs the same target
    # bodies (fuzz/src/lib.rs) on a seeded generator after replaying fuzz/corpus/. The
    # committed seed corpus is only read: libFuzzer writes new inputs into the first
    # corpus directory it is given, a temporary one here.
    fuzz_secs=${CHECK_FUZZ_SECS:-30}
    fuzz_mode=${CHECK_FUZZ_MODE:-auto}
    case "$fuzz_mode" in
        auto|stable|cargo-fuzz) ;;
        *) echo "FAIL: CHECK_FUZZ_MODE=$fuzz_mode (auto, stable or cargo-fuzz)"; exit 1 ;;
    esac
    fuzz_why=""
    if [ "$fuzz_mode" = stable ]; then
        fuzz_why="CHECK_FUZZ_MODE=stable"
    else
        if ! cargo +nightly --version >/dev/null 2>&1; then
            echo "installing a nightly toolchain: rustup toolchain install nightly --profile minimal"
            rustup toolchain install nightly --profile minimal || fuzz_why="no nightly toolchain"
        fi
        if [ -z "$fuzz_why" ] && ! cargo fuzz --version >/dev/null 2>&1; then
            echo "installing cargo-fuzz: cargo install cargo-fuzz --locked"
            cargo install cargo-fuzz --locked || fuzz_why="cargo-fuzz could not be installed"
        fi
        if [ -z "$fuzz_why" ]; then
            echo "--- cargo +nightly fuzz build (release, debug assertions, AddressSanitizer)"
            cargo +nightly fuzz build || fuzz_why="cargo +nightly fuzz build failed"
        fi
        if [ -n "$fuzz_why" ] && [ "$fuzz_mode" = cargo-fuzz ]; then
            echo "FAIL: fuzz: CHECK_FUZZ_MODE=cargo-fuzz but $fuzz_why"
            exit 1
        fi
    fi
    if [ -z "$fuzz_why" ]; then
        step "fuzz: cargo-fuzz (nightly, libFuzzer, AddressSanitizer), ${fuzz_secs} s per target"
        fuzz_tmp=$(mktemp -d /tmp/zcache-fuzz.XXXXXX)
        trap 'rm -rf "$fuzz_tmp"' EXIT
        for t in $(cargo +nightly fuzz list); do
            mkdir -p "$fuzz_tmp/$t"
            seeds=()
            [ -d "fuzz/corpus/$t" ] && seeds=("$PWD/fuzz/corpus/$t")
            log="$fuzz_tmp/$t.log"
            if ! cargo +nightly fuzz run "$t" "$fuzz_tmp/$t" ${seeds[@]+"${seeds[@]}"} -- \
                -max_total_time="$fuzz_secs" -timeout=10 -rss_limit_mb=2048 \
                -print_final_stats=1 >"$log" 2>&1; then
                # From the first report line (panic, sanitizer, libFuzzer) to cargo-fuzz's
                # own backtrace, at most 150 lines; else the log's tail.
                first=$(grep -n -m1 -E 'panicked at|==[0-9]+==ERROR|ERROR: libFuzzer|ALARM|out-of-memory|deadly signal' \
                    "$log" | cut -d: -f1 || true)
                if [ -n "$first" ]; then
                    tail -n +"$(( first > 5 ? first - 5 : 1 ))" "$log" | sed '/^Stack backtrace:$/,$d' \
                        | head -n 150 || true
                else
                    tail -n 60 "$log"
                fi
                echo "FAIL: fuzz target $t (crash, timeout or out of memory; log above;"
                echo "      the input is in fuzz/artifacts/$t/, replay: cargo +nightly fuzz run $t FILE)"
                exit 1
            fi
            execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
            done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
            cov=$(sed -E -n 's/.* cov: ([0-9]+).*/\1/p' <<<"$done_line")
            corp=$(sed -E -n 's/.* corp: ([0-9]+)\/.*/\1/p' <<<"$done_line")
            n_seeds=0
            [ -d "fuzz/corpus/$t" ] && n_seeds=$(find "fuzz/corpus/$t" -type f | wc -l)
            echo "--- $t: ${execs:-?} executions in ${fuzz_secs} s, 0 crashes," \
                "coverage ${cov:-?} edges, corpus ${corp:-?} entries ($n_seeds seed files)"
        done
    else
        step "fuzz: stable fallback (seeded generator + corpus replay), ${fuzz_secs} s per target ($fuzz_why)"
        (cd fuzz && FUZZ_SECS="$fuzz_secs" cargo test --release --no-default-features --test stable)
    fi
fi

if [ -x scripts/check-extra.sh ]; then
    step "extra checks (scripts/check-extra.sh)"
    scripts/check-extra.sh
fi

step "all checks passed in $(( $(date +%s) - start ))s"
