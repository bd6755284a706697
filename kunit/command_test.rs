// SPDX-License-Identifier: GPL-2.0

//! KUnit suite `qgroup_rs_command`: the `control` command parser, every verb,
//! every size suffix and every error class.

use kernel::prelude::*;

#[kunit_tests(qgroup_rs_command)]
mod tests {
    use kernel::prelude::*;

    use crate::{
        changeset::ChangesetName,
        command::{parse, parse_size, Request, MAX_COMMAND},
        fs::op::{DataOp, FileRange, InstanceOp, MetaOp, QgroupList},
        ids::{Ino, SubvolId},
        legacy::LegacySwitch,
        qgroup::{QgroupId, RsvType},
    };

    fn qg(level: u64, id: u64) -> QgroupId {
        QgroupId::new(level, id).unwrap_or_else(|| QgroupId::level0(0))
    }

    fn cs(name: &str) -> ChangesetName {
        ChangesetName::new(name).unwrap_or_else(|| unreachable!())
    }

    fn fr(subvol: u64, ino: u64, off: u64, len: u64) -> FileRange {
        FileRange {
            subvol: SubvolId(subvol),
            ino: Ino(ino),
            off,
            len,
        }
    }

    /// The errno a command is refused with, or 0 when it parses.
    fn errno(cmd: &[u8]) -> i32 {
        parse(cmd).map_or_else(|f| f.errno().to_errno(), |_| 0)
    }

    fn qgroups(ids: &[QgroupId]) -> QgroupList {
        let mut list = QgroupList::new();
        for &id in ids {
            list.push(id);
        }
        list
    }

    #[test]
    fn every_verb_parses() -> Result {
        let cases: &[(&str, Request)] = &[
            (
                "quota enable",
                InstanceOp::QuotaEnable { simple: false }.into(),
            ),
            (
                "quota enable simple",
                InstanceOp::QuotaEnable { simple: true }.into(),
            ),
            ("quota disable", InstanceOp::QuotaDisable.into()),
            (
                "subvol create 256",
                InstanceOp::SubvolCreate(SubvolId(256), QgroupList::new()).into(),
            ),
            (
                "qgroup create 1/100",
                InstanceOp::QgroupCreate(qg(1, 100)).into(),
            ),
            (
                "qgroup destroy 0/5",
                InstanceOp::QgroupDestroy(qg(0, 5)).into(),
            ),
            (
                "qgroup assign 0/5 1/100",
                InstanceOp::QgroupAssign(qg(0, 5), qg(1, 100)).into(),
            ),
            (
                "qgroup remove 1/1 2/1",
                InstanceOp::QgroupRemove(qg(1, 1), qg(2, 1)).into(),
            ),
            (
                "qgroup limit 10M 0/5",
                InstanceOp::QgroupLimit {
                    excl: false,
                    max: Some(10 << 20),
                    id: qg(0, 5),
                }
                .into(),
            ),
            (
                "qgroup limit -e none 1/1",
                InstanceOp::QgroupLimit {
                    excl: true,
                    max: None,
                    id: qg(1, 1),
                }
                .into(),
            ),
            (
                "qgroup limit -e 0 0/5",
                InstanceOp::QgroupLimit {
                    excl: true,
                    max: Some(0),
                    id: qg(0, 5),
                }
                .into(),
            ),
            (
                "write 5 257 0 2048",
                DataOp::Write(fr(5, 257, 0, 2048), false).into(),
            ),
            (
                "write 5 257 2048 2048 fail=meta",
                DataOp::Write(fr(5, 257, 2048, 2048), true).into(),
            ),
            (
                "fallocate 5 256 0 1M",
                DataOp::Fallocate(fr(5, 256, 0, 1 << 20)).into(),
            ),
            ("writeback", InstanceOp::WritebackAll.into()),
            (
                "writeback 5 257",
                DataOp::Writeback(SubvolId(5), Ino(257)).into(),
            ),
            (
                "truncate 5 257 5000",
                DataOp::Truncate(SubvolId(5), Ino(257), 5000).into(),
            ),
            ("unlink 5 257", DataOp::Unlink(SubvolId(5), Ino(257)).into()),
            ("commit", InstanceOp::Commit.into()),
            ("quota rescan", InstanceOp::QuotaRescan.into()),
            (
                "subvol delete 300",
                InstanceOp::SubvolDelete(SubvolId(300)).into(),
            ),
            (
                "subvol snapshot 256 300 1/1 2/2",
                InstanceOp::SubvolSnapshot {
                    src: SubvolId(256),
                    dst: SubvolId(300),
                    inherit: qgroups(&[qg(1, 1), qg(2, 2)]),
                }
                .into(),
            ),
            (
                "subvol create 300 1/1",
                InstanceOp::SubvolCreate(SubvolId(300), qgroups(&[qg(1, 1)])).into(),
            ),
            (
                "clone 5 257 4K 8K 256 258 64K",
                DataOp::Clone(fr(5, 257, 4096, 8192), fr(256, 258, 65536, 8192)).into(),
            ),
            ("sync", InstanceOp::Sync.into()),
            (
                "reserve 5 257 0 4K cs_1",
                DataOp::Reserve(fr(5, 257, 0, 4096), cs("cs_1")).into(),
            ),
            (
                "free 5 257 0 4K",
                DataOp::Free(fr(5, 257, 0, 4096), None).into(),
            ),
            (
                "free 5 257 0 4K a",
                DataOp::Free(fr(5, 257, 0, 4096), Some(cs("a"))).into(),
            ),
            (
                "release 5 257 0 4K",
                DataOp::Release(fr(5, 257, 0, 4096)).into(),
            ),
            ("changeset drop a", DataOp::ChangesetDrop(cs("a")).into()),
            (
                "meta reserve 5 16K prealloc",
                DataOp::Meta(MetaOp::Reserve(RsvType::MetaPrealloc), SubvolId(5), 16384).into(),
            ),
            (
                "meta free 5 16K pertrans",
                DataOp::Meta(MetaOp::Free(RsvType::MetaPertrans), SubvolId(5), 16384).into(),
            ),
            (
                "meta convert 5 32K",
                DataOp::Meta(MetaOp::Convert, SubvolId(5), 32768).into(),
            ),
            (
                "legacy no_reserved_stage on",
                InstanceOp::Legacy(LegacySwitch::NoReservedStage, true).into(),
            ),
            (
                "legacy free_ignores_changeset off",
                InstanceOp::Legacy(LegacySwitch::FreeIgnoresChangeset, false).into(),
            ),
            (
                "legacy release_by_length on",
                InstanceOp::Legacy(LegacySwitch::ReleaseByLength, true).into(),
            ),
            ("reset", InstanceOp::Reset.into()),
        ];
        for (text, want) in cases {
            let got = parse(text.as_bytes());
            let ok = got.as_ref().is_ok_and(|c| c == want);
            if !ok {
                pr_err!("'{}' parsed wrong\n", text);
            }
            assert!(ok);
        }
        Ok(())
    }

