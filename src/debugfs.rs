// SPDX-License-Identifier: GPL-2.0

//! The debugfs directory `/sys/kernel/debug/qgroup_rs/` (SPEC §2).

use kernel::{
    debugfs::{Scope, ScopedDir},
    fmt,
    prelude::*,
    sync::Arc,
    uaccess::UserSliceReader,
};

use crate::{command::MAX_COMMAND, control::Control, files, fs::FsState};

/// Handles one write(2) to `control`: one command.
fn control_write(control: &Control, reader: &mut UserSliceReader) -> Result {
    let len = reader.len();
    if len > MAX_COMMAND {
        control.reject(EINVAL, "command longer than 1024 bytes");
        return Err(EINVAL);
    }
    let Ok(mut buf) = KVec::from_elem(0u8, len, GFP_KERNEL) else {
        control.reject(ENOMEM, "out of memory");
        return Err(ENOMEM);
    };
    if let Err(e) = reader.read_slice(&mut buf) {
        control.reject(e, "could not read the command");
        return Err(e);
    }
    control.run(&buf)
}

fn result_show(control: &Control, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    // `result` is a mutex: formatting into seq_file's buffer under it is
    // fine.
    writeln!(f, "{}", control.result().as_str())
}

/// A read callback rendering `view` of the instance with the instance to
/// itself (no half-done command is seen).
macro_rules! view {
    ($name:ident, $render:path) => {
        fn $name(control: &Control, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            control.fs().read(|fs| $render(fs, f))
        }
    };
}

view!(qgroups_show, files::qgroups);
view!(reservations_show, files::reservations);
view!(inodes_show, files::inodes);
view!(check_show, files::check);
view!(stats_show, files::stats);
view!(legacy_show, files::legacy);
view!(extents_show, files::extents);
view!(mappings_show, files::mappings);
view!(status_show, files::status);

/// The directory handed to [`populate`]: its files are owned by this module
/// when the kernel's debugfs supports owners, so that an open file keeps the
/// module loaded (`rmmod` fails with EBUSY until it is closed).
#[cfg(qgroup_rs_debugfs_owner)]
type Dir<'data, 'dir> = ScopedDir<'data, 'dir, crate::LocalModule>;
/// The directory handed to [`populate`], on a kernel whose debugfs files
/// have no owner: nothing stops an unload while a file is open.
#[cfg(not(qgroup_rs_debugfs_owner))]
type Dir<'data, 'dir> = ScopedDir<'data, 'dir>;

/// Whether an open debugfs file keeps the module loaded (the kernel has the
/// debugfs owner patch of `qemu/patches/`).
pub(crate) const FILES_PIN_MODULE: bool = cfg!(qgroup_rs_debugfs_owner);

fn populate<'data>(control: &'data Control, dir: &Dir<'data, '_>) {
    dir.write_only_callback_file(c"control", control, &control_write);
    dir.read_callback_file(c"result", control, &result_show);
    dir.read_callback_file(c"qgroups", control, &qgroups_show);
    dir.read_callback_file(c"reservations", control, &reservations_show);
    dir.read_callback_file(c"inodes", control, &inodes_show);
    dir.read_callback_file(c"check", control, &check_show);
    dir.read_callback_file(c"stats", control, &stats_show);
    dir.read_callback_file(c"legacy", control, &legacy_show);
    dir.read_callback_file(c"extents", control, &extents_show);
    dir.read_callback_file(c"mappings", control, &mappings_show);
    dir.read_callback_file(c"status", control, &status_show);
}

/// Creates the directory and its files around the instance; dropping the
/// returned scope removes them (waiting for writes in progress, a `stress`
/// run included).
pub(crate) fn create(fs: Arc<FsState>) -> impl PinInit<Scope<Control>> {
    #[cfg(qgroup_rs_debugfs_owner)]
    return Scope::owned_dir(Control::new(fs), c"qgroup_rs", populate);
    #[cfg(not(qgroup_rs_debugfs_owner))]
    Scope::dir(Control::new(fs), c"qgroup_rs", populate)
}

/// Ensures `FsState` can be shared through debugfs callbacks.
const _: fn() = || {
    fn is_send<T: Send>() {}
    is_send::<Arc<FsState>>();
};
