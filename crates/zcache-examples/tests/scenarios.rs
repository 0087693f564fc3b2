//! Runs each example's scenario on small settings and checks what it claims.

use zcache_examples::{fs, hypervisor, swap};

#[test]
fn cleancache_fs_serves_evicted_pages_and_never_stale_ones() {
    let r = fs::run(&fs::Params {
        reads: 1500,
        rewrite_every: 150,
        ..fs::Params::default()
    });
    assert_eq!(r.wrong_pages, 0, "{r}");
    assert!(r.cleancache_hits > 0, "{r}");
    assert!(r.cleancache_puts > 0, "{r}");
    // Every cleancache hit is a disk read saved.
    assert_eq!(
        r.disk_reads + r.cleancache_hits,
        r.disk_reads_without,
        "{r}"
    );
    assert!(r.rewrites > 0 && r.invalidated_pages > 0, "{r}");
    assert!(r.peak_frames <= fs::Params::default().zcache_frames, "{r}");
    assert_eq!(r.stored_after_unmount, 0, "{r}");
}

#[test]
fn frontswap_writes_back_to_the_file_and_every_page_comes_back() {
    let p = swap::Params {
        zcache_frames: 48,
        slots: 500,
        reswaps: 100,
        seed: 11,
    };
    let r = swap::run(&p).unwrap();
    assert_eq!(r.wrong_pages, 0, "{r}");
    assert_eq!(r.swap_outs, 600);
    assert_eq!(r.stored + r.refused, r.swap_outs);
    assert!(r.written_back > 0, "nothing written back: {r}");
    assert!(r.loads_from_file > 0 && r.loads_from_zcache > 0, "{r}");
    assert_eq!(r.loads_from_file + r.loads_from_zcache, 500);
    assert!(r.peak_frames <= 48, "{r}");
    assert!(r.file_removed, "{r}");
}

#[test]
fn hypervisor_guests_are_isolated_capped_and_survive_a_destroy() {
    let p = hypervisor::Params {
        zcache_frames: 200,
        persistent_puts: 120,
        ephemeral_puts: 100,
        shared_puts: 40,
        caps: [300, 300, 60],
        seed: 5,
    };
    let r = hypervisor::run(&p).unwrap();
    let text = r.to_string();
    for g in r.before.iter().chain(&r.after) {
        assert_eq!(g.wrong, 0, "{text}");
        assert_eq!(g.pers_lost, 0, "{text}");
        assert_eq!(g.pers_hits, g.pers_checked, "{text}");
        assert!(g.pers_checked >= g.pers_stored, "{text}");
    }
    // The small guest hit its cap; the big ones did not.
    assert!(r.before[2].pers_over_cap > 0, "{text}");
    assert_eq!(r.before[0].pers_over_cap, 0, "{text}");
    // db saw web's shared pages before and after web was destroyed.
    assert!(r.before[1].shared_hits > 0, "{text}");
    assert!(r.after[0].shared_hits > 0, "{text}");
    // Four refusals: unauthorised join, shared persistent, unknown pool, dead guest.
    assert_eq!(r.access_refusals.len(), 4, "{text}");
    assert!(r.stored_after_destroy < r.stored_before_destroy, "{text}");
    assert!(r.frames_after_destroy < r.frames_before_destroy, "{text}");
    assert!(r.peak_frames <= 200, "{text}");
    assert_eq!((r.stored_at_end, r.frames_at_end), (0, 0), "{text}");
}
