//! The class-spacing sweep behind `PoolConfig::DEFAULT` at the build's page size (README,
//! "Page sizes"): frames / ideal of the dev corpus (`Corpus::joined::<PAGE_SIZE>()`,
//! lz4_flex, same-filled pages skipped) stored once, and stored `PAGE_SCALE` times (a
//! pool with as many objects as the 4 KiB dev set, where each class's partly filled last
//! frame weighs as little as at 4 KiB), for spacings given in 4 KiB bytes times
//! `PAGE_SCALE`; Linux's layout for the same lengths last.
//!
//! Run: `cargo bench -p zsmalloc --bench spacing [--features page-16k|page-64k]`

use zcache_testdata::Corpus;
use zpool::{HeapPageSource, PAGE_SIZE, ZPool};
use zsmalloc::linux::LinuxLayout;
use zsmalloc::{PoolConfig, ZsPool};

fn main() {
    let pages = Corpus::dev().joined::<PAGE_SIZE>();
    let mut buf = vec![0u8; lz4_flex::block::get_maximum_output_size(PAGE_SIZE)];
    let once: Vec<Vec<u8>> = pages
        .iter()
        .filter(|(r, _)| !r.same_filled())
        .map(|(_, p)| {
            let n = lz4_flex::block::compress_into(&p[..], &mut buf).expect("scratch");
            if n > PAGE_SIZE {
                p.to_vec()
            } else {
                buf[..n].to_vec()
            }
        })
        .collect();
    let s = PAGE_SIZE / 4096;
    let many: Vec<Vec<u8>> = (0..s).flat_map(|_| once.iter().cloned()).collect();
    let ratio = |objs: &[Vec<u8>], frames: usize| {
        let bytes: usize = objs.iter().map(Vec::len).sum();
        frames as f64 * PAGE_SIZE as f64 / bytes as f64
    };
    let frames = |objs: &[Vec<u8>], c: PoolConfig| {
        let pool = ZsPool::with_config(HeapPageSource, c).ok()?;
        for o in objs {
            pool.store(o).expect("store");
        }
        Some((pool.class_count(), pool.total_frames()))
    };
    println!(
        "{} KiB pages: {} objects stored once, {} stored {s} times; frames / ideal",
        PAGE_SIZE / 1024,
        once.len(),
        many.len()
    );
    println!("| small spacing | split | spacing | chain | classes | once | x{s} |");
    println!("|---|---|---|---|---|---|---|");
    let mut cands = Vec::new();
    for (ss, sp) in [
        (16, 16),
        (16, 24),
        (24, 32),
        (32, 32),
        (32, 48),
        (32, 64),
        (48, 48),
        (48, 64),
        (64, 64),
        (64, 96),
        (96, 128),
    ] {
        for split in [1024, 2048] {
            cands.push((ss, split, sp, 64));
        }
    }
    cands.push((32, 1024, 48, 16));
    cands.push((48, 1024, 48, 16));
    for (ss, split, sp, chain) in cands {
        let c = PoolConfig {
            max_chain: chain,
            min_class: 32,
            small_spacing: ss * s,
            split: split * s,
            spacing: sp * s,
        };
        let (Some((n, f1)), Some((_, fm))) = (frames(&once, c), frames(&many, c)) else {
            println!(
                "| {} | {} | {} | {chain} | invalid | | |",
                ss * s,
                split * s,
                sp * s
            );
            continue;
        };
        let mark = if c == PoolConfig::DEFAULT {
            " (default)"
        } else {
            ""
        };
        println!(
            "| {} | {} | {}{mark} | {chain} | {n} | {:.4} | {:.4} |",
            ss * s,
            split * s,
            sp * s,
            ratio(&once, f1),
            ratio(&many, fm)
        );
    }
    for chain in [8, 4] {
        let l = LinuxLayout::new(chain);
        let lens = |objs: &[Vec<u8>]| l.frames_for(objs.iter().map(Vec::len));
        println!(
            "| Linux | | {} | {chain} | {} | {:.4} | {:.4} |",
            zsmalloc::linux::CLASS_DELTA,
            l.distinct_classes(),
            ratio(&once, lens(&once)),
            ratio(&many, lens(&many))
        );
    }
}
