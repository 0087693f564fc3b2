//! Density of zsmalloc on the real page corpus, next to Linux's layout for the same sizes.
//!
//! Pages are the corpus at the build's page size (`Corpus::joined::<PAGE_SIZE>()`: at 16
//! and 64 KiB, 4 or 16 consecutive corpus pages of one object). Every non-same-filled
//! page is compressed with lz4_flex (block format); a page whose compressed form is over
//! `PAGE_SIZE` bytes is stored raw (`PAGE_SIZE` bytes), as zram does. Ideal = sum of
//! stored lengths / `PAGE_SIZE`. Linux columns are computed from the documented rules
//! for the same page size (`zsmalloc::linux`): classes every `PAGE_SIZE >> 8` bytes from
//! 32, 8-byte in-object handle, chain rule, class merging, huge class alone in a frame,
//! every zspage packed.
//!
//! Run: `cargo bench -p zsmalloc --bench density [--features page-16k|page-64k]`

use zcache_testdata::Corpus;
use zpool::{HeapPageSource, PAGE_SIZE, ZPool};
use zsmalloc::linux::LinuxLayout;
use zsmalloc::{PoolConfig, ZsPool};

/// Fixed-seed splitmix64, so the churn run is the same every time.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn compressed(corpus: &Corpus) -> Vec<Vec<u8>> {
    let pages = corpus.joined::<PAGE_SIZE>();
    let mut buf = vec![0u8; lz4_flex::block::get_maximum_output_size(PAGE_SIZE).max(4525)];
    pages
        .iter()
        .filter(|(r, _)| !r.same_filled())
        .map(|(_, page)| {
            let n = lz4_flex::block::compress_into(&page[..], &mut buf)
                .expect("scratch is large enough");
            if n > PAGE_SIZE {
                page.to_vec()
            } else {
                buf[..n].to_vec()
            }
        })
        .collect()
}

struct Row {
    name: String,
    objects: usize,
    ideal: f64,
    ours: usize,
    linux8: usize,
    linux4: usize,
    meta: usize,
    note: String,
}

fn print(rows: &[Row]) {
    println!(
        "| run | objects | ideal frames | zsmalloc-rs frames | x ideal | Linux chain 8 | x ideal | Linux chain 4 | x ideal | metadata B/object | note |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {:.0} | {} | {:.3} | {} | {:.3} | {} | {:.3} | {:.2} | {} |",
            r.name,
            r.objects,
            r.ideal.ceil(),
            r.ours,
            r.ours as f64 / r.ideal,
            r.linux8,
            r.linux8 as f64 / r.ideal,
            r.linux4,
            r.linux4 as f64 / r.ideal,
            r.meta as f64 / r.objects as f64,
            r.note
        );
    }
}

fn store_all(
    name: &str,
    objs: &[Vec<u8>],
    config: PoolConfig,
    l8: &LinuxLayout,
    l4: &LinuxLayout,
) -> Row {
    let pool = ZsPool::with_config(HeapPageSource, config).expect("pool");
    for o in objs {
        pool.store(o).expect("store");
    }
    let st = pool.stats();
    let lens = || objs.iter().map(|o| o.len());
    Row {
        name: name.into(),
        objects: st.objects,
        ideal: st.bytes as f64 / PAGE_SIZE as f64,
        ours: pool.total_frames(),
        linux8: l8.frames_for(lens()),
        linux4: l4.frames_for(lens()),
        meta: st.metadata_bytes,
        note: format!(
            "{} classes, freeable {}",
            pool.class_count(),
            pool.freeable()
        ),
    }
}

fn churn(objs: &[Vec<u8>], config: PoolConfig, l8: &LinuxLayout, l4: &LinuxLayout) -> (Row, Row) {
    let pool = ZsPool::with_config(HeapPageSource, config).expect("pool");
    let mut rng = Rng(0x5eed_2026);
    let mut live: Vec<(zpool::Handle, usize)> = objs
        .iter()
        .enumerate()
        .map(|(i, o)| (pool.store(o).expect("store"), i))
        .collect();
    // Free a random half (Fisher-Yates on the handle list, then free the tail).
    for i in (1..live.len()).rev() {
        let j = rng.below(i + 1);
        live.swap(i, j);
    }
    let keep = live.len() - live.len() / 2;
    let freed: Vec<usize> = live[keep..].iter().map(|&(_, i)| i).collect();
    for &(h, _) in &live[keep..] {
        pool.free(h).expect("free");
    }
    live.truncate(keep);
    // Store 2,000 new objects (at 4 KiB; 2,000 / PAGE_SCALE at larger pages, for the
    // corpus's fewer pages): pages drawn (fixed seed) from the freed half.
    for _ in 0..2000 / (PAGE_SIZE / 4096) {
        let i = freed[rng.below(freed.len())];
        live.push((pool.store(&objs[i]).expect("store"), i));
    }
    let lens: Vec<usize> = live.iter().map(|&(_, i)| objs[i].len()).collect();
    let mk = |name: &str, pool: &ZsPool<HeapPageSource>, note: String| {
        let st = pool.stats();
        Row {
            name: name.into(),
            objects: st.objects,
            ideal: st.bytes as f64 / PAGE_SIZE as f64,
            ours: pool.total_frames(),
            linux8: l8.frames_for(lens.iter().copied()),
            linux4: l4.frames_for(lens.iter().copied()),
            meta: st.metadata_bytes,
            note,
        }
    };
    let before = mk(
        "dev churn, before compact",
        &pool,
        format!("freeable {}", pool.freeable()),
    );
    let freed_frames = pool.compact();
    let md = pool.metadata();
    let n = pool.stats().objects as f64;
    let after = mk(
        "dev churn, after compact",
        &pool,
        format!(
            "compact() freed {freed_frames}, freeable now {}; metadata B/object: handle tables {:.2}, descriptors {:.2}, frame lists {:.2}, bitmaps {:.2}, fixed {:.2}",
            pool.freeable(),
            md.handle_tables as f64 / n,
            md.zspage_descriptors as f64 / n,
            md.frame_lists as f64 / n,
            md.bitmaps as f64 / n,
            md.fixed as f64 / n,
        ),
    );
    // Every live object still reads back intact.
    let mut out = vec![0u8; PAGE_SIZE];
    for &(h, i) in &live {
        let n = pool.read(h, &mut out).expect("read");
        assert_eq!(
            &out[..n],
            &objs[i][..],
            "object moved by compaction reads back"
        );
    }
    (before, after)
}

