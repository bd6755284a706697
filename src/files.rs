// SPDX-License-Identifier: GPL-2.0

//! The read-only debugfs files' formats (SPEC §2).
//!
//! Each renderer runs under the filesystem lock and only reads: seq_file may
//! call it again with a larger buffer.

use kernel::fmt;

use crate::{
    extent_io_tree::MAX_END,
    extent_tree::DataExtent,
    fs::FsState,
    legacy::LegacySwitch,
    qgroup::{QgroupId, QgroupSnapshot, RsvType},
};

/// Number of characters `v` prints as.
fn width<T: core::fmt::Display + ?Sized>(v: &T) -> usize {
    struct Count(usize);
    impl fmt::Write for Count {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0 += s.len();
            Ok(())
        }
    }
    let mut count = Count(0);
    // `Count` never fails; a `Display` that did would only shorten the
    // count, never corrupt the table.
    let _ = fmt::Write::write_fmt(&mut count, format_args!("{v}"));
    count.0
}

/// A comma-separated list of qgroup ids, or `---`.
struct IdList<'a> {
    snapshot: Option<&'a QgroupSnapshot>,
    of: QgroupId,
    /// List the parents of `of` (else its children).
    parents: bool,
}

impl core::fmt::Display for IdList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(snapshot) = self.snapshot else {
            return f.write_str("---");
        };
        // Both relation lists are sorted, so each qgroup's parents and
        // children are one run each, found by binary search, ascending.
        let mut sep = "";
        let mut any = false;
        let mut write = |id: QgroupId| -> fmt::Result {
            any = true;
            let r = write!(f, "{sep}{id}");
            sep = ",";
            r
        };
        if self.parents {
            snapshot.parents_of(self.of).try_for_each(&mut write)?;
        } else {
            snapshot.children_of(self.of).try_for_each(&mut write)?;
        }
        if !any {
            f.write_str("---")?;
        }
        Ok(())
    }
}

/// `qgroups`: the `btrfs qgroup show -pcre --raw` table.
pub(crate) fn qgroups(fs: &FsState, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    const HEADER: [&str; 7] = [
        "qgroupid", "rfer", "excl", "max_rfer", "max_excl", "parent", "child",
    ];
    const DASHES: [&str; 7] = [
        "--------", "----", "----", "--------", "--------", "------", "-----",
    ];
    let snapshot = if fs.quota_enabled() {
        Some(fs.qgroups().snapshot().map_err(|_| fmt::Error)?)
    } else {
        None
    };
    let rows = snapshot.as_ref().map_or(&[][..], |s| &s.rows[..]);
    let relations = snapshot.as_ref();
    // Writes one line of cells, each padded to its column's width.
    let line = |f: &mut fmt::Formatter<'_>,
                widths: &[usize; 7],
                cells: [&dyn core::fmt::Display; 7]|
     -> fmt::Result {
        for (i, cell) in cells.iter().enumerate() {
            write!(f, "{cell}")?;
            if i + 1 < cells.len() {
                let pad = widths[i].saturating_sub(width(cell)) + 1;
                write!(f, "{:pad$}", "")?;
            }
        }
        writeln!(f)
    };
    let mut widths = HEADER.map(str::len);
    for row in rows {
        let q = &row.qgroup;
        let cells = [
            width(&row.id),
            width(&q.counters.rfer),
            width(&q.counters.excl),
            width(&q.max_rfer.unwrap_or(0)),
            width(&q.max_excl.unwrap_or(0)),
            width(&IdList {
                snapshot: relations,
                of: row.id,
                parents: true,
            }),
            width(&IdList {
                snapshot: relations,
                of: row.id,
                parents: false,
            }),
        ];
        for (w, c) in widths.iter_mut().zip(cells) {
            *w = (*w).max(c);
        }
    }
    for labels in [&HEADER, &DASHES] {
        let [a, b, c, d, e, g, h] = labels;
        line(f, &widths, [a, b, c, d, e, g, h])?;
    }
    for row in rows {
        let q = &row.qgroup;
        let (max_rfer, max_excl) = (q.max_rfer.unwrap_or(0), q.max_excl.unwrap_or(0));
        let parents = IdList {
            snapshot: relations,
            of: row.id,
            parents: true,
        };
        let children = IdList {
            snapshot: relations,
            of: row.id,
            parents: false,
        };
        line(
            f,
            &widths,
            [
                &row.id,
                &q.counters.rfer,
                &q.counters.excl,
                &max_rfer,
                &max_excl,
                &parents,
                &children,
            ],
        )?;
    }
    Ok(())
}

