//! The one error type of live capture: what was being done, and the errno when the kernel
//! refused. Not a place for recovery logic; callers decide whether to retry.

use std::io;

use thiserror::Error;

/// Why opening, configuring or reading a capture ring failed.
#[derive(Debug, Error)]
pub enum CaptureError {
    /// The named interface does not exist in the caller's network namespace.
    #[error("interface {0} not found")]
    NoSuchInterface(String),
    /// The kernel refused for lack of privilege.
    #[error("{what}: permission denied (live capture needs root or CAP_NET_RAW)")]
    PermissionDenied {
        /// The call that was refused, e.g. `socket(AF_PACKET)`.
        what: &'static str,
        /// The errno as an I/O error.
        #[source]
        source: io::Error,
    },
    /// A system call failed.
    #[error("{what}: {source}")]
    Os {
        /// The call that failed, e.g. `setsockopt PACKET_RX_RING`.
        what: &'static str,
        /// The errno as an I/O error.
        #[source]
        source: io::Error,
    },
    /// The ring configuration cannot work (checked before asking the kernel).
    #[error("invalid ring configuration: {0}")]
    Config(String),
    /// The filter program cannot be attached to a socket.
    #[error("filter program has {0} instructions, the kernel takes at most 4096")]
    FilterTooLong(usize),
    /// A block handed over by the kernel has headers that point outside it.
    #[error("corrupt ring block {index}: {reason}")]
    CorruptBlock {
        /// Index of the block in the ring.
        index: usize,
        /// Which bound was broken.
        reason: &'static str,
    },
}

impl CaptureError {
    /// Builds the error for a failed call from `errno`, mapping EPERM/EACCES to
    /// [`CaptureError::PermissionDenied`].
    pub(crate) fn last_os(what: &'static str) -> Self {
        Self::from_io(what, io::Error::last_os_error())
    }

    /// Same as [`CaptureError::last_os`] for an error already taken from `errno`.
    pub(crate) fn from_io(what: &'static str, source: io::Error) -> Self {
        match source.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => Self::PermissionDenied { what, source },
            _ => Self::Os { what, source },
        }
    }

    /// The errno behind this error, when the kernel refused something.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::PermissionDenied { source, .. } | Self::Os { source, .. } => {
                source.raw_os_error()
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_errors_say_what_is_needed() {
        let e = CaptureError::from_io("socket(AF_PACKET)", io::Error::from_raw_os_error(1));
        assert!(matches!(e, CaptureError::PermissionDenied { .. }));
        assert_eq!(e.errno(), Some(1));
        let text = e.to_string();
        assert!(
            text.starts_with("socket(AF_PACKET): permission denied"),
            "{text}"
        );
        assert!(text.contains("CAP_NET_RAW"), "{text}");
    }

    #[test]
    fn other_errors_keep_the_call_and_errno() {
        let e = CaptureError::from_io(
            "setsockopt PACKET_RX_RING",
            io::Error::from_raw_os_error(libc::EINVAL),
        );
        assert_eq!(e.errno(), Some(libc::EINVAL));
        assert!(
            e.to_string().starts_with("setsockopt PACKET_RX_RING: "),
            "{e}"
        );
        assert_eq!(
            CaptureError::NoSuchInterface("eth9".into()).to_string(),
            "interface eth9 not found"
        );
        assert_eq!(CaptureError::NoSuchInterface("x".into()).errno(), None);
    }
}
