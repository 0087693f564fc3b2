//! cleancache under a small simulated file system: files (real file pages) read
//! through a 64-page page cache that evicts clean pages into zcache and gets them back.
//!
//! `cargo run -p zcache-examples --example cleancache_fs`

fn main() {
    let p = zcache_examples::fs::Params::default();
    println!(
        "cleancache example: page cache {} pages, zcache limit {} frames, {} read requests, a file rewritten every {} reads\n",
        p.page_cache_pages, p.zcache_frames, p.reads, p.rewrite_every
    );
    let r = zcache_examples::fs::run(&p);
    println!("{r}");
    if r.wrong_pages != 0 || r.stored_after_unmount != 0 {
        eprintln!("FAILED: wrong pages or pages left after unmount");
        std::process::exit(1);
    }
}