    /// A failure message longer than its buffer is cut at the last whole
    /// character that fits, across several pieces of one format.
    #[test]
    fn failure_messages_are_cut_at_a_character() -> Result {
        let ascii = crate::failure::Failure::new(EINVAL, format_args!("{:0>200}", 7));
        assert_eq!(ascii.msg().len(), 112);
        assert!(ascii.msg().bytes().all(|b| b == b'0' || b == b'7'));
        // 'é' is two bytes: 55 of them fill 110, then "xy" fits and "z" not.
        const ACCENTS: &str = "ééééééééééééééééééééééééééééééééééééééééééééééééééééééé";
        let cut = crate::failure::Failure::new(EINVAL, format_args!("{}xyz", ACCENTS));
        assert_eq!(cut.msg().len(), 112);
        assert!(cut.msg().ends_with("xy"));
        // 56 of them: the last byte of room cannot hold half of one.
        let half = crate::failure::Failure::new(EINVAL, format_args!("a{}é", ACCENTS));
        assert_eq!(half.msg().len(), 111);
        assert_eq!(half.errno(), EINVAL);
        Ok(())
    }

    #[test]
    fn blanks_and_one_trailing_newline() -> Result {
        assert_eq!(parse(b"  commit \n").ok(), Some(InstanceOp::Commit.into()));
        assert_eq!(
            parse(b"write\t5  257 0\t\t4k\n").ok(),
            Some(DataOp::Write(fr(5, 257, 0, 4096), false).into())
        );
        assert_eq!(errno(b"commit\n\n"), EINVAL.to_errno());
        assert_eq!(errno(b"commit\r\n"), EINVAL.to_errno());
        assert_eq!(errno(b""), EINVAL.to_errno());
        assert_eq!(errno(b"\n"), EINVAL.to_errno());
        Ok(())
    }

