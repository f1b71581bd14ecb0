//! The NetFlow v9 / IPFIX template cache: templates keyed by (exporter address, observation
//! domain or source id, template id), the sampling rates exporters announce in options data,
//! and each exporter's sequence numbers (to count what was lost).
//!
//! Bounded: at most `max_templates` templates and `max_domains` (exporter, domain) entries;
//! what does not fit is refused and counted, never grown. A template replaced with the same id
//! is overwritten in place (no allocation). Pure: no I/O, no clock.

use core::net::IpAddr;

use foldhash::fast::FixedState;
use hashbrown::HashMap;
use wire::netflow::template::{SamplingInfo, Template, TemplateDef};

/// Limits of a [`TemplateCache`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TemplateConfig {
    /// Most templates kept, over all exporters (each takes about 1 KiB).
    pub max_templates: usize,
    /// Most (exporter, domain) pairs whose sampling rates and sequence numbers are tracked.
    pub max_domains: usize,
    /// Seed of the table hash.
    pub hash_seed: u64,
}

impl Default for TemplateConfig {
    fn default() -> Self {
        Self {
            max_templates: 65_536,
            max_domains: 16_384,
            hash_seed: 0x7e3a_51c9_2b4d_8f60,
        }
    }
}

/// What the cache did, for exporter health and operational counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TemplateStats {
    /// Templates added or replaced.
    pub learned: u64,
    /// Templates withdrawn (IPFIX).
    pub withdrawn: u64,
    /// Templates refused because the cache was full.
    pub refused_full: u64,
    /// Templates refused as malformed (too many fields, empty records).
    pub refused_invalid: u64,
    /// (exporter, domain) pairs not tracked because their table was full.
    pub domains_refused: u64,
}

/// Key of one template.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct TemplateKey {
    exporter: IpAddr,
    domain: u32,
    id: u16,
}

/// How many distinct samplers an exporter domain may announce rates for.
const SAMPLERS: usize = 8;

/// Per (exporter, domain) state.
#[derive(Clone, Copy, Debug, Default)]
struct DomainState {
    /// Rate announced without a sampler id (or the last one announced), 0 if none.
    default_rate: u32,
    /// (sampler id, rate), most recent first.
    samplers: [(u32, u32); SAMPLERS],
    /// The sequence number expected next, once one datagram was seen.
    next_seq: Option<u32>,
    /// Templates this domain holds.
    templates: u32,
}

/// The template cache of one decoder.
#[derive(Clone, Debug)]
pub struct TemplateCache {
    cfg: TemplateConfig,
    templates: HashMap<TemplateKey, Box<Template>, FixedState>,
    domains: HashMap<(IpAddr, u32), DomainState, FixedState>,
    stats: TemplateStats,
}

/// Why a template was not kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The cache holds `max_templates` already.
    Full,
    /// The template itself is unusable.
    Invalid(wire::netflow::NetflowError),
}

