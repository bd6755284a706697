// SPDX-License-Identifier: GPL-2.0

//! Failures: a kernel errno plus the one-line reason `result` shows.
//!
//! Model operations fail with a [`Failure`], which carries the errno that the
//! `control` write returns and a short message in a fixed buffer, so building
//! one never allocates (it may happen under a spinlock).

use kernel::{fmt, prelude::*};

/// Capacity of a failure message; longer messages are cut. (It keeps a
/// `Failure` under 128 bytes, small enough to return by value.)
const MSG_CAP: usize = 112;

/// An errno with its message.
#[derive(Clone)]
pub(crate) struct Failure {
    errno: Error,
    /// An EDQUOT from a qgroup limit check, which a flush may cure
    /// (SPEC §1.5a); an injected one (`fail=meta`) is not.
    over_limit: bool,
    msg: [u8; MSG_CAP],
    len: u8,
}

/// Result of a model operation.
pub(crate) type QResult<T = ()> = core::result::Result<T, Failure>;

impl Failure {
    /// A failure with `errno` and a message formatted from `args`.
    pub(crate) fn new(errno: Error, args: fmt::Arguments<'_>) -> Self {
        let mut failure = Self {
            errno,
            over_limit: false,
            msg: [0; MSG_CAP],
            len: 0,
        };
        // The message is cut at `MSG_CAP`; writing it never fails (the
        // arguments are the crate's own `Display`s).
        let _ = fmt::Write::write_fmt(&mut failure, args);
        failure
    }

    /// An EDQUOT from a qgroup limit check, with a message from `args`.
    pub(crate) fn over_limit(args: fmt::Arguments<'_>) -> Self {
        Self {
            over_limit: true,
            ..Self::new(EDQUOT, args)
        }
    }

    /// Whether this is a qgroup limit check's EDQUOT (see
    /// [`Self::over_limit`]).
    pub(crate) fn is_over_limit(&self) -> bool {
        self.over_limit
    }

    /// The errno.
    pub(crate) fn errno(&self) -> Error {
        self.errno
    }

    /// The message.
    pub(crate) fn msg(&self) -> &str {
        // Only whole UTF-8 sequences are ever copied in (see `write_str`).
        core::str::from_utf8(&self.msg[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Write for Failure {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // The longest prefix of whole characters that fits.
        let len = usize::from(self.len);
        let mut take = s.len().min(MSG_CAP - len);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.msg[len..len + take].copy_from_slice(&s.as_bytes()[..take]);
        // MSG_CAP fits in a u8.
        self.len = (len + take) as u8;
        Ok(())
    }
}

impl From<Error> for Failure {
    fn from(errno: Error) -> Self {
        let reason = if errno == ENOMEM {
            "out of memory"
        } else {
            "operation failed"
        };
        Self::new(errno, format_args!("{reason}"))
    }
}

impl From<kernel::alloc::AllocError> for Failure {
    fn from(_: kernel::alloc::AllocError) -> Self {
        Self::from(ENOMEM)
    }
}

/// The symbolic name of the errnos the module returns.
pub(crate) fn errno_name(errno: Error) -> &'static str {
    const NAMES: [(Error, &str); 11] = [
        (EINVAL, "EINVAL"),
        (ENOENT, "ENOENT"),
        (EEXIST, "EEXIST"),
        (EDQUOT, "EDQUOT"),
        (EBUSY, "EBUSY"),
        (ENOTCONN, "ENOTCONN"),
        (ENOMEM, "ENOMEM"),
        (ENOSPC, "ENOSPC"),
        (EOVERFLOW, "EOVERFLOW"),
        (EFAULT, "EFAULT"),
        (EINTR, "EINTR"),
    ];
    NAMES
        .iter()
        .find(|(e, _)| *e == errno)
        .map_or("EIO", |(_, name)| name)
}

/// Returns early with a [`Failure`] built from an errno and a format string.
macro_rules! fail {
    ($errno:expr, $($arg:tt)+) => {
        return Err($crate::failure::Failure::new($errno, format_args!($($arg)+)))
    };
}
pub(crate) use fail;
