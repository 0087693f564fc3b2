//! Writes a page set as a corpus in the format of `testdata/README.md`: `pages.bin`,
//! `pages.idx` and a `manifest.json` describing sources and objects.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;

use serde_json::json;

use crate::error::CliError;
use crate::input::{PAGE_SIZE, PageSet, io_msg};

/// Writes `set` into `dir` (created if missing; existing corpus files are replaced).
pub fn write_corpus(set: &PageSet, dir: &Path) -> Result<(), CliError> {
    let fail = |what: &str, e: std::io::Error| {
        CliError::runtime(format!(
            "cannot write {}: {}",
            dir.join(what).display(),
            io_msg(&e)
        ))
    };
    fs::create_dir_all(dir).map_err(|e| fail("", e))?;
    let mut bin =
        BufWriter::new(fs::File::create(dir.join("pages.bin")).map_err(|e| fail("pages.bin", e))?);
    for p in &set.pages {
        bin.write_all(p).map_err(|e| fail("pages.bin", e))?;
    }
    bin.flush().map_err(|e| fail("pages.bin", e))?;
    let mut idx = Vec::with_capacity(set.records.len() * 16);
    for r in &set.records {
        idx.extend_from_slice(&r.source_id.to_le_bytes());
        idx.extend_from_slice(&r.flags.to_le_bytes());
        idx.extend_from_slice(&r.object_id.to_le_bytes());
        idx.extend_from_slice(&r.page_index.to_le_bytes());
    }
    fs::write(dir.join("pages.idx"), &idx).map_err(|e| fail("pages.idx", e))?;

    let names: BTreeMap<u16, &str> = set
        .sources
        .iter()
        .map(|(id, n)| (*id, n.as_str()))
        .collect();
    let mut per_source: BTreeMap<&str, u64> = BTreeMap::new();
    for r in &set.records {
        *per_source
            .entry(names.get(&r.source_id).copied().unwrap_or("unknown"))
            .or_default() += 1;
    }
    let manifest = json!({
        "name": dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        "note": { "what": set.description, "made_by": format!("zcache {}", env!("CARGO_PKG_VERSION")) },
        "format": {
            "page_size": PAGE_SIZE,
            "pages.bin": "concatenated 4096-byte pages",
            "pages.idx": "one 16-byte little-endian record per page: u16 source_id, u16 flags (bit0 zero-filled, bit1 same-filled 8-byte word), u32 object_id, u64 page_index; (object_id, page_index) is a natural tmem (oid, index) key"
        },
        "pages": set.len(),
        "sources": set.sources.iter().map(|(id, n)| (id.to_string(), n.clone())).collect::<BTreeMap<_, _>>(),
        "pages_per_source": per_source,
        "objects": set.objects.iter().map(|o| json!({"id": o.id, "source": o.source, "name": o.name})).collect::<Vec<_>>(),
    });
    let text = serde_json::to_string_pretty(&manifest)
        .map_err(|e| CliError::runtime(format!("manifest: {e}")))?;
    fs::write(dir.join("manifest.json"), text + "\n").map_err(|e| fail("manifest.json", e))?;
    Ok(())
}

// A corpus is written at 4 KiB only (`capture` refuses other builds).
#[cfg(all(test, not(any(feature = "page-16k", feature = "page-64k"))))]
mod tests {
    use super::*;
    use zcache_testdata::Corpus;

    #[test]
    fn a_written_corpus_loads_back_identically() {
        let set = crate::input::embedded_sample().expect("sample");
        let dir = std::env::temp_dir().join(format!("zcache-cli-out-{}", std::process::id()));
        write_corpus(&set, &dir).expect("write");
        let back = Corpus::load(&dir).expect("load");
        assert_eq!(back.pages(), &set.pages[..]);
        assert_eq!(back.records(), &set.records[..]);
        let m: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(dir.join("manifest.json")).expect("read"))
                .expect("json");
        assert_eq!(m["pages"], 1024);
        fs::remove_dir_all(&dir).expect("cleanup");
    }
}
