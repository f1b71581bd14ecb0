//! What a capture ring should look like: interface, ring geometry, fanout, promiscuity, filter
//! and snap length, with defaults and the checks that can be made before asking the kernel.
//! Not the socket itself (see `ring`).

use wire::bpf::Program;

use crate::error::CaptureError;

/// Size of the `tpacket3_hdr` plus the `sockaddr_ll` that follows it, rounded to the ring
/// alignment: the smallest frame slot the kernel accepts (`TPACKET3_HDRLEN`).
pub const TPACKET3_HDRLEN: u32 = 68;

/// Alignment of frames and of `tp_frame_size` in the ring (`TPACKET_ALIGNMENT`).
pub const TPACKET_ALIGNMENT: u32 = 16;

/// Default snap length: libpcap's `MAXIMUM_SNAPLEN`, i.e. whole frames, including the 64 KiB
/// super-frames a NIC with receive offloads hands up.
pub const DEFAULT_SNAPLEN: u32 = 262_144;

/// How a fanout group spreads frames over its sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanoutMode {
    /// `PACKET_FANOUT_HASH`: by the kernel's symmetric flow hash, so both directions of a
    /// TCP/UDP conversation reach the same socket.
    Hash,
    /// `PACKET_FANOUT_CPU`: by the CPU that received the frame.
    Cpu,
    /// `PACKET_FANOUT_LB`: round robin.
    LoadBalance,
}

impl FanoutMode {
    /// The kernel's `PACKET_FANOUT_*` number.
    pub fn number(self) -> u16 {
        match self {
            Self::Hash => 0,
            Self::LoadBalance => 1,
            Self::Cpu => 2,
        }
    }
}

/// Membership of a `PACKET_FANOUT` group: every socket of the group gets a disjoint share of
/// the interface's frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fanout {
    /// Group id, shared by all sockets of the group (per network namespace).
    pub group_id: u16,
    /// How frames are spread.
    pub mode: FanoutMode,
    /// `PACKET_FANOUT_FLAG_DEFRAG`: reassemble IP fragments before hashing, so every fragment
    /// of a datagram reaches the socket that gets its first fragment (the hash needs ports).
    pub defrag: bool,
}

impl Fanout {
    /// The `PACKET_FANOUT` option value: group id in the low 16 bits, mode and flags above.
    pub fn option_value(&self) -> u32 {
        let mut type_flags = u32::from(self.mode.number());
        if self.defrag {
            type_flags |= 0x8000;
        }
        u32::from(self.group_id) | (type_flags << 16)
    }
}

/// Configuration of one capture ring (one socket, one `TPACKET_V3` ring).
///
/// Defaults: 32 blocks of 1 MiB (a 32 MiB ring per socket), 2 KiB frame slots, 100 ms block
/// timeout, promiscuous, no fanout, no filter, whole frames. A block of 1 MiB holds about 700
/// full-size Ethernet frames, so the per-block cost (one `poll`, one status write) is spread
/// thin, yet it still holds a 64 KiB GRO super-frame many times over; 32 of them absorb about
/// 25 ms of a saturated 10 Gb/s link per worker while the worker is busy elsewhere. The 100 ms
/// timeout bounds how long a frame waits in a half-filled block on a quiet link, far below
/// the 60-second windows it is summarized into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingConfig {
    /// Interface name; `None` or `"any"` captures on every interface of the namespace.
    pub iface: Option<String>,
    /// Bytes per block: a multiple of the page size; frames never straddle blocks, so it
    /// also caps the captured length of one frame.
    pub block_size: u32,
    /// Number of blocks in the ring.
    pub block_count: u32,
    /// Frame slot size, only used by the kernel to check the geometry (`TPACKET_V3` packs
    /// frames of any size into blocks): a multiple of 16, at least 68, dividing `block_size`.
    pub frame_size: u32,
    /// Milliseconds after which the kernel hands over a block that is not full.
    pub block_timeout_ms: u32,
    /// Fanout group to join, if any.
    pub fanout: Option<Fanout>,
    /// Put the interface in promiscuous mode while the socket is open (ignored for `any`).
    pub promiscuous: bool,
    /// Classic BPF filter run by the kernel before a frame is copied to the ring.
    pub filter: Option<Program>,
    /// Bytes kept of each frame (the rest is counted in `orig_len` only).
    pub snaplen: u32,
}

impl Default for RingConfig {
    fn default() -> Self {
        Self {
            iface: None,
            block_size: 1 << 20,
            block_count: 32,
            frame_size: 2048,
            block_timeout_ms: 100,
            fanout: None,
            promiscuous: true,
            filter: None,
            snaplen: DEFAULT_SNAPLEN,
        }
    }
}

impl RingConfig {
    /// The default configuration on interface `iface` (`"any"` for all).
    pub fn new(iface: &str) -> Self {
        Self {
            iface: Some(iface.to_owned()),
            ..Self::default()
        }
    }

