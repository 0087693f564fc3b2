//! A hypervisor serving three guests with Xen tmem-style operations: private pools
//! per guest, a shared ephemeral pool joined by two guests by uuid, per-guest limits,
//! one guest destroyed while the others keep running.
//!
//! `cargo run -p zcache-examples --example hypervisor`

fn main() {
    let p = zcache_examples::hypervisor::Params::default();
    match zcache_examples::hypervisor::run(&p) {
        Ok(r) => {
            println!("{r}");
            let wrong: u64 = r
                .before
                .iter()
                .chain(&r.after)
                .map(|g| g.wrong + g.pers_lost)
                .sum();
            if wrong != 0 || r.stored_at_end != 0 || r.frames_at_end != 0 {
                eprintln!("FAILED: wrong or lost pages, or pages left at the end");
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("tmem error: {e:?}");
            std::process::exit(1);
        }
    }
}