impl TemplateCache {
    /// An empty cache with the given limits.
    pub fn new(cfg: TemplateConfig) -> Self {
        Self {
            cfg,
            templates: HashMap::with_hasher(FixedState::with_seed(cfg.hash_seed)),
            domains: HashMap::with_hasher(FixedState::with_seed(cfg.hash_seed ^ 1)),
            stats: TemplateStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> TemplateStats {
        self.stats
    }

    /// Templates held, over all exporters.
    pub fn len(&self) -> usize {
        self.templates.len()
    }

    /// True when no template is held.
    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
    }

    /// Templates held for one exporter (all its domains).
    pub fn templates_of(&self, exporter: IpAddr) -> u64 {
        self.domains
            .iter()
            .filter(|((e, _), _)| *e == exporter)
            .map(|(_, d)| u64::from(d.templates))
            .sum()
    }

    /// The template `id` of an exporter's domain.
    #[inline]
    pub fn get(&self, exporter: IpAddr, domain: u32, id: u16) -> Option<&Template> {
        self.templates
            .get(&TemplateKey {
                exporter,
                domain,
                id,
            })
            .map(|b| &**b)
    }

    /// Learns (or replaces) a template. An IPFIX withdrawal (RFC 7011 section 8.1) removes
    /// the template it names, or every template (resp. options template) of the exporter's
    /// domain for the withdraw-all id; withdrawing an unknown id is a no-op. Data sets of a
    /// withdrawn template find no template until it is defined again.
    pub fn learn(
        &mut self,
        exporter: IpAddr,
        domain: u32,
        def: &TemplateDef<'_>,
    ) -> Result<(), Refusal> {
        let key = TemplateKey {
            exporter,
            domain,
            id: def.id,
        };
        if def.is_withdraw_all() {
            self.withdraw_all(exporter, domain, def.options);
            return Ok(());
        }
        if def.is_withdrawal() {
            if self.templates.remove(&key).is_some() {
                self.withdrawn(exporter, domain, 1);
            }
            return Ok(());
        }
        if let Some(t) = self.templates.get_mut(&key) {
            // Replaced in place: the same id with new fields (exporters restart).
            let mut fresh = **t;
            if let Err(e) = fresh.fill(def) {
                self.stats.refused_invalid += 1;
                return Err(Refusal::Invalid(e));
            }
            **t = fresh;
            self.stats.learned += 1;
            return Ok(());
        }
        if self.templates.len() >= self.cfg.max_templates {
            self.stats.refused_full += 1;
            return Err(Refusal::Full);
        }
        let t = match Template::from_def(def) {
            Ok(t) => t,
            Err(e) => {
                self.stats.refused_invalid += 1;
                return Err(Refusal::Invalid(e));
            }
        };
        self.templates.insert(key, Box::new(t));
        self.stats.learned += 1;
        if let Some(d) = self.domain(exporter, domain) {
            d.templates += 1;
        }
        Ok(())
    }

    /// Removes every template (`options` false) or every options template (`options` true)
    /// of one exporter's domain. A walk over the whole table: withdraw-all is rare (an
    /// exporter shutting down or resetting), so the table keeps no per-domain index for it.
    fn withdraw_all(&mut self, exporter: IpAddr, domain: u32, options: bool) {
        let before = self.templates.len();
        self.templates.retain(|k, t| {
            !(k.exporter == exporter && k.domain == domain && t.is_options() == options)
        });
        let removed = before - self.templates.len();
        self.withdrawn(exporter, domain, removed);
    }

    /// Counts `n` templates withdrawn from a domain.
    fn withdrawn(&mut self, exporter: IpAddr, domain: u32, n: usize) {
        if n == 0 {
            return;
        }
        self.stats.withdrawn += n as u64;
        if let Some(d) = self.domains.get_mut(&(exporter, domain)) {
            d.templates = d
                .templates
                .saturating_sub(u32::try_from(n).unwrap_or(u32::MAX));
        }
    }

    fn domain(&mut self, exporter: IpAddr, domain: u32) -> Option<&mut DomainState> {
        let full = self.domains.len() >= self.cfg.max_domains;
        if full && !self.domains.contains_key(&(exporter, domain)) {
            self.stats.domains_refused += 1;
            return None;
        }
        Some(self.domains.entry((exporter, domain)).or_default())
    }

    /// Records a sampling rate announced in options data (or a data record).
    pub fn learn_sampling(&mut self, exporter: IpAddr, domain: u32, s: SamplingInfo) {
        if s.rate == 0 {
            return;
        }
        let Some(d) = self.domain(exporter, domain) else {
            return;
        };
        d.default_rate = s.rate;
        if s.sampler_id != 0 {
            let pos = d
                .samplers
                .iter()
                .position(|(id, _)| *id == s.sampler_id)
                .unwrap_or(SAMPLERS - 1);
            // Most recent first: shift the others down.
            d.samplers.copy_within(0..pos, 1);
            d.samplers[0] = (s.sampler_id, s.rate);
        }
    }

    /// The sampling rate that applies to a record of this exporter's domain selected by
    /// `sampler_id` (0 = none); 0 when none was announced.
    #[inline]
    pub fn sampling_rate(&self, exporter: IpAddr, domain: u32, sampler_id: u32) -> u32 {
        let Some(d) = self.domains.get(&(exporter, domain)) else {
            return 0;
        };
        if sampler_id != 0
            && let Some((_, r)) = d.samplers.iter().find(|(id, _)| *id == sampler_id)
        {
            return *r;
        }
        d.default_rate
    }

    /// Checks a datagram's sequence number against the one expected and remembers the next
    /// one (`None`: not predictable, the next datagram is not checked); returns how many units
    /// (datagrams or records, as the format counts) are missing. A jump backwards or of more
    /// than 2^31 is an exporter restart, not a loss.
    pub fn sequence(&mut self, exporter: IpAddr, domain: u32, seq: u32, next: Option<u32>) -> u64 {
        let Some(d) = self.domain(exporter, domain) else {
            return 0;
        };
        let lost = match d.next_seq {
            Some(expected) => {
                let gap = seq.wrapping_sub(expected);
                if gap != 0 && gap < 1 << 31 {
                    u64::from(gap)
                } else {
                    0
                }
            }
            None => 0,
        };
        d.next_seq = next;
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::netflow::template::template_records;

    fn def(bytes: &[u8]) -> TemplateDef<'_> {
        template_records(bytes, true, false)
            .next()
            .unwrap()
            .unwrap()
    }

    const T256: [u8; 12] = [1, 0, 0, 2, 0, 8, 0, 4, 0, 1, 0, 4];
    const T256_WIDE: [u8; 12] = [1, 0, 0, 2, 0, 8, 0, 4, 0, 1, 0, 8];

    #[test]
    fn keyed_by_exporter_and_domain() {
        let mut c = TemplateCache::new(TemplateConfig::default());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        c.learn(a, 1, &def(&T256)).unwrap();
        c.learn(b, 1, &def(&T256_WIDE)).unwrap();
        assert_eq!(c.get(a, 1, 256).unwrap().min_record_len(), 8);
        assert_eq!(c.get(b, 1, 256).unwrap().min_record_len(), 12);
        assert!(c.get(a, 2, 256).is_none());
        // Replaced in place.
        c.learn(a, 1, &def(&T256_WIDE)).unwrap();
        assert_eq!(c.get(a, 1, 256).unwrap().min_record_len(), 12);
        assert_eq!(c.len(), 2);
        assert_eq!(c.templates_of(a), 1);
        // Withdrawal.
        c.learn(a, 1, &def(&[1, 0, 0, 0])).unwrap();
        assert!(c.get(a, 1, 256).is_none());
        assert_eq!(c.stats().withdrawn, 1);
        assert_eq!(c.templates_of(a), 0);
    }

    /// Feeds every record of a hand-built IPFIX (options) template set body to the cache.
    fn ipfix_set(c: &mut TemplateCache, a: IpAddr, domain: u32, body: &[u8], options: bool) {
        for d in template_records(body, true, options) {
            let _ = c.learn(a, domain, &d.unwrap());
        }
    }

    /// IPFIX options template 258: scope observationDomainId (149), samplingInterval (34).
    const O258: [u8; 14] = [1, 2, 0, 2, 0, 1, 0, 149, 0, 4, 0, 34, 0, 4];
    /// IPFIX template 257: protocolIdentifier (4), 1 byte.
    const T257: [u8; 8] = [1, 1, 0, 1, 0, 4, 0, 1];

    /// Domain 1 of `a`: templates 256, 257 and options template 258; domain 2 of `a` and
    /// domain 1 of `b`: template 256.
    fn populated(a: IpAddr, b: IpAddr) -> TemplateCache {
        let mut c = TemplateCache::new(TemplateConfig::default());
        ipfix_set(&mut c, a, 1, &[&T256[..], &T257[..]].concat(), false);
        ipfix_set(&mut c, a, 1, &O258, true);
        ipfix_set(&mut c, a, 2, &T256, false);
        ipfix_set(&mut c, b, 1, &T256, false);
        assert_eq!((c.len(), c.templates_of(a), c.templates_of(b)), (5, 4, 1));
        c
    }

    fn ips() -> (IpAddr, IpAddr) {
        ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap())
    }