    #[test]
    fn size_suffixes() -> Result {
        let cases: &[(&str, u64)] = &[
            ("0", 0),
            ("4096", 4096),
            ("4k", 4096),
            ("4K", 4096),
            ("3m", 3 << 20),
            ("3M", 3 << 20),
            ("2g", 2 << 30),
            ("2G", 2 << 30),
            ("1t", 1 << 40),
            ("1T", 1 << 40),
            ("18446744073709551615", u64::MAX),
            ("16777215T", 16_777_215 << 40),
        ];
        for &(text, want) in cases {
            assert_eq!(parse_size(text).ok(), Some(want));
        }
        for bad in [
            "",
            "k",
            "1.5M",
            "-1",
            "+1",
            "1KB",
            "1P",
            "0x10",
            "18446744073709551616",
            "16777216T",
            " 1",
        ] {
            let refused = parse_size(bad).is_err_and(|f| f.errno() == EINVAL);
            if !refused {
                pr_err!("size '{}' was accepted\n", bad);
            }
            assert!(refused);
        }
        Ok(())
    }

    #[test]
    fn every_error_class_is_einval() -> Result {
        let bad: &[&[u8]] = &[
            // Unknown verbs and wrong arity.
            b"frobnicate",
            b"quota",
            b"quota on",
            b"quota enable now",
            b"subvol create",
            b"subvol delete",
            b"subvol delete 256 257",
            b"subvol snapshot 256",
            b"subvol create 256 0/x",
            b"subvol create 256 1/1 1/2 1/3 1/4 1/5 1/6 1/7 1/8 1/9 1/10 1/11 1/12 1/13 1/14 1/15 1/16 1/17",
            b"quota rescan now",
            b"clone 5 257 0 4K 5 258",
            b"clone 5 257 0 4K 5 258 0 1",
            b"clone 5 257 0 0 5 258 0",
            b"qgroup create",
            b"qgroup limit 1M",
            b"qgroup limit -e 0/5",
            b"write 5 257 0",
            b"write 5 257 0 4K fail=data",
            b"write 5 257 0 4K fail=meta extra",
            b"writeback 5",
            b"truncate 5 257",
            b"unlink 5",
            b"commit now",
            b"reserve 5 257 0 4K",
            b"changeset drop",
            b"meta reserve 5 16K",
            b"meta reserve 5 16K data",
            b"meta convert 5",
            b"legacy no_reserved_stage",
            b"legacy no_such_switch on",
            b"legacy release_by_length yes",
            b"reset now",
            // Bad numbers and ids.
            b"write 5 257 x 4K",
            b"write 5 257 0 4Q",
            b"qgroup create 1/",
            b"qgroup create /1",
            b"qgroup create 1-1",
            b"qgroup create 65536/1",
            b"qgroup create 1/281474976710656",
            // Zero length and ranges past 2^63.
            b"write 5 257 0 0",
            b"reserve 5 257 0 0 a",
            b"fallocate 5 257 9223372036854775807 2",
            b"write 5 257 8388608T 1",
            b"truncate 5 257 9223372036854775809",
            // Level rules and inode numbers.
            b"qgroup create 0/7",
            b"qgroup assign 1/1 1/2",
            b"qgroup assign 2/1 1/1",
            b"qgroup remove 1/1 0/5",
            b"write 5 255 0 4K",
            b"unlink 5 0",
            // Changeset names.
            b"reserve 5 257 0 4K Bad",
            b"reserve 5 257 0 4K a-b",
            b"reserve 5 257 0 4K seventeen_chars_x",
            b"changeset drop \xc3\xa9",
        ];
        for cmd in bad {
            let e = errno(cmd);
            if e != EINVAL.to_errno() {
                pr_err!(
                    "'{}' gave {}, want EINVAL\n",
                    core::str::from_utf8(cmd).unwrap_or("?"),
                    e
                );
            }
            assert_eq!(e, EINVAL.to_errno());
        }
        // Reaching 2^63 exactly is fine.
        assert_eq!(errno(b"write 5 257 9223372036854771712 4096"), 0);
        assert_eq!(errno(b"truncate 5 257 9223372036854775808"), 0);
        assert_eq!(errno(b"qgroup create 65535/281474976710655"), 0);
        Ok(())
    }

    #[test]
    fn hostile_bytes_are_einval() -> Result {
        assert_eq!(errno(b"commit\0"), EINVAL.to_errno());
        assert_eq!(errno(b"com\0mit"), EINVAL.to_errno());
        assert_eq!(errno(b"commit \xff\xfe"), EINVAL.to_errno());
        assert_eq!(errno(b"\x01\x02\x03"), EINVAL.to_errno());
        let mut long = KVec::from_elem(b' ', MAX_COMMAND + 1, GFP_KERNEL)?;
        long[..6].copy_from_slice(b"commit");
        assert_eq!(errno(&long), EINVAL.to_errno());
        long.truncate(MAX_COMMAND);
        assert_eq!(errno(&long), 0);
        let msg = parse(b"frobnicate").err().map(|f| f.errno());
        assert_eq!(msg, Some(EINVAL));
        Ok(())
    }
}
