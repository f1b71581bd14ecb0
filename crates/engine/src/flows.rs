//! Flow export inputs of offline runs (`read -i sflow|netflow`): the reader side (datagrams
//! from captures or raw payload files, timed, sharded by exporter so one exporter's templates
//! and sequence numbers stay in one worker) and the worker side (hand the datagram to the
//! pipeline's `flow` handlers). A child of [`super`] (the offline reader), not a reader of its
//! own.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use analyzers::flow::FlowInput;
use analyzers::pipeline::{Mode, Pipeline};
use inputs::flow_file::FlowFile;
use wire::capture::LinkType;

use super::{InputKind, Progress, ReadError, Reader, Rec};

/// Bytes before each datagram in a batch: the exporter's family (4 or 6) and 16 address bytes.
const PREFIX: usize = 17;

/// The decoder an input kind selects.
pub(super) fn input_of(kind: InputKind) -> Option<FlowInput> {
    match kind {
        InputKind::Sflow => Some(FlowInput::Sflow),
        InputKind::Netflow => Some(FlowInput::Netflow),
        _ => None,
    }
}

/// The export time in a datagram's header, for raw payload files (which carry no capture
/// time): NetFlow v1/v5/v7/v9 `unix_secs`, IPFIX export time. sFlow has none.
fn export_time_ns(input: FlowInput, p: &[u8]) -> Option<u64> {
    if input != FlowInput::Netflow || p.len() < 16 {
        return None;
    }
    let at = match u16::from_be_bytes([p[0], p[1]]) {
        1 | 5 | 7 | 9 => 8,
        10 => 4,
        _ => return None,
    };
    let secs = u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]]);
    Some(u64::from(secs) * 1_000_000_000)
}

impl Reader {
    /// Reads every flow input file in order (raw payload files in the order given, so that
    /// templates precede their data).
    pub(super) fn read_flows(
        &mut self,
        files: &[PathBuf],
        input: FlowInput,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<(), ReadError> {
        let mut last_ts = 0u64;
        let mut scratch = std::mem::take(&mut self.frag_data);
        for path in files {
            let mut file = FlowFile::open(path)?;
            let name = path.display().to_string();
            let file_size = std::fs::metadata(path).ok().map(|m| m.len());
            while let Some(d) = file.next_datagram()? {
                let ts = d
                    .ts_ns
                    .or_else(|| export_time_ns(input, d.payload))
                    .unwrap_or(last_ts);
                last_ts = ts;
                let exporter = d.exporter.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
                scratch.clear();
                match exporter {
                    IpAddr::V4(a) => {
                        scratch.push(4);
                        scratch.extend_from_slice(&a.to_ipv6_mapped().octets());
                    }
                    IpAddr::V6(a) => {
                        scratch.push(6);
                        scratch.extend_from_slice(&a.octets());
                    }
                }
                scratch.extend_from_slice(d.payload);
                self.stats.records += 1;
                self.advance_clock(ts);
                let len = d.payload.len() as u32;
                // The datagram with its sender prefixed is built here, so it travels in the
                // batch's own arena, not in a shared input block.
                self.enqueue(
                    &scratch,
                    None,
                    Rec {
                        off: 0,
                        len: 0,
                        in_block: false,
                        orig_len: len,
                        ts_ns: ts,
                        link: LinkType::Other(0),
                        mode: Mode::Flow(input),
                        flow: wire::hash::flow_hash_parts(exporter, 0, exporter, 0, 17),
                        pkt: None,
                    },
                );
            }
            let skips = file.skips();
            for (reason, n) in [
                (
                    "not an export datagram: undecodable frame",
                    skips.undecodable,
                ),
                ("not an export datagram: not UDP", skips.not_udp),
                ("not an export datagram: IP fragment", skips.fragments),
            ] {
                if n > 0 {
                    *self.stats.decode_errors.entry(reason).or_insert(0) += n;
                }
            }
            self.end_of_file(
                name,
                file.bytes_read(),
                file_size,
                file.truncated_at(),
                progress,
            );
        }
        self.frag_data = scratch;
        Ok(())
    }
}

/// Worker side: splits the exporter prefix off and hands the datagram to the pipeline.
pub(super) fn process(pipeline: &mut Pipeline, input: FlowInput, bytes: &[u8]) {
    let (Some(&family), Some(addr), Some(payload)) =
        (bytes.first(), bytes.get(1..PREFIX), bytes.get(PREFIX..))
    else {
        return;
    };
    let mut a = [0u8; 16];
    a.copy_from_slice(addr);
    let v6 = Ipv6Addr::from(a);
    let exporter = match (family, v6.to_ipv4_mapped()) {
        (4, Some(v4)) => IpAddr::V4(v4),
        _ => IpAddr::V6(v6),
    };
    pipeline.process_flow(input, exporter, payload);
}