    #[test]
    fn withdraw_one_template() {
        let (a, b) = ips();
        let mut c = populated(a, b);
        // Two withdrawals in one set: 256 and the options template 258 (4 bytes each).
        ipfix_set(&mut c, a, 1, &[1, 0, 0, 0, 0, 0], false);
        ipfix_set(&mut c, a, 1, &[1, 2, 0, 0], true);
        assert!(c.get(a, 1, 256).is_none());
        assert!(c.get(a, 1, 258).is_none());
        assert!(c.get(a, 1, 257).is_some());
        // Other domains and exporters keep their template of the same id.
        assert!(c.get(a, 2, 256).is_some());
        assert!(c.get(b, 1, 256).is_some());
        assert_eq!(c.stats().withdrawn, 2);
        assert_eq!((c.len(), c.templates_of(a)), (3, 2));
        // Defined again after the withdrawal: usable again.
        ipfix_set(&mut c, a, 1, &T256, false);
        assert_eq!(c.get(a, 1, 256).unwrap().min_record_len(), 8);
        assert_eq!(c.templates_of(a), 3);
    }

    #[test]
    fn withdraw_all_templates() {
        let (a, b) = ips();
        let mut c = populated(a, b);
        ipfix_set(&mut c, a, 1, &[0, 2, 0, 0], false);
        assert!(c.get(a, 1, 256).is_none());
        assert!(c.get(a, 1, 257).is_none());
        // Options templates are withdrawn only by their own withdraw-all.
        assert!(c.get(a, 1, 258).is_some());
        assert!(c.get(a, 2, 256).is_some());
        assert!(c.get(b, 1, 256).is_some());
        assert_eq!(c.stats().withdrawn, 2);
        assert_eq!((c.len(), c.templates_of(a), c.templates_of(b)), (3, 2, 1));
        // Again: nothing left to withdraw, nothing counted.
        ipfix_set(&mut c, a, 1, &[0, 2, 0, 0], false);
        assert_eq!(c.stats().withdrawn, 2);
    }

