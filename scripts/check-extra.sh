#!/usr/bin/env bash
# Extra checks run by scripts/check.sh (after its own steps) when this file is
# executable:
#   1. include/zcache.h is what cbindgen generates from crates/zcache-kglue now
#      (cbindgen --verify; installs cbindgen 0.29.4 when it is missing, prints a SKIP
#      line when it cannot);
#   2. the zcache-kglue-staticlib archive builds for the host and for
#      x86_64-unknown-none, and exports every function the header declares.
set -euo pipefail
cd "$(dirname "$0")/.."

CBINDGEN_VERSION=0.29.4
HEADER=include/zcache.h
CBINDGEN_ARGS=(--config crates/zcache-kglue/cbindgen.toml --crate zcache-kglue
               --output "$HEADER" crates/zcache-kglue)

# --- 1. header -------------------------------------------------------------------
cbindgen_bin=""
if command -v cbindgen >/dev/null 2>&1 \
    && cbindgen --version 2>/dev/null | grep -qx "cbindgen $CBINDGEN_VERSION"; then
    cbindgen_bin=$(command -v cbindgen)
elif [ -x "target/tools/bin/cbindgen" ] \
    && target/tools/bin/cbindgen --version 2>/dev/null | grep -qx "cbindgen $CBINDGEN_VERSION"; then
    cbindgen_bin=target/tools/bin/cbindgen
elif command -v cbindgen >/dev/null 2>&1; then
    # Another version is installed: keep it, put the pinned one beside the build.
    echo "cbindgen $(cbindgen --version 2>/dev/null) is not $CBINDGEN_VERSION: installing $CBINDGEN_VERSION into target/tools"
    if cargo install cbindgen --locked --version "$CBINDGEN_VERSION" --root target/tools; then
        cbindgen_bin=target/tools/bin/cbindgen
    fi
else
    echo "cbindgen not found: cargo install cbindgen --locked --version $CBINDGEN_VERSION (about 2 minutes)"
    if cargo install cbindgen --locked --version "$CBINDGEN_VERSION"; then
        cbindgen_bin=$(command -v cbindgen || echo "$HOME/.cargo/bin/cbindgen")
    fi
fi

if [ -n "$cbindgen_bin" ] && [ -x "$cbindgen_bin" ]; then
    echo "--- $cbindgen_bin --verify $HEADER"
    if ! "$cbindgen_bin" "${CBINDGEN_ARGS[@]}" --verify 2>/dev/null; then
        echo "FAIL: $HEADER is stale. Regenerate it with:"
        echo "  cbindgen ${CBINDGEN_ARGS[*]}"
        exit 1
    fi
    echo "$HEADER is current"
else
    echo "SKIP: cbindgen --verify of $HEADER: cbindgen $CBINDGEN_VERSION is not installed and 'cargo install cbindgen --locked --version $CBINDGEN_VERSION' failed"
fi

# --- 2. staticlib ----------------------------------------------------------------
echo "--- cargo build -p zcache-kglue-staticlib (host)"
cargo build -p zcache-kglue-staticlib
tdir=${CARGO_TARGET_DIR:-target}
archives=("$tdir/debug/libzcache_kglue_staticlib.a")
if rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-none; then
    echo "--- cargo build -p zcache-kglue-staticlib --target x86_64-unknown-none"
    cargo build -p zcache-kglue-staticlib --target x86_64-unknown-none
    archives+=("$tdir/x86_64-unknown-none/debug/libzcache_kglue_staticlib.a")
else
    echo "SKIP: bare-metal build of zcache-kglue-staticlib: the x86_64-unknown-none target is not installed"
fi

if command -v nm >/dev/null 2>&1; then
    # Functions the header declares (zcache_* followed by '('), minus the host's hooks.
    declared=$(grep -oE '\bzcache_[a-z_]+\(' "$HEADER" | tr -d '(' | sort -u \
        | grep -vE '^zcache_host_')
    for a in "${archives[@]}"; do
        exported=$(nm -g --defined-only "$a" 2>/dev/null | awk '$2 == "T" {print $3}' \
            | grep -E '^zcache_' | sort -u)
        missing=$(comm -23 <(echo "$declared") <(echo "$exported"))
        if [ -n "$missing" ]; then
            echo "FAIL: $a does not export: $missing"
            exit 1
        fi
        echo "$a exports all $(echo "$declared" | wc -l) functions of $HEADER"
    done
else
    echo "SKIP: symbol check of the staticlib archives: nm (binutils) is not installed"
fi
