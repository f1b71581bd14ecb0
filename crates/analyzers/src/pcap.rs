//! pktvisor's `pcap` handler: operational statistics of a packet input (TCP reassembly errors,
//! kernel and interface drops). Offline inputs have no drops; live inputs report deltas.

use crate::config::{ConfigError, ConfigMap, WindowConfig};
use crate::export::Export;
use crate::window::{Bucket, Window};

/// One period of input statistics.
#[derive(Clone, Default)]
pub struct PcapBucket {
    pub tcp_reassembly_errors: u64,
    pub os_drops: u64,
    pub if_drops: u64,
}

impl Bucket for PcapBucket {
    fn merge(&mut self, o: &Self) {
        self.tcp_reassembly_errors += o.tcp_reassembly_errors;
        self.os_drops += o.os_drops;
        self.if_drops += o.if_drops;
    }
}

/// The `pcap` handler.
#[derive(Clone)]
pub struct PcapStats {
    pub window_config: WindowConfig,
    pub window: Window<PcapBucket>,
}

impl PcapStats {
    pub const SCHEMA: &'static str = "pcap";

    pub fn new(cfg: &ConfigMap, window_config: WindowConfig) -> Result<Self, ConfigError> {
        cfg.validate_keys(&["recorded_stream"])?;
        Ok(Self {
            window_config,
            window: Window::new(usize::from(window_config.num_periods)),
        })
    }

    /// Counts TCP segments that could not be placed in their stream.
    pub fn on_tcp_reassembly_error(&mut self, n: u64) {
        self.window.live().tcp_reassembly_errors += n;
    }

    pub fn export(&self, b: &PcapBucket) -> Export {
        let mut e = Export::default();
        e.int(
            &["tcp_reassembly_errors"],
            "Count of TCP reassembly errors",
            b.tcp_reassembly_errors,
        );
        e.int(
            &["os_drops"],
            "Count of packets dropped by the operating system (if supported)",
            b.os_drops,
        );
        e.int(
            &["if_drops"],
            "Count of packets dropped by the interface (if supported)",
            b.if_drops,
        );
        e
    }
}