    #[test]
    fn withdraw_all_options_templates() {
        let (a, b) = ips();
        let mut c = populated(a, b);
        // With the zero scope count some exporters add, and padding.
        ipfix_set(&mut c, a, 1, &[0, 3, 0, 0, 0, 0, 0, 0], true);
        assert!(c.get(a, 1, 258).is_none());
        assert!(c.get(a, 1, 256).is_some());
        assert!(c.get(a, 1, 257).is_some());
        assert_eq!(c.stats().withdrawn, 1);
        assert_eq!((c.len(), c.templates_of(a)), (4, 3));
    }

    #[test]
    fn withdraw_unknown_id() {
        let (a, b) = ips();
        let mut c = populated(a, b);
        let w = [3u8, 231, 0, 0];
        assert_eq!(c.learn(a, 1, &def(&w)), Ok(()));
        // The right id of another exporter or domain is unknown here too.
        let mut d = populated(a, b);
        ipfix_set(&mut d, b, 7, &[1, 0, 0, 0], false);
        ipfix_set(&mut d, b, 7, &[0, 2, 0, 0], false);
        ipfix_set(&mut d, b, 7, &[0, 3, 0, 0], true);
        for x in [&c, &d] {
            assert_eq!(x.stats().withdrawn, 0);
            assert_eq!((x.len(), x.templates_of(a), x.templates_of(b)), (5, 4, 1));
        }
    }

