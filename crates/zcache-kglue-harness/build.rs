//! Compiles the C harness (c/harness.c) against the committed header include/zcache.h.

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let include = root.join("include");
    println!("cargo:rerun-if-changed=c/harness.c");
    println!("cargo:rerun-if-changed=c/harness.h");
    println!(
        "cargo:rerun-if-changed={}",
        include.join("zcache.h").display()
    );
    let mut build = cc::Build::new();
    // The page size, as a host defines it for a library built with page-16k / page-64k.
    for (feature, define) in [
        ("PAGE_16K", "ZCACHE_PAGE_16K"),
        ("PAGE_64K", "ZCACHE_PAGE_64K"),
    ] {
        if std::env::var_os(format!("CARGO_FEATURE_{feature}")).is_some() {
            build.define(define, None);
        }
    }
    build
        .file("c/harness.c")
        .include(&include)
        .std("c11")
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .flag_if_supported("-Wpedantic")
        .flag_if_supported("-Wstrict-prototypes")
        .flag_if_supported("-Wmissing-prototypes")
        .flag_if_supported("-Wno-missing-field-initializers")
        .compile("zcache_kglue_harness");
    println!("cargo:rustc-link-lib=pthread");
}
