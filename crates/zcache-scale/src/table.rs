//! The text tables: the main one ([`header`], [`line`]) and the metadata by part
//! ([`parts_header`], [`parts_line`]).

use crate::Row;

/// The table's heading line (µs per page; "x bare" is zcache's pages/s over bare
/// compression's, "beyond" zcache's µs minus bare's).
pub fn header() -> String {
    format!(
        "{:<10} {:<9} {:<7} {:>9} {:>8} {:>8} {:>7} {:>8} {:>8} {:>9} {:>7} {:>8} {:>8} {:>7} {:>9} {:>7} {:>8} {:>6}\n",
        "workload",
        "allocator",
        "comp",
        "pages",
        "store us",
        "comp us",
        "x bare",
        "beyond",
        "load us",
        "decomp us",
        "x bare",
        "beyond",
        "inval us",
        "meta B",
        "verified",
        "missed",
        "mismatch",
        "round"
    )
}

/// The heading of the metadata-by-part table ([`parts_line`]): bytes per stored page.
pub fn parts_header() -> String {
    format!(
        "{:<10} {:<9} {:<7} {:>9} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}\n",
        "workload",
        "allocator",
        "comp",
        "pages",
        "meta B",
        "leaves",
        "maps",
        "handles",
        "frames",
        "zspages",
        "zbud",
        "rings",
        "fill"
    )
}

/// One row's metadata by part, bytes per stored page: tmem's tree nodes ("leaves") and
/// object maps, zsmalloc's handle tables, frame tables and zspages (descriptors, bitmaps,
/// fixed), zbud's, the reclaim rings, the fill-word table.
pub fn parts_line(r: &Row) -> String {
    let p = &r.metadata_parts_per_page;
    format!(
        "{:<10} {:<9} {:<7} {:>9} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>7.2}\n",
        r.workload,
        r.allocator,
        r.compressor,
        r.pages,
        r.metadata_bytes_per_page,
        p.tree_nodes,
        p.object_maps,
        p.handle_tables,
        p.frame_lists,
        p.zspages,
        p.zbud,
        p.rings,
        p.fill_table
    )
}

/// One row of the table.
pub fn line(r: &Row) -> String {
    format!(
        "{:<10} {:<9} {:<7} {:>9} {:>8.2} {:>8.2} {:>6.2}x {:>8.2} {:>8.2} {:>9.2} {:>6.2}x {:>8.2} {:>8.3} {:>7.1} {:>9} {:>7} {:>8} {:>6}\n",
        r.workload,
        r.allocator,
        r.compressor,
        r.pages,
        r.store_us,
        r.compress_us,
        r.store_vs_bare,
        r.store_beyond_us,
        r.load_us,
        r.decompress_us,
        r.load_vs_bare,
        r.load_beyond_us,
        r.invalidate_us,
        r.metadata_bytes_per_page,
        r.verified_pages,
        r.missed_loads,
        r.mismatches,
        if r.round == 0 {
            format!("med{}", r.median_of)
        } else {
            r.round.to_string()
        }
    )
}
