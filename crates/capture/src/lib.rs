//! Live capture on Linux with `AF_PACKET` sockets and `TPACKET_V3` rings, without libpcap.
//!
//! Each worker owns one [`Ring`]: an `AF_PACKET` socket with its own memory-mapped ring,
//! optionally joined with the other workers' sockets in one `PACKET_FANOUT` group. With
//! [`FanoutMode::Hash`] the kernel spreads frames by its symmetric flow hash, so both
//! directions of a TCP/UDP conversation reach the same worker. There is no reader thread and
//! no copy: the worker walks the frames of a block where the kernel wrote them and hands the
//! block back when the [`Block`] is dropped. A classic BPF program from [`wire::bpf`] can run
//! in the kernel, before frames are copied into the ring.
//!
//! Link layers: sockets are always `SOCK_RAW`, so every frame keeps its device's own link
//! header, and [`Frame::link_type`] comes from the frame's `sll_hatype` (Ethernet for
//! Ethernet and loopback devices, raw IP for tun devices and IP tunnels). On `any` this means
//! frames of different link types in one ring rather than libpcap's synthesized Linux "cooked"
//! (SLL) header: no bytes are rewritten, and the decoder picks the layout per frame. A filter
//! compiled for one link type should therefore be used on rings bound to one interface.
//! VLAN tags the kernel stripped are reported in [`Frame::vlan_tci`].
//!
//! This crate does not decode frames (that is `wire`) and starts no threads (that is the
//! engine's job). It is Linux-only.
//!
//! The worker loop:
//!
//! ```no_run
//! use std::time::Duration;
//! use capture::{Fanout, FanoutMode, Ring, RingConfig};
//!
//! let config = RingConfig {
//!     fanout: Some(Fanout { group_id: 42, mode: FanoutMode::Hash, defrag: true }),
//!     ..RingConfig::new("eth0")
//! };
//! let mut ring = Ring::open(&config)?;
//! let mut bytes = 0u64;
//! loop {
//!     // None after 500 ms of silence: time to look at the wall clock (rotate windows).
//!     if let Some(block) = ring.next_block(Duration::from_millis(500))? {
//!         for frame in &block {
//!             bytes += u64::from(frame.orig_len);
//!             let _vlan = frame.vlan_id(); // the kernel strips 802.1Q tags from `data`
//!         }
//!     } // the block goes back to the kernel here
//!     let stats = ring.stats()?;
//!     if stats.drops > 0 { eprintln!("dropped {} of {}", stats.drops, stats.packets); }
//!     # break;
//! }
//! # Ok::<(), capture::CaptureError>(())
//! ```

// Live capture is system calls on raw memory: socket options take pointers, the ring is an
// mmap shared with the kernel, and block ownership is an atomic word inside that mapping.
// The unsafe code is confined to `sys` and two small accessors in `ring`.
#![allow(unsafe_code)]

mod block;
mod config;
mod error;
mod iface;
mod ring;
mod sys;

pub use block::{
    Frame, Frames, TP_STATUS_LOSING, TP_STATUS_VLAN_TPID_VALID, TP_STATUS_VLAN_VALID,
    UNKNOWN_ARPHRD, link_type_for_hatype, pkt_type,
};
pub use config::{DEFAULT_SNAPLEN, Fanout, FanoutMode, RingConfig};
pub use error::CaptureError;
pub use iface::{Interface, interfaces};
pub use ring::{Block, Ring, Stats};
