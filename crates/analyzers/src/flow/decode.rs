//! From export datagrams to flow records: runs the `wire` decoders, keeps the worker's template
//! cache (templates, announced sampling rates, sequence numbers per exporter and domain) and
//! reports each record and each datagram's exporter health to a callback.
//!
//! Allocation-free per datagram (a template is allocated once, when first learned). Not the
//! handler's accounting: that is [`super`].

use std::net::IpAddr;

use flow::templates::{TemplateCache, TemplateConfig};
use wire::netflow::template::template_records;
use wire::netflow::{Datagram, FlowRecord, SetKind, Version};
use wire::sflow::{self, Sample};

/// Which decoder a datagram goes to (pktvisor's `flow_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlowInput {
    /// sFlow v5.
    Sflow,
    /// NetFlow v1/v5/v7/v9 and IPFIX.
    Netflow,
}

/// What one datagram said about its exporter's health.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Health {
    pub datagrams: u64,
    /// Data sets skipped because their template was unknown.
    pub missing_templates: u64,
    /// Units lost since the previous datagram, by sequence number.
    pub sequence_lost: u64,
    /// Sets, templates, records or samples that could not be decoded.
    pub malformed: u64,
    /// Templates the exporter holds now, when this datagram changed them.
    pub templates: Option<u64>,
    /// Templates the datagram withdrew (IPFIX).
    pub template_withdrawals: u64,
}

/// What the decoder reports.
#[derive(Debug)]
pub enum Event<'r> {
    /// A flow record of a device.
    Record(IpAddr, &'r FlowRecord),
    /// The health of a device after one of its datagrams.
    Health(IpAddr, Health),
    /// A datagram that is not a decodable export.
    Undecodable,
}

/// sFlow sequence numbers are tracked in the same table as NetFlow domains, under a domain
/// tag that NetFlow's 32-bit domains cannot collide with for the same agent in practice.
const SFLOW_DOMAIN_TAG: u32 = 0x5f10_0000;

/// A worker's flow decoder.
#[derive(Clone, Debug)]
pub struct FlowDecoder {
    templates: TemplateCache,
}

impl FlowDecoder {
    /// A decoder whose cache holds at most `max_templates` templates.
    pub fn new(max_templates: usize) -> Self {
        Self {
            templates: TemplateCache::new(TemplateConfig {
                max_templates,
                ..TemplateConfig::default()
            }),
        }
    }

    /// The template cache (for its counters).
    pub fn templates(&self) -> &TemplateCache {
        &self.templates
    }

    /// Decodes one datagram sent by `exporter` (the UDP source address).
    pub fn decode(
        &mut self,
        input: FlowInput,
        exporter: IpAddr,
        payload: &[u8],
        out: &mut dyn FnMut(Event<'_>),
    ) {
        match input {
            FlowInput::Sflow => self.sflow(payload, out),
            FlowInput::Netflow => self.netflow(exporter, payload, out),
        }
    }

    fn sflow(&mut self, payload: &[u8], out: &mut dyn FnMut(Event<'_>)) {
        let Ok(d) = sflow::Datagram::parse(payload) else {
            out(Event::Undecodable);
            return;
        };
        let device = d.agent;
        let mut h = Health {
            datagrams: 1,
            sequence_lost: self.templates.sequence(
                device,
                SFLOW_DOMAIN_TAG ^ d.sub_agent,
                d.sequence,
                Some(d.sequence.wrapping_add(1)),
            ),
            ..Health::default()
        };
        for s in d.samples() {
            match s {
                Ok(Sample::Flow(fs)) => {
                    if let Some(r) = fs.to_flow() {
                        out(Event::Record(device, &r));
                    }
                }
                Ok(_) => {}
                Err(_) => h.malformed += 1,
            }
        }
        out(Event::Health(device, h));
    }

    fn netflow(&mut self, exporter: IpAddr, payload: &[u8], out: &mut dyn FnMut(Event<'_>)) {
        let Ok(d) = Datagram::parse(payload) else {
            out(Event::Undecodable);
            return;
        };
        let mut h = Health {
            datagrams: 1,
            ..Health::default()
        };
        let domain = d.domain;
        match d.version {
            Version::V1 | Version::V5 | Version::V7 => {
                for r in d.fixed_records() {
                    out(Event::Record(exporter, &r));
                }
                if d.truncated() {
                    h.malformed += 1;
                }
                if d.version != Version::V1 {
                    h.sequence_lost =
                        self.templates
                            .sequence(exporter, domain, d.sequence, d.next_sequence());
                }
            }
            Version::V9 | Version::Ipfix => {
                let ipfix = d.version == Version::Ipfix;
                let withdrawn_before = self.templates.stats().withdrawn;
                let mut data_records = 0u32;
                let mut skipped = false;
                let mut learned = false;
                for set in d.sets() {
                    let Ok(set) = set else {
                        h.malformed += 1;
                        break;
                    };
                    match set.kind(ipfix) {
                        SetKind::Template | SetKind::OptionsTemplate => {
                            let options = set.kind(ipfix) == SetKind::OptionsTemplate;
                            for def in template_records(set.body, ipfix, options) {
                                match def {
                                    Ok(def) => {
                                        if self.templates.learn(exporter, domain, &def).is_err() {
                                            h.malformed += 1;
                                        }
                                        learned = true;
                                    }
                                    Err(_) => h.malformed += 1,
                                }
                            }
                        }
                        SetKind::Data(id) => {
                            let Some(t) = self.templates.get(exporter, domain, id) else {
                                h.missing_templates += 1;
                                skipped = true;
                                continue;
                            };
                            if t.is_options() {
                                // Options data is where exporters announce sampling rates.
                                let t = *t;
                                let mut recs = t.records(set.body);
                                for r in recs.by_ref() {
                                    data_records = data_records.wrapping_add(1);
                                    self.templates
                                        .learn_sampling(exporter, domain, r.sampling());
                                }
                                if recs.error().is_some() {
                                    h.malformed += 1;
                                }
                                continue;
                            }
                            let mut recs = t.flows(set.body);
                            // The announced rate of the last sampler looked up: nothing
                            // changes the cache while one set's records are read.
                            let mut announced: Option<(u32, u32)> = None;
                            // One record, overwritten by each of the set's records.
                            let mut f = FlowRecord::default();
                            while recs.next_into(&mut f) {
                                data_records = data_records.wrapping_add(1);
                                if f.sampling_rate == 0 {
                                    f.sampling_rate = match announced {
                                        Some((id, rate)) if id == f.sampler_id => rate,
                                        _ => {
                                            let rate = self.templates.sampling_rate(
                                                exporter,
                                                domain,
                                                f.sampler_id,
                                            );
                                            announced = Some((f.sampler_id, rate));
                                            rate
                                        }
                                    };
                                }
                                out(Event::Record(exporter, &f));
                            }
                            if recs.error().is_some() {
                                h.malformed += 1;
                            }
                        }
                        SetKind::Reserved(_) => {}
                    }
                }
                // IPFIX counts data records; records of skipped sets are unknown, so the
                // next message's number cannot be predicted.
                let next = if ipfix {
                    (!skipped).then(|| d.sequence.wrapping_add(data_records))
                } else {
                    d.next_sequence()
                };
                h.sequence_lost = self.templates.sequence(exporter, domain, d.sequence, next);
                if learned {
                    h.templates = Some(self.templates.templates_of(exporter));
                }
                h.template_withdrawals = self.templates.stats().withdrawn - withdrawn_before;
            }
        }
        out(Event::Health(exporter, h));
    }
}
