//! Pure, allocation-free decoders for everything wirelens reads off the wire.
//!
//! This crate does no I/O, reads no clock, spawns nothing and never panics on input:
//! every malformed byte sequence is a typed error or a flagged value, which callers count.
//! Decoded values borrow from the caller's buffer.

pub mod bpf;
pub mod capture;
pub mod dhcp;
pub mod dns;
pub mod dnstap;
pub mod hash;
pub mod http;
pub mod netflow;
pub mod packet;
pub mod quic;
pub mod sflow;
pub mod tls;
