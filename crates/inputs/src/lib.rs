//! Input adapters: thin I/O shells that feed frames to the pure decoders in `wire`.

pub mod dnstap_file;
pub mod dnstap_socket;
pub mod file;
pub mod flow_file;