    /// Sets the total ring size: `bytes` rounded up to whole blocks (at least one).
    pub fn with_ring_size(mut self, bytes: u64) -> Self {
        let block = u64::from(self.block_size.max(1));
        let blocks = bytes.div_ceil(block).clamp(1, u64::from(u32::MAX));
        self.block_count = u32::try_from(blocks).unwrap_or(u32::MAX);
        self
    }

    /// Total bytes mapped for the ring.
    pub fn ring_size(&self) -> u64 {
        u64::from(self.block_size) * u64::from(self.block_count)
    }

    /// The interface name to bind to, `None` for all interfaces.
    pub fn interface_name(&self) -> Option<&str> {
        match self.iface.as_deref() {
            None | Some("any") => None,
            Some(name) => Some(name),
        }
    }

    /// Checks the geometry against the kernel's rules for a page size of `page_size` bytes.
    pub fn validate(&self, page_size: u32) -> Result<(), CaptureError> {
        let bad = |m: String| Err(CaptureError::Config(m));
        if self.block_size == 0 || page_size == 0 || !self.block_size.is_multiple_of(page_size) {
            return bad(format!(
                "block size {} is not a multiple of the page size {page_size}",
                self.block_size
            ));
        }
        if self.block_count == 0 {
            return bad("block count is 0".into());
        }
        if self.frame_size < TPACKET3_HDRLEN || !self.frame_size.is_multiple_of(TPACKET_ALIGNMENT) {
            return bad(format!(
                "frame size {} must be a multiple of {TPACKET_ALIGNMENT} and at least {TPACKET3_HDRLEN}",
                self.frame_size
            ));
        }
        if self.frame_size > self.block_size || !self.block_size.is_multiple_of(self.frame_size) {
            return bad(format!(
                "frame size {} does not divide block size {}",
                self.frame_size, self.block_size
            ));
        }
        let frames = u64::from(self.block_size / self.frame_size) * u64::from(self.block_count);
        if frames > u64::from(u32::MAX) || usize::try_from(self.ring_size()).is_err() {
            return bad(format!("ring of {} bytes is too large", self.ring_size()));
        }
        if self.snaplen == 0 {
            return bad("snap length is 0".into());
        }
        if let Some(p) = &self.filter
            && p.insns().len() > usize::from(u16::MAX)
        {
            return Err(CaptureError::FilterTooLong(p.insns().len()));
        }
        if let Some(name) = self.interface_name()
            && (name.is_empty() || name.len() >= 16 || name.contains('\0'))
        {
            return Err(CaptureError::NoSuchInterface(name.to_owned()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_32_mib() {
        let c = RingConfig::default();
        assert!(c.validate(4096).is_ok());
        assert_eq!(c.ring_size(), 32 << 20);
        assert_eq!(c.interface_name(), None);
        assert_eq!(RingConfig::new("any").interface_name(), None);
        assert_eq!(RingConfig::new("eth0").interface_name(), Some("eth0"));
    }

    #[test]
    fn ring_size_rounds_up_to_blocks() {
        let c = RingConfig::default().with_ring_size(5 << 20);
        assert_eq!(c.block_count, 5);
        let c = RingConfig::default().with_ring_size((5 << 20) + 1);
        assert_eq!(c.block_count, 6);
        assert_eq!(RingConfig::default().with_ring_size(0).block_count, 1);
    }

    #[test]
    fn bad_geometry_is_refused_with_the_reason() {
        let page = 4096;
        let mut c = RingConfig {
            block_size: 5000,
            ..RingConfig::default()
        };
        let e = c.validate(page).unwrap_err().to_string();
        assert!(e.contains("not a multiple of the page size 4096"), "{e}");
        c.block_size = 8192;
        c.frame_size = 60;
        let e = c.validate(page).unwrap_err().to_string();
        assert!(e.contains("at least 68"), "{e}");
        c.frame_size = 3008;
        let e = c.validate(page).unwrap_err().to_string();
        assert!(e.contains("does not divide"), "{e}");
        c.frame_size = 2048;
        c.block_count = 0;
        assert!(c.validate(page).is_err());
        c.block_count = 1;
        assert!(c.validate(page).is_ok());
        c.snaplen = 0;
        assert!(c.validate(page).is_err());
    }

    #[test]
    fn long_interface_names_are_not_found() {
        let c = RingConfig::new("a-name-longer-than-15");
        assert_eq!(
            c.validate(4096).unwrap_err().to_string(),
            "interface a-name-longer-than-15 not found"
        );
    }

    #[test]
    fn fanout_option_packs_id_mode_and_flags() {
        let f = Fanout {
            group_id: 0x1234,
            mode: FanoutMode::Hash,
            defrag: true,
        };
        assert_eq!(f.option_value(), 0x8000_1234);
        let f = Fanout {
            group_id: 7,
            mode: FanoutMode::Cpu,
            defrag: false,
        };
        assert_eq!(f.option_value(), 0x0002_0007);
        assert_eq!(FanoutMode::LoadBalance.number(), 1);
    }
}
