//! frontswap with a real swap file as the writeback target: more pages are swapped out
//! than zcache's frame limit holds; zcache writes its least recently used pages back to
//! the file; every page is swapped in again and verified, from zcache or the file.
//!
//! `cargo run -p zcache-examples --example frontswap_swapfile`

fn main() {
    let p = zcache_examples::swap::Params::default();
    println!(
        "frontswap example: {} slots swapped out, {} swapped out again with new contents\n",
        p.slots, p.reswaps
    );
    match zcache_examples::swap::run(&p) {
        Ok(r) => {
            println!("{r}");
            if r.wrong_pages != 0 || !r.file_removed {
                eprintln!("FAILED: wrong pages or swap file left behind");
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("swap file error: {e}");
            std::process::exit(1);
        }
    }
}
