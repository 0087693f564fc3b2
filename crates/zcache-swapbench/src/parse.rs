//! Parsers of the kernel's text files the bench reads (each tested on real samples):
//! zram's `mm_stat`, zswap's debugfs directory, `/proc/vmstat`, `/proc/swaps`,
//! `/proc/PID/status`, cgroup v1 counters and swapd's `stats` file.

use std::collections::BTreeMap;
use std::path::Path;

/// `/sys/block/zramN/mm_stat` (Documentation/admin-guide/blockdev/zram.rst).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmStat {
    /// Uncompressed bytes stored (same-filled pages included).
    pub orig_data_size: u64,
    /// Compressed bytes stored.
    pub compr_data_size: u64,
    /// Memory zsmalloc holds for them (its frames), bytes.
    pub mem_used_total: u64,
    /// The most `mem_used_total` was.
    pub mem_used_max: u64,
    /// Same-filled pages (no memory beyond the table entry).
    pub same_pages: u64,
    /// Pages stored uncompressed.
    pub huge_pages: u64,
}

impl MmStat {
    /// Parses the one line: orig_data_size compr_data_size mem_used_total mem_limit
    /// mem_used_max same_pages pages_compacted huge_pages [huge_pages_since].
    pub fn parse(text: &str) -> Result<MmStat, String> {
        let v: Vec<u64> = text
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| format!("zram mm_stat is not numbers: {text:?}"))?;
        if v.len() < 8 {
            return Err(format!(
                "zram mm_stat has {} fields, 8 or more expected: {text:?}",
                v.len()
            ));
        }
        Ok(MmStat {
            orig_data_size: v[0],
            compr_data_size: v[1],
            mem_used_total: v[2],
            mem_used_max: v[4],
            same_pages: v[5],
            huge_pages: v[7],
        })
    }

    /// Pages zram holds (same-filled included).
    pub fn pages(&self) -> u64 {
        self.orig_data_size / 4096
    }
}

/// Numbers of a directory of one-number files (zswap's debugfs directory:
/// `pool_total_size`, `stored_pages`, `written_back_pages`, `reject_*`, ...). Files that
/// are not one number are left out.
pub fn number_dir(dir: &Path) -> Result<BTreeMap<String, u64>, String> {
    let mut out = BTreeMap::new();
    let rd = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Ok(text) = std::fs::read_to_string(e.path())
            && let Ok(v) = text.trim().parse::<u64>()
        {
            out.insert(name, v);
        }
    }
    Ok(out)
}

/// zswap's debugfs statistics the bench reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ZswapStats {
    /// Bytes of zsmalloc memory the pool holds (`pool_total_size`).
    pub pool_total_size: u64,
    /// Pages stored (`stored_pages`).
    pub stored_pages: u64,
    /// Pages written back to the swap device (`written_back_pages`).
    pub written_back_pages: u64,
    /// Stores refused as poorly compressible (`reject_compress_poor`).
    pub reject_compress_poor: u64,
    /// Pages stored uncompressed, where the kernel has the file
    /// (`stored_incompressible_pages`, 6.18).
    pub stored_incompressible_pages: u64,
    /// Every number of the directory, by file name.
    pub all: BTreeMap<String, u64>,
}

impl ZswapStats {
    /// From the numbers of the directory ([`number_dir`]); `stored_pages` and
    /// `pool_total_size` must be there.
    pub fn from_numbers(all: BTreeMap<String, u64>) -> Result<ZswapStats, String> {
        let need = |k: &str| {
            all.get(k)
                .copied()
                .ok_or_else(|| format!("zswap debugfs has no {k}"))
        };
        let get = |k: &str| all.get(k).copied().unwrap_or(0);
        Ok(ZswapStats {
            pool_total_size: need("pool_total_size")?,
            stored_pages: need("stored_pages")?,
            written_back_pages: get("written_back_pages"),
            reject_compress_poor: get("reject_compress_poor"),
            stored_incompressible_pages: get("stored_incompressible_pages"),
            all,
        })
    }
}

/// A `name value` file (/proc/vmstat, cgroup v1 memory.stat, swapd's stats): the
/// numeric values by name (comment lines and non-numbers left out).
pub fn key_values(text: &str) -> BTreeMap<String, i64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let k = w.next()?;
            let v = w.next()?.parse::<i64>().ok()?;
            Some((k.to_string(), v))
        })
        .collect()
}

/// pswpin and pswpout from /proc/vmstat's text.
pub fn pswp(vmstat: &str) -> Result<(u64, u64), String> {
    let kv = key_values(vmstat);
    let get = |k: &str| {
        kv.get(k)
            .map(|v| *v as u64)
            .ok_or_else(|| format!("/proc/vmstat has no {k}"))
    };
    Ok((get("pswpin")?, get("pswpout")?))
}

/// zswpin and zswpout from /proc/vmstat's text (pages loaded from / stored into zswap;
/// 0 where the kernel has no zswap).
pub fn zswp(vmstat: &str) -> (u64, u64) {
    let kv = key_values(vmstat);
    let get = |k: &str| kv.get(k).map_or(0, |v| *v as u64);
    (get("zswpin"), get("zswpout"))
}

/// One line of /proc/swaps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwapArea {
    /// Device or file name.
    pub name: String,
    /// Size, KiB.
    pub size_kib: u64,
    /// Used, KiB.
    pub used_kib: u64,
    /// Priority.
    pub priority: i32,
}