    #[test]
    fn netflow_v9_has_no_withdrawal() {
        let (a, _) = ips();
        let mut c = TemplateCache::new(TemplateConfig::default());
        let t = template_records(&T256, false, false)
            .next()
            .unwrap()
            .unwrap();
        c.learn(a, 0, &t).unwrap();
        let w = template_records(&[1, 0, 0, 0], false, false)
            .next()
            .unwrap()
            .unwrap();
        assert!(matches!(c.learn(a, 0, &w), Err(Refusal::Invalid(_))));
        // v9's "withdraw-all" id is padding: nothing is read.
        assert_eq!(template_records(&[0, 2, 0, 0], false, false).count(), 0);
        assert!(c.get(a, 0, 256).is_some());
        assert_eq!(c.stats().withdrawn, 0);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        /// Any template set body, of either kind and format, learned and withdrawn in any
        /// order: no panic, and the per-domain counts stay equal to what the table holds.
        #[test]
        fn arbitrary_template_sets_keep_counts(
            sets in proptest::collection::vec(
                (proptest::prelude::any::<bool>(), proptest::prelude::any::<bool>(), 0u32..3,
                 proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)),
                0..12,
            )
        ) {
            let a: IpAddr = "192.0.2.1".parse().unwrap();
            let mut c = TemplateCache::new(TemplateConfig { max_templates: 8, ..TemplateConfig::default() });
            for (ipfix, options, domain, body) in &sets {
                // Short bodies rarely start with an id >= 256: bias the first byte.
                let mut body = body.clone();
                if let Some(b) = body.first_mut() {
                    *b %= 4;
                }
                for d in template_records(&body, *ipfix, *options).flatten() {
                    let _ = c.learn(a, *domain, &d);
                }
                proptest::prop_assert_eq!(c.len() as u64, c.templates_of(a));
                proptest::prop_assert!(c.len() <= 8);
            }
        }
    }

    #[test]
    fn bounded_and_counted() {
        let mut c = TemplateCache::new(TemplateConfig {
            max_templates: 2,
            ..TemplateConfig::default()
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for d in 0..5 {
            let _ = c.learn(a, d, &def(&T256));
        }
        assert_eq!(c.len(), 2);
        assert_eq!(c.stats().refused_full, 3);
        assert_eq!(
            c.learn(a, 9, &def(&[1, 1, 0, 1, 0, 1, 0, 0])),
            Err(Refusal::Full)
        );
    }

    #[test]
    fn sampling_rates_by_sampler() {
        let mut c = TemplateCache::new(TemplateConfig::default());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(c.sampling_rate(a, 0, 0), 0);
        c.learn_sampling(
            a,
            0,
            SamplingInfo {
                sampler_id: 3,
                rate: 100,
            },
        );
        c.learn_sampling(
            a,
            0,
            SamplingInfo {
                sampler_id: 4,
                rate: 1000,
            },
        );
        assert_eq!(c.sampling_rate(a, 0, 3), 100);
        assert_eq!(c.sampling_rate(a, 0, 4), 1000);
        assert_eq!(c.sampling_rate(a, 0, 0), 1000);
    }

    #[test]
    fn sequence_gaps() {
        let mut c = TemplateCache::new(TemplateConfig::default());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(c.sequence(a, 0, 10, Some(11)), 0);
        assert_eq!(c.sequence(a, 0, 11, Some(12)), 0);
        assert_eq!(c.sequence(a, 0, 15, Some(16)), 3);
        // A restart (backwards) is not a loss.
        assert_eq!(c.sequence(a, 0, 1, Some(2)), 0);
        // Wrap-around.
        assert_eq!(c.sequence(a, 1, u32::MAX, Some(0)), 0);
        assert_eq!(c.sequence(a, 1, 1, Some(2)), 1);
    }
}
