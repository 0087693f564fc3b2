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
    cc::Build::new()
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