/// /proc/swaps (header line first).
pub fn swaps(text: &str) -> Vec<SwapArea> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            if w.len() < 5 {
                return None;
            }
            Some(SwapArea {
                name: w[0].to_string(),
                size_kib: w[2].parse().ok()?,
                used_kib: w[3].parse().ok()?,
                priority: w[4].parse().ok()?,
            })
        })
        .collect()
}

/// `VmRSS` of /proc/PID/status, bytes.
pub fn vm_rss(status: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let rest = l.strip_prefix("VmRSS:")?;
        let kib: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kib * 1024)
    })
}

/// utime + stime of /proc/PID/stat, in clock ticks (fields 14 and 15, counted after
/// the parenthesised command name, which may hold spaces).
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let w: Vec<&str> = after.split_whitespace().collect();
    // after ")": state is field 3, so utime (14) is index 11, stime (15) index 12.
    Some(w.get(11)?.parse::<u64>().ok()? + w.get(12)?.parse::<u64>().ok()?)
}

/// A cgroup v1 file holding one number (memory.max_usage_in_bytes, ...).
pub fn one_number(text: &str) -> Result<u64, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("not a number: {text:?}"))
}

/// PIDs of a cgroup.procs file.
pub fn pids(text: &str) -> Vec<i32> {
    text.split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Mount points of a filesystem type in /proc/mounts' text.
pub fn mounts_of_type(mounts: &str, fstype: &str) -> Vec<String> {
    mounts
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() >= 3 && w[2] == fstype).then(|| w[1].to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mm_stat_parses_and_refuses_short_or_bad_lines() {
        // As this kernel (6.18) prints it: nine fields.
        let m = MmStat::parse(
            "  9420800  2596123  2879488        0  2879488      120        0       35        0\n",
        )
        .unwrap();
        assert_eq!(m.orig_data_size, 9420800);
        assert_eq!(m.compr_data_size, 2596123);
        assert_eq!(m.mem_used_total, 2879488);
        assert_eq!(m.mem_used_max, 2879488);
        assert_eq!(m.same_pages, 120);
        assert_eq!(m.huge_pages, 35);
        assert_eq!(m.pages(), 2300);
        assert!(MmStat::parse("1 2 3").is_err());
        assert!(MmStat::parse("1 2 x 4 5 6 7 8").is_err());
    }

    #[test]
    fn zswap_debugfs_numbers_parse() {
        let dir = std::env::temp_dir().join(format!(
            "zcache-swapbench-unit-zswap-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        for (k, v) in [
            ("pool_total_size", "1310720\n"),
            ("stored_pages", "812\n"),
            ("written_back_pages", "3\n"),
            ("reject_compress_poor", "0\n"),
            ("pool_limit_hit", "0\n"),
        ] {
            std::fs::write(dir.join(k), v).unwrap();
        }
        std::fs::write(dir.join("not_a_number"), "lz4\n").unwrap();
        let s = ZswapStats::from_numbers(number_dir(&dir).unwrap()).unwrap();
        assert_eq!(s.pool_total_size, 1310720);
        assert_eq!(s.stored_pages, 812);
        assert_eq!(s.written_back_pages, 3);
        assert_eq!(s.stored_incompressible_pages, 0);
        assert!(!s.all.contains_key("not_a_number"));
        std::fs::remove_file(dir.join("stored_pages")).unwrap();
        assert!(ZswapStats::from_numbers(number_dir(&dir).unwrap()).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(number_dir(&dir).is_err());
    }

    #[test]
    fn vmstat_swaps_status_stat_and_cgroup_files_parse() {
        let vm = "nr_free_pages 123\npswpin 4567\npswpout 8910\npgfault 1\n";
        assert_eq!(pswp(vm), Ok((4567, 8910)));
        assert!(pswp("nr_free_pages 1\n").is_err());
        assert_eq!(zswp("zswpin 5\nzswpout 7\n"), (5, 7));
        assert_eq!(zswp(vm), (0, 0));
        let sw = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n\
                  /dev/zram1                              partition\t262140\t\t1024\t\t32767\n\
                  /var/tmp/x.swap                         file\t\t65532\t\t0\t\t-2\n";
        let a = swaps(sw);
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].name, "/dev/zram1");
        assert_eq!(
            (a[0].size_kib, a[0].used_kib, a[0].priority),
            (262140, 1024, 32767)
        );
        assert_eq!(a[1].priority, -2);
        assert!(swaps("Filename Type Size Used Priority\n").is_empty());
        let st = "Name:\tzcache\nVmPeak:\t  10000 kB\nVmRSS:\t    2048 kB\n";
        assert_eq!(vm_rss(st), Some(2 << 20));
        assert_eq!(vm_rss("Name: x\n"), None);
        let stat = "1234 (zcache (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0";
        assert_eq!(cpu_ticks(stat), Some(325));
        assert_eq!(one_number("146800640\n"), Ok(146800640));
        assert!(one_number("max\n").is_err());
        assert_eq!(pids("12\n345\n"), vec![12, 345]);
        assert!(pids("").is_empty());
        let kv = key_values("# zcache\nstored_pages 12\npool_frames 5\nbacking_file /var/tmp/x\n");
        assert_eq!(kv.get("stored_pages"), Some(&12));
        assert_eq!(kv.get("pool_frames"), Some(&5));
        assert!(!kv.contains_key("backing_file"));
        let m = "sysfs /sys sysfs rw 0 0\ndebugfs /sys/kernel/debug debugfs rw 0 0\n";
        assert_eq!(
            mounts_of_type(m, "debugfs"),
            vec!["/sys/kernel/debug".to_string()]
        );
        assert!(mounts_of_type(m, "fuse").is_empty());
    }
}