fn main() {
    let dev = compressed(&Corpus::dev());
    let sample = compressed(&Corpus::sample());
    let l8 = LinuxLayout::new(8);
    let l4 = LinuxLayout::new(4);
    let mut rows = Vec::new();
    let fine = format!(
        " [FINE: {} B classes, chain 16]",
        zsmalloc::linux::CLASS_DELTA
    );
    for (tag, config) in [("", PoolConfig::DEFAULT), (&fine[..], PoolConfig::FINE)] {
        rows.push(store_all(
            &format!("dev, every page once{tag}"),
            &dev,
            config,
            &l8,
            &l4,
        ));
        rows.push(store_all(
            &format!("sample, every page once{tag}"),
            &sample,
            config,
            &l8,
            &l4,
        ));
        let (b, a) = churn(&dev, config, &l8, &l4);
        rows.push(Row {
            name: format!("{}{tag}", b.name),
            ..b
        });
        rows.push(Row {
            name: format!("{}{tag}", a.name),
            ..a
        });
    }
    println!(
        "zsmalloc density on the testdata corpus at {} KiB pages (lz4_flex block compression, same-filled pages skipped)",
        PAGE_SIZE / 1024
    );
    let stored: usize = dev.iter().map(Vec::len).sum();
    println!(
        "dev: {} pages of {} KiB, {} bytes stored (incompressible pages raw): compression ratio {:.3}; ideal frames {:.1}",
        dev.len(),
        PAGE_SIZE / 1024,
        stored,
        (dev.len() * PAGE_SIZE) as f64 / stored as f64,
        stored as f64 / PAGE_SIZE as f64
    );
    println!(
        "layouts: zsmalloc-rs default {:?}; Linux chain 8: {} distinct classes, huge from {} bytes; chain 4: {} classes, huge from {}",
        PoolConfig::DEFAULT,
        l8.distinct_classes(),
        l8.huge_class_size(),
        l4.distinct_classes(),
        l4.huge_class_size()
    );
    print(&rows);
    let pool = ZsPool::new(HeapPageSource).expect("pool");
    for o in &dev {
        pool.store(o).expect("store");
    }
    let md = pool.metadata();
    let n = pool.stats().objects as f64;
    println!();
    println!(
        "metadata, dev stored once (default config), bytes per live object: handle tables {:.2}, zspage descriptors {:.2}, frame lists {:.2}, bitmaps {:.2}, fixed (pool + {} class structs + lookup) {:.2}; total {:.2}",
        md.handle_tables as f64 / n,
        md.zspage_descriptors as f64 / n,
        md.frame_lists as f64 / n,
        md.bitmaps as f64 / n,
        pool.class_count(),
        md.fixed as f64 / n,
        md.total() as f64 / n
    );
    println!("zspages held: {}", {
        let mut z = 0;
        pool.for_each_class(|c| z += c.zspages);
        z
    });
    println!();
    println!("write_class_table, dev stored once (default config):");
    let mut text = String::new();
    pool.write_class_table(&mut text).expect("fmt");
    print!("{text}");
    println!();
    println!("per-class table, dev stored once (default config):");
    println!(
        "| class | size | lens | frames/zspage | objs/zspage | objs allocated | objs used | frames | freeable |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    pool.for_each_class(|c| {
        if c.objs_used > 0 {
            println!(
                "| {} | {} | {}..={} | {} | {} | {} | {} | {} | {} |",
                c.index,
                c.size,
                c.min_len,
                c.max_len,
                c.frames_per_zspage,
                c.objs_per_zspage,
                c.objs_allocated,
                c.objs_used,
                c.frames,
                c.freeable
            );
        }
    });
}
