//! Output renderers: the neutral export model of `analyzers` as pktvisor-compatible JSON and
//! Prometheus text exposition. Nothing else in wirelens knows either format.

pub mod json;
pub mod prometheus;