/// `reservations`: may_use by type and reserved, per qgroup.
pub(crate) fn reservations(fs: &FsState, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(
        f,
        "qgroupid data meta_prealloc meta_pertrans may_use reserved"
    )?;
    if !fs.quota_enabled() {
        return Ok(());
    }
    let snapshot = fs.qgroups().snapshot().map_err(|_| fmt::Error)?;
    for row in snapshot.rows.iter() {
        let c = &row.qgroup.counters;
        writeln!(
            f,
            "{} {} {} {} {} {}",
            row.id,
            c.may_use(RsvType::Data),
            c.may_use(RsvType::MetaPrealloc),
            c.may_use(RsvType::MetaPertrans),
            c.may_use_total(),
            c.reserved
        )?;
    }
    Ok(())
}

/// `inodes`: every io tree state, by (subvol, ino, start).
pub(crate) fn inodes(fs: &FsState, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "subvol ino start end bits")?;
    for inode in fs.inodes(None).map_err(|_| fmt::Error)?.iter() {
        let states = inode.io_tree.snapshot(0, MAX_END).map_err(|_| fmt::Error)?;
        for (range, bits) in states.iter() {
            writeln!(
                f,
                "{} {} {} {} {}",
                inode.subvol, inode.ino, range.start, range.end, bits
            )?;
        }
    }
    Ok(())
}

/// `check`: `ok`, or one `violation: ...` line each.
pub(crate) fn check(fs: &FsState, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let mut result = Ok(());
    let found = fs
        .check(|args| {
            if result.is_ok() {
                result = writeln!(f, "violation: {args}");
            }
        })
        .map_err(|_| fmt::Error)?;
    result?;
    if found == 0 {
        writeln!(f, "ok")?;
    }
    Ok(())
}

/// `stats`: `name value` lines.
pub(crate) fn stats(fs: &FsState, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let stats = fs.stats();
    writeln!(f, "underflows {}", fs.underflows())?;
    writeln!(f, "edquot {}", stats.edquot)?;
    writeln!(f, "commits {}", stats.commits)?;
    writeln!(f, "extent_states {}", fs.extent_states())?;
    writeln!(f, "leaks {}", stats.leaks)?;
    writeln!(f, "flushes {}", stats.flushes)?;
    writeln!(f, "rescans {}", stats.rescans)?;
    writeln!(f, "space_used {}", fs.space().used())
}

/// `legacy`: `name on|off` for each switch, in SPEC order.
pub(crate) fn legacy(fs: &FsState, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    for switch in LegacySwitch::ALL {
        let state = if fs.legacy().contains(switch) {
            "on"
        } else {
            "off"
        };
        writeln!(f, "{} {}", switch.name(), state)?;
    }
    Ok(())
}

/// An extent's roots (`old`: at the last commit) as a comma-separated list
/// of subvolume ids, or `-`.
struct Roots<'a> {
    extent: &'a DataExtent,
    old: bool,
}

/// Writes `ids` comma-separated, or `-` for none.
fn write_ids(f: &mut fmt::Formatter<'_>, ids: impl Iterator<Item = u64>) -> fmt::Result {
    let mut any = false;
    for id in ids {
        if any {
            f.write_str(",")?;
        }
        write!(f, "{id}")?;
        any = true;
    }
    if !any {
        f.write_str("-")?;
    }
    Ok(())
}

impl core::fmt::Display for Roots<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.old {
            write_ids(f, self.extent.old_roots())
        } else {
            write_ids(f, self.extent.roots())
        }
    }
}

/// `extents`: every live or dirty data extent, by id (SPEC §8.4).
pub(crate) fn extents(fs: &FsState, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "extent bytes owner roots old_roots")?;
    let tree = fs.extent_tree();
    for (id, extent) in tree.iter() {
        writeln!(
            f,
            "{} {} {} {} {}",
            id,
            extent.bytes,
            extent.owner,
            Roots { extent, old: false },
            Roots { extent, old: true }
        )?;
    }
    Ok(())
}

/// `mappings`: every file extent item, by (subvol, ino, start) (SPEC
/// §8.4).
pub(crate) fn mappings(fs: &FsState, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "subvol ino start end extent offset")?;
    for inode in fs.inodes(None).map_err(|_| fmt::Error)?.iter() {
        let data = inode.lock.lock();
        for (start, item) in data.items.iter() {
            // Items end inside the file's byte space.
            let end = start + (item.len - 1);
            writeln!(
                f,
                "{} {} {} {} {} {}",
                inode.subvol, inode.ino, start, end, item.extent, item.offset
            )?;
        }
    }
    Ok(())
}

/// `status`: quota mode, consistency and accounting (SPEC §8.4).
pub(crate) fn status(fs: &FsState, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let quota = fs.quota_enabled();
    writeln!(f, "mode {}", fs.qgroups().mode().name())?;
    writeln!(f, "inconsistent {}", u8::from(fs.inconsistent()))?;
    let accounting = quota && fs.qgroups().accounting();
    writeln!(f, "accounting {}", if accounting { "on" } else { "off" })
}
