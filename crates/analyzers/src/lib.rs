//! Stream handlers (pktvisor's `net`, `dns`, `pcap`, and `tls`): pure functions from decoded events to
//! per-period metric buckets.
//!
//! Nothing here does I/O, reads a clock or spawns a thread: the engine feeds events with their
//! packet timestamps and decides when periods rotate. Handler output is described in the neutral
//! [`export`] model; only the `outputs` crate turns that into JSON or Prometheus text.

pub mod app;
pub mod config;
pub mod dhcp;
pub mod dns;
pub mod dnstap;
pub mod event;
pub mod export;
pub mod flow;
pub mod flows;
pub mod fuzzing;
pub mod http;
pub mod net;
pub mod pcap;
pub mod pipeline;
pub mod quic;
pub mod sketch;
pub mod tls;
pub mod window;
