//! v9 and IPFIX templates: template and options-template records as they arrive in their sets,
//! the compact [`Template`] a cache keeps, and the data records a template describes (fixed and
//! variable-length fields, enterprise fields kept as `(enterprise, id, bytes)`).
//!
//! No cache and no allocation: a [`Template`] is a fixed-size value (at most [`MAX_FIELDS`]
//! fields), and data records borrow from the datagram.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{FlowL3, FlowRecord, NetflowError, TimeBase, be16, be32, ipv4_at, ipv6_at};

/// The most fields one template may have; larger templates are refused (and counted).
pub const MAX_FIELDS: usize = 128;

/// IPFIX's variable-length marker in a field specifier.
pub const VARLEN: u16 = 0xffff;

/// One field of a template: information element id, length (or [`VARLEN`]), and the
/// enterprise number (0 for IANA elements).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FieldSpec {
    pub id: u16,
    pub len: u16,
    pub enterprise: u32,
}

/// A template record as it appears in a (options) template set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TemplateDef<'a> {
    pub id: u16,
    pub field_count: u16,
    /// Scope fields at the start of the field list (options templates), else 0.
    pub scope_count: u16,
    pub options: bool,
    ipfix: bool,
    /// The field specifiers, exactly `field_count` of them.
    fields: &'a [u8],
}

impl<'a> TemplateDef<'a> {
    /// True for an IPFIX template withdrawal (a template record with no fields, RFC 7011
    /// section 8.1). NetFlow v9 has no withdrawal: there such a record is just malformed.
    pub fn is_withdrawal(&self) -> bool {
        self.ipfix && self.field_count == 0
    }

    /// True for an IPFIX withdrawal of every template (`id` 2, in a template set) or every
    /// options template (`id` 3, in an options template set) of the exporter's domain.
    pub fn is_withdraw_all(&self) -> bool {
        self.is_withdrawal() && self.id < 256
    }

    /// The field specifiers.
    pub fn fields(&self) -> FieldSpecs<'a> {
        FieldSpecs {
            rest: self.fields,
            ipfix: self.ipfix,
        }
    }
}

/// Iterator over field specifiers (already length-checked by the template walk).
#[derive(Clone, Debug)]
pub struct FieldSpecs<'a> {
    rest: &'a [u8],
    ipfix: bool,
}

impl Iterator for FieldSpecs<'_> {
    type Item = FieldSpec;

    fn next(&mut self) -> Option<FieldSpec> {
        if self.rest.len() < 4 {
            return None;
        }
        let raw = be16(self.rest, 0);
        let len = be16(self.rest, 2);
        if self.ipfix && raw & 0x8000 != 0 {
            let enterprise = be32(self.rest, 4);
            self.rest = self.rest.get(8..).unwrap_or_default();
            Some(FieldSpec {
                id: raw & 0x7fff,
                len,
                enterprise,
            })
        } else {
            self.rest = &self.rest[4..];
            Some(FieldSpec {
                id: raw,
                len,
                enterprise: 0,
            })
        }
    }
}

/// Iterator over the template records of one (options) template set. Stops at the end of the
/// set, at padding, or after the first malformed record (yielding its error once).
#[derive(Clone, Debug)]
pub struct TemplateRecords<'a> {
    rest: &'a [u8],
    ipfix: bool,
    options: bool,
}

/// The template records of a template set (`options` for an options template set).
pub fn template_records(body: &[u8], ipfix: bool, options: bool) -> TemplateRecords<'_> {
    TemplateRecords {
        rest: body,
        ipfix,
        options,
    }
}

impl<'a> Iterator for TemplateRecords<'a> {
    type Item = Result<TemplateDef<'a>, NetflowError>;

    fn next(&mut self) -> Option<Self::Item> {
        let hdr = match (self.options, self.ipfix) {
            (true, true) => 6,
            (true, false) => 6,
            (false, _) => 4,
        };
        // IPFIX withdrawals (RFC 7011 section 8.1) are 4 bytes (template id, field count 0)
        // in both kinds of set, and id 2 (template set) or 3 (options template set) withdraws
        // them all; they are told apart before the padding test because of those ids.
        if self.ipfix && self.rest.len() >= 4 && be16(self.rest, 2) == 0 {
            let id = be16(self.rest, 0);
            let all_id = if self.options { 3 } else { 2 };
            if id >= 256 || id == all_id {
                self.rest = &self.rest[4..];
                // Some exporters write an options withdrawal with a (zero) scope count: two
                // zero bytes that cannot start a record (ids start at 256) are skipped.
                if self.options && self.rest.len() >= 2 && be16(self.rest, 0) == 0 {
                    self.rest = &self.rest[2..];
                }
                return Some(Ok(TemplateDef {
                    id,
                    field_count: 0,
                    scope_count: 0,
                    options: self.options,
                    ipfix: true,
                    fields: &[],
                }));
            }
        }
        // Padding at the end of a set is shorter than a record header, or zeros (template
        // ids start at 256).
        if self.rest.len() < hdr || be16(self.rest, 0) < 256 {
            self.rest = &[];
            return None;
        }
        let id = be16(self.rest, 0);
        let r = self.rest;
        let (field_count, scope_count, spec_bytes) = if self.options && !self.ipfix {
            // v9: option scope length and option length are byte counts of (type, length) pairs.
            let scope_len = usize::from(be16(r, 2));
            let opt_len = usize::from(be16(r, 4));
            let total = scope_len + opt_len;
            if total % 4 != 0 || scope_len % 4 != 0 {
                self.rest = &[];
                return Some(Err(NetflowError::TemplateTruncated));
            }
            ((total / 4) as u16, (scope_len / 4) as u16, total)
        } else {
            let count = be16(r, 2);
            let scope = if self.options { be16(r, 4) } else { 0 };
            // The byte length depends on enterprise bits: walk the specifiers.
            let mut at = hdr;
            for _ in 0..count {
                let Some(raw) = r.get(at..at + 2) else {
                    self.rest = &[];
                    return Some(Err(NetflowError::TemplateTruncated));
                };
                at += if self.ipfix && raw[0] & 0x80 != 0 {
                    8
                } else {
                    4
                };
            }
            (count, scope, at - hdr)
        };
        let Some(fields) = r.get(hdr..hdr + spec_bytes) else {
            self.rest = &[];
            return Some(Err(NetflowError::TemplateTruncated));
        };
        if scope_count > field_count {
            self.rest = &[];
            return Some(Err(NetflowError::TemplateTruncated));
        }
        self.rest = &r[hdr + spec_bytes..];
        Some(Ok(TemplateDef {
            id,
            field_count,
            scope_count,
            options: self.options,
            ipfix: self.ipfix,
            fields,
        }))
    }
}

/// A template as a cache keeps it: a fixed-size copy of its field list plus what data
/// decoding needs precomputed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Template {
    fields: [FieldSpec; MAX_FIELDS],
    n: u16,
    scope_count: u16,
    options: bool,
    /// Sum of the fixed field lengths (each variable-length field counts its 1-byte prefix).
    min_len: u32,
    varlen: bool,
    /// How [`DataRecord::to_flow`] reads a record: compiled once per template, `None` when
    /// records take the walk over every field (see [`Plan`]).
    plan: Option<Plan>,
}

/// A compiled decode plan: the loads [`DataRecord::to_flow`] performs on every record of a
/// fixed-length template, each a fixed offset and width into a numbered slot, plus what the
/// field walk would decide from the template alone (which element supplies the byte count,
/// what the times count from, which address family each address has).
///
/// It reads exactly what the walk over every field reads ([`FlowAcc`]): fields in template
/// order, so a later duplicate overwrites an earlier one as it does in the walk. Templates
/// whose result would depend on record values in a way slots cannot express (several
/// sampling-rate elements: the last non-zero one wins), records shorter than one 8-byte
/// load and templates needing more than [`MAX_OPS`] loads get no plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Plan {
    /// Ops, in field order (an IPv6 address has two).
    ops: [Op; MAX_OPS],
    n: u16,
    src: Addr,
    dst: Addr,
    next_hop: Addr,
    l3: FlowL3,
    time_base: TimeBase,
    /// The start (end) comes from flowStartSeconds (flowEndSeconds): milliseconds are
    /// the value times 1000.
    start_secs: bool,
    end_secs: bool,
    /// The fixed-size window records can be read through, without a bounds check or a
    /// shift per load (see [`Window`]), if every field the plan reads ends in one.
    window: Window,
}

/// One load of a [`Plan`]: the 8 bytes at `start` of the record, big-endian, shifted right
/// by `shift` bits and masked with `mask`, into slot `slot`. A field of up to 8 bytes is the
/// low bytes of the 8 that end where it ends (or of the record's first 8, for a field that
/// ends before byte 8); a longer one keeps its last 8 bytes, as `be_uint` does; a 16-byte
/// address is two loads, its high half into `slot`, its low half into `slot + 1`.
///
/// `end` is where the field ends: a windowed load (see [`Window`]) reads the 8 bytes that
/// end there, whatever the field's offset, and needs no shift.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Op {
    start: u16,
    end: u16,
    shift: u8,
    slot: u8,
    mask: u64,
}

impl Op {
    /// The op that reads the `len`-byte field at `at` (a record at least 8 bytes long)
    /// as `be_uint` does; `None` past the offsets a record can have.
    fn uint(at: u32, len: u16, slot: u8) -> Option<Op> {
        let end = at + u32::from(len);
        let n = u32::from(len.min(8));
        let (start, shift) = match end.checked_sub(8) {
            Some(start) => (start, 0),
            None if n == 0 => (0, 0),
            None => (0, 8 * (8 - end)),
        };
        Some(Op {
            start: u16::try_from(start).ok()?,
            end: u16::try_from(end).ok()?,
            shift: shift as u8,
            slot,
            mask: u64::MAX.checked_shr(64 - 8 * n).unwrap_or(0),
        })
    }
}

/// The address family an address slot holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Addr {
    #[default]
    None,
    V4,
    V6,
}

/// The most ops a [`Plan`] holds (a cached template stays about 2 KiB); a template that
/// needs more keeps the walk.
const MAX_OPS: usize = 64;

/// Slots of a [`Plan`] (a record's values before they become a [`FlowRecord`]).
const S_BYTES: u8 = 0;
const S_PACKETS: u8 = 1;
const S_PROTO: u8 = 2;
const S_TOS: u8 = 3;
const S_TCP_FLAGS: u8 = 4;
const S_SRC_PORT: u8 = 5;
const S_DST_PORT: u8 = 6;
/// Addresses take two slots (an IPv6 address's halves; an IPv4 address is in the first).
const S_SRC: u8 = 7;
const S_DST: u8 = 9;
const S_NEXT_HOP: u8 = 11;
const S_SRC_MASK: u8 = 13;
const S_DST_MASK: u8 = 14;
const S_IN_IF: u8 = 15;
const S_OUT_IF: u8 = 16;
const S_SRC_AS: u8 = 17;
const S_DST_AS: u8 = 18;
const S_START: u8 = 19;
const S_END: u8 = 20;
const S_RATE: u8 = 21;
const S_SAMPLER: u8 = 22;
/// Slot count: every index a `u8` can hold, so indexing by an op's slot needs no check
/// (the slots of a set's records are zeroed once per set, see [`Flows`]).
const SLOTS: usize = 256;

/// The bytes a windowed [`Plan`] reads a record from: `W` bytes, the 8 before the record
/// (zeros for a set's first record), the record, and whatever follows it in its set (zeros
/// past the set's end). The 8 bytes that end where a field ends start at the field's end in
/// the window: an op's end masked with `W - 9` (`W - 8` is a power of two, and no field
/// ends past it) is a load always inside the window, and bytes outside the record are
/// always masked off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Window {
    /// Some field ends past the long window: checked loads.
    #[default]
    None,
    /// Every field ends by byte 63 ([`SHORT`] bytes).
    Short,
    /// Every field ends by byte 255 ([`LONG`] bytes).
    Long,
}
const SHORT: usize = 72;
const LONG: usize = 264;

impl Plan {
    /// Compiles the plan of a fixed-length template's fields; `None` when the walk must
    /// decode its records (see [`Plan`]).
    fn compile(fields: &[FieldSpec]) -> Option<Plan> {
        let iana = |id: u16| fields.iter().any(|f| f.enterprise == 0 && f.id == id);
        // The byte (packet) count: octetDeltaCount (packetDeltaCount) when the template has
        // one, else the total, else the post-sampling count; the others are never read.
        let bytes_id = [1, 85, 23].into_iter().find(|&id| iana(id));
        let packets_id = [2, 86, 24].into_iter().find(|&id| iana(id));
        let rates = fields
            .iter()
            .filter(|f| f.enterprise == 0 && matches!(f.id, 34 | 50 | 305))
            .count();
        // Loads are 8 bytes wide: a record must have them.
        let record_len: u32 = fields.iter().map(|f| u32::from(f.len)).sum();
        if rates > 1 || record_len < 8 {
            return None;
        }
        let mut p = Plan {
            ops: [Op::default(); MAX_OPS],
            n: 0,
            src: Addr::None,
            dst: Addr::None,
            next_hop: Addr::None,
            l3: FlowL3::None,
            time_base: TimeBase::None,
            start_secs: false,
            end_secs: false,
            window: Window::None,
        };
        let mut offset = 0u32;
        let mut k = 0usize;
        for f in fields {
            let (at, len) = (offset, f.len);
            offset += u32::from(f.len);
            if f.enterprise != 0 {
                continue;
            }
            let addr = |want: u16| len == want;
            let slot = match f.id {
                id if Some(id) == bytes_id => S_BYTES,
                id if Some(id) == packets_id => S_PACKETS,
                4 => S_PROTO,
                5 => S_TOS,
                6 => S_TCP_FLAGS,
                7 => S_SRC_PORT,
                11 => S_DST_PORT,
                8 if addr(4) => {
                    (p.src, p.l3) = (Addr::V4, FlowL3::Ipv4);
                    S_SRC
                }
                12 if addr(4) => {
                    (p.dst, p.l3) = (Addr::V4, FlowL3::Ipv4);
                    S_DST
                }
                27 if addr(16) => {
                    (p.src, p.l3) = (Addr::V6, FlowL3::Ipv6);
                    S_SRC
                }
                28 if addr(16) => {
                    (p.dst, p.l3) = (Addr::V6, FlowL3::Ipv6);
                    S_DST
                }
                15 if addr(4) => {
                    p.next_hop = Addr::V4;
                    S_NEXT_HOP
                }
                62 if addr(16) => {
                    p.next_hop = Addr::V6;
                    S_NEXT_HOP
                }
                9 | 29 => S_SRC_MASK,
                13 | 30 => S_DST_MASK,
                10 => S_IN_IF,
                14 => S_OUT_IF,
                16 => S_SRC_AS,
                17 => S_DST_AS,
                22 | 150 | 152 => {
                    p.start_secs = f.id == 150;
                    p.time_base = if f.id == 22 {
                        TimeBase::Uptime
                    } else {
                        TimeBase::UnixMs
                    };
                    S_START
                }
                21 | 151 | 153 => {
                    p.end_secs = f.id == 151;
                    p.time_base = if f.id == 21 {
                        TimeBase::Uptime
                    } else {
                        TimeBase::UnixMs
                    };
                    S_END
                }
                34 | 50 | 305 => S_RATE,
                48 | 302 => S_SAMPLER,
                _ => continue,
            };
            // Records are at most 65,535 bytes (a set's length is 16 bits): a template with
            // fields past that matches no record, and needs no plan.
            if matches!(slot, S_SRC | S_DST | S_NEXT_HOP) && len == 16 {
                let (Some(hi), Some(lo)) = (Op::uint(at, 8, slot), Op::uint(at + 8, 8, slot + 1))
                else {
                    return None;
                };
                for op in [hi, lo] {
                    *p.ops.get_mut(k)? = op;
                    k += 1;
                }
            } else {
                *p.ops.get_mut(k)? = Op::uint(at, len, slot)?;
                k += 1;
            }
        }
        p.n = k as u16;
        let end = p.ops[..k].iter().map(|op| usize::from(op.end)).max();
        p.window = match end.unwrap_or(0) {
            e if e <= SHORT - 9 => Window::Short,
            e if e <= LONG - 9 => Window::Long,
            _ => Window::None,
        };
        Some(p)
    }

    /// The ops to run.
    #[inline(always)]
    fn ops(&self) -> &[Op] {
        self.ops.get(..usize::from(self.n)).unwrap_or_default()
    }

    /// Decodes one record (exactly the template's record length; shorter ones read zeros).
    #[inline]
    fn run(&self, b: &[u8]) -> FlowRecord {
        let mut s = [0u64; SLOTS];
        self.load(&mut s, b);
        self.build(&s)
    }

    /// Runs the ops on a record (exactly the template's record length; shorter ones read
    /// zeros) into the slots they write; the other slots are left as they are.
    #[inline(always)]
    fn load(&self, s: &mut [u64; SLOTS], b: &[u8]) {
        for op in self.ops() {
            let w = u64::from_be_bytes(load(b, usize::from(op.start)));
            s[usize::from(op.slot)] = w.wrapping_shr(u32::from(op.shift)) & op.mask;
        }
    }

    /// [`Plan::load`] from a record's `W`-byte [`Window`] (a plan whose fields all end in
    /// it), four ops a round.
    #[inline(always)]
    fn load_window<const W: usize>(&self, s: &mut [u64; SLOTS], b: &[u8; W]) {
        const { assert!((W - 8).is_power_of_two()) };
        let mut one = |op: &Op| {
            let at = usize::from(op.end) & (W - 9);
            let w = match b[at..at + 8].try_into() {
                Ok(w) => u64::from_be_bytes(w),
                Err(_) => 0,
            };
            s[usize::from(op.slot)] = w & op.mask;
        };
        let (rounds, rest) = self.ops().as_chunks::<4>();
        for [a, b, c, d] in rounds {
            one(a);
            one(b);
            one(c);
            one(d);
        }
        for op in rest {
            one(op);
        }
    }

    /// The record the slots hold (every slot no op writes is 0).
    #[inline(always)]
    fn build(&self, s: &[u64; SLOTS]) -> FlowRecord {
        let addr = |kind: Addr, slot: u8| {
            let hi = s[usize::from(slot)];
            match kind {
                Addr::None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                Addr::V4 => IpAddr::V4(Ipv4Addr::from_bits(hi as u32)),
                Addr::V6 => {
                    let lo = s[usize::from(slot) + 1];
                    IpAddr::V6(Ipv6Addr::from_bits((u128::from(hi) << 64) | u128::from(lo)))
                }
            }
        };
        let time = |v: u64, secs: bool| if secs { v.saturating_mul(1000) } else { v };
        FlowRecord {
            l3: self.l3,
            src: addr(self.src, S_SRC),
            dst: addr(self.dst, S_DST),
            next_hop: addr(self.next_hop, S_NEXT_HOP),
            src_port: s[usize::from(S_SRC_PORT)] as u16,
            dst_port: s[usize::from(S_DST_PORT)] as u16,
            proto: s[usize::from(S_PROTO)] as u8,
            tos: s[usize::from(S_TOS)] as u8,
            tcp_flags: s[usize::from(S_TCP_FLAGS)] as u8,
            src_mask: s[usize::from(S_SRC_MASK)] as u8,
            dst_mask: s[usize::from(S_DST_MASK)] as u8,
            packets: s[usize::from(S_PACKETS)],
            bytes: s[usize::from(S_BYTES)],
            in_if: s[usize::from(S_IN_IF)] as u32,
            out_if: s[usize::from(S_OUT_IF)] as u32,
            src_as: s[usize::from(S_SRC_AS)] as u32,
            dst_as: s[usize::from(S_DST_AS)] as u32,
            start: time(s[usize::from(S_START)], self.start_secs),
            end: time(s[usize::from(S_END)], self.end_secs),
            time_base: self.time_base,
            // One rate element at most: 0 stays "unknown", as the walk leaves it.
            sampling_rate: s[usize::from(S_RATE)].min(u64::from(u32::MAX)) as u32,
            sampler_id: s[usize::from(S_SAMPLER)] as u32,
        }
    }
}

/// `N` bytes at `at`, zeros when they are not all there.
#[inline(always)]
fn load<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    b.get(at..at + N)
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .unwrap_or([0; N])
}

impl Default for Template {
    fn default() -> Self {
        Self {
            fields: [FieldSpec::default(); MAX_FIELDS],
            n: 0,
            scope_count: 0,
            options: false,
            min_len: 0,
            varlen: false,
            plan: None,
        }
    }
}

impl Template {
    /// Copies a template record; refuses templates with more than [`MAX_FIELDS`] fields and
    /// templates whose records would be zero bytes long (they could never be walked).
    pub fn from_def(def: &TemplateDef<'_>) -> Result<Self, NetflowError> {
        let mut t = Template::default();
        t.fill(def)?;
        Ok(t)
    }

    /// Overwrites `self` with a template record (no copy of the whole value on the stack).
    pub fn fill(&mut self, def: &TemplateDef<'_>) -> Result<(), NetflowError> {
        if usize::from(def.field_count) > MAX_FIELDS {
            return Err(NetflowError::TemplateTooLarge);
        }
        let mut n = 0usize;
        let mut min_len = 0u32;
        let mut varlen = false;
        for f in def.fields() {
            if n >= MAX_FIELDS {
                return Err(NetflowError::TemplateTooLarge);
            }
            if f.len == VARLEN && def.ipfix {
                varlen = true;
                min_len += 1;
            } else {
                min_len += u32::from(f.len);
            }
            self.fields[n] = f;
            n += 1;
        }
        if min_len == 0 {
            return Err(NetflowError::TemplateEmpty);
        }
        self.n = n as u16;
        self.scope_count = def.scope_count;
        self.options = def.options;
        self.min_len = min_len;
        self.varlen = varlen;
        self.plan = if varlen {
            None
        } else {
            Plan::compile(&self.fields[..n])
        };
        Ok(())
    }

    /// The field specifiers, scope fields first.
    pub fn fields(&self) -> &[FieldSpec] {
        &self.fields[..usize::from(self.n)]
    }

    /// Scope fields at the start of the list (options templates).
    pub fn scope_count(&self) -> u16 {
        self.scope_count
    }

    /// True for an options template.
    pub fn is_options(&self) -> bool {
        self.options
    }

    /// The shortest record this template describes, in bytes.
    pub fn min_record_len(&self) -> usize {
        self.min_len as usize
    }

    /// The data records of a data set described by this template. A trailing remainder shorter
    /// than a record is padding.
    pub fn records<'a>(&'a self, body: &'a [u8]) -> DataRecords<'a> {
        DataRecords {
            tpl: self,
            rest: body,
            error: None,
        }
    }

    /// The data records of a data set as flow records: what
    /// `records(body).map(|r| r.to_flow())` yields, read for less per record (a set's
    /// records share the plan's slots, and a windowed plan loads without bounds checks).
    pub fn flows<'a>(&'a self, body: &'a [u8]) -> Flows<'a> {
        Flows {
            recs: self.records(body),
            body,
            slots: [0; SLOTS],
        }
    }
}

/// Iterator over the flow records of one data set (see [`Template::flows`]).
#[derive(Clone, Debug)]
pub struct Flows<'a> {
    recs: DataRecords<'a>,
    /// The whole set (a record's window starts before it).
    body: &'a [u8],
    /// The plan's slots, shared by the set's records: every record's ops write the same
    /// slots, so the others stay 0 from the start.
    slots: [u64; SLOTS],
}

impl Flows<'_> {
    /// Set when the walk stopped at a malformed record (a variable-length field past the end).
    pub fn error(&self) -> Option<NetflowError> {
        self.recs.error
    }

    /// Reads the next record into `f` (every field written); false at the end of the set,
    /// `f` untouched. What [`Iterator::next`] yields, without moving the record around.
    #[inline]
    pub fn next_into(&mut self, f: &mut FlowRecord) -> bool {
        let tpl = self.recs.tpl;
        let Some(plan) = &tpl.plan else {
            return match self.recs.next() {
                Some(r) => {
                    *f = r.to_flow_walked();
                    true
                }
                None => false,
            };
        };
        // A plan's template has fixed-length records only.
        let rest = self.recs.rest;
        let len = tpl.min_record_len();
        let Some((rec, tail)) = rest.split_at_checked(len).filter(|_| len > 0) else {
            self.recs.rest = &[];
            return false;
        };
        self.recs.rest = tail;
        match plan.window {
            Window::Short => self.load_window::<SHORT>(plan, rest),
            Window::Long => self.load_window::<LONG>(plan, rest),
            Window::None => plan.load(&mut self.slots, rec),
        }
        *f = plan.build(&self.slots);
        true
    }

    /// Runs a windowed plan on the record that starts `rest` (the set from the record on).
    #[inline(always)]
    fn load_window<const W: usize>(&mut self, plan: &Plan, rest: &[u8]) {
        // The record starts at `at` of the set; its window 8 bytes before.
        let at = self.body.len() - rest.len();
        match self
            .body
            .get(at.wrapping_sub(8)..)
            .and_then(|b| b.first_chunk::<W>())
        {
            Some(w) => plan.load_window(&mut self.slots, w),
            None => {
                // The set's first and last records: the window is padded with zeros.
                let mut w = [0u8; W];
                let n = rest.len().min(W - 8);
                w[8..8 + n].copy_from_slice(&rest[..n]);
                plan.load_window(&mut self.slots, &w);
            }
        }
    }
}

impl Iterator for Flows<'_> {
    type Item = FlowRecord;

    fn next(&mut self) -> Option<FlowRecord> {
        let mut f = FlowRecord::default();
        self.next_into(&mut f).then_some(f)
    }
}

/// Iterator over the data records of one data set.
#[derive(Clone, Debug)]
pub struct DataRecords<'a> {
    tpl: &'a Template,
    rest: &'a [u8],
    error: Option<NetflowError>,
}

impl DataRecords<'_> {
    /// Set when the walk stopped at a malformed record (a variable-length field past the end).
    pub fn error(&self) -> Option<NetflowError> {
        self.error
    }
}

impl<'a> Iterator for DataRecords<'a> {
    type Item = DataRecord<'a>;

    fn next(&mut self) -> Option<DataRecord<'a>> {
        let min = self.tpl.min_record_len();
        if min == 0 || self.rest.len() < min {
            self.rest = &[];
            return None;
        }
        let len = if self.tpl.varlen {
            let mut at = 0usize;
            for f in self.tpl.fields() {
                if f.len == VARLEN {
                    let Some(&first) = self.rest.get(at) else {
                        self.error = Some(NetflowError::VarlenTruncated);
                        self.rest = &[];
                        return None;
                    };
                    let (hdr, n) = if first == 255 {
                        (3, usize::from(be16(self.rest, at + 1)))
                    } else {
                        (1, usize::from(first))
                    };
                    at += hdr + n;
                } else {
                    at += usize::from(f.len);
                }
                if at > self.rest.len() {
                    self.error = Some(NetflowError::VarlenTruncated);
                    self.rest = &[];
                    return None;
                }
            }
            at
        } else {
            min
        };
        let bytes = &self.rest[..len];
        self.rest = &self.rest[len..];
        Some(DataRecord {
            tpl: self.tpl,
            bytes,
        })
    }
}

/// One data record and the template that describes it.
#[derive(Clone, Copy, Debug)]
pub struct DataRecord<'a> {
    tpl: &'a Template,
    bytes: &'a [u8],
}

/// Sampling information carried by an options data record (or a data record).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SamplingInfo {
    /// Sampler / selector id the rate belongs to (0 = the exporter's default).
    pub sampler_id: u32,
    /// 1-in-N rate; 0 when the record carries none.
    pub rate: u32,
}

/// Big-endian unsigned value of up to 8 bytes (reduced-size encoding); longer fields keep
/// their last 8 bytes.
#[inline]
pub fn be_uint(b: &[u8]) -> u64 {
    // The usual widths as one load each.
    match *b {
        [x] => return u64::from(x),
        [x0, x1] => return u64::from(u16::from_be_bytes([x0, x1])),
        [x0, x1, x2, x3] => return u64::from(u32::from_be_bytes([x0, x1, x2, x3])),
        [x0, x1, x2, x3, x4, x5, x6, x7] => {
            return u64::from_be_bytes([x0, x1, x2, x3, x4, x5, x6, x7]);
        }
        _ => {}
    }
    let b = if b.len() > 8 { &b[b.len() - 8..] } else { b };
    let mut v = 0u64;
    for &x in b {
        v = (v << 8) | u64::from(x);
    }
    v
}

impl<'a> DataRecord<'a> {
    /// The raw bytes of the record.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The template's fields and their values; enterprise fields included (their spec says
    /// which enterprise). Variable-length values exclude their length prefix.
    pub fn fields(&self) -> FieldValues<'a> {
        FieldValues {
            specs: self.tpl.fields(),
            rest: self.bytes,
            i: 0,
        }
    }

    /// The record as a neutral flow record (IANA elements only).
    pub fn to_flow(&self) -> FlowRecord {
        match &self.tpl.plan {
            Some(plan) => plan.run(self.bytes),
            None => self.to_flow_walked(),
        }
    }

    /// The record as a neutral flow record, read by the walk over every field (what
    /// [`DataRecord::to_flow`] does for templates without a compiled plan). Kept public as
    /// the reference the compiled plans are checked against.
    pub fn to_flow_walked(&self) -> FlowRecord {
        let mut acc = FlowAcc::default();
        for (spec, v) in self.fields() {
            if spec.enterprise == 0 {
                acc.field(spec.id, v);
            }
        }
        acc.finish()
    }

    /// The sampling rate and sampler id an (options) record carries, if any.
    pub fn sampling(&self) -> SamplingInfo {
        let mut s = SamplingInfo::default();
        for (spec, v) in self.fields() {
            if spec.enterprise == 0 {
                sampling_field(spec.id, v, &mut s);
            }
        }
        s
    }
}

/// A flow record being read field by field, with the fall-back counters kept apart so the
/// preferred element wins whatever the field order.
#[derive(Default)]
struct FlowAcc {
    f: FlowRecord,
    total_bytes: Option<u64>,
    total_packets: Option<u64>,
    post_bytes: Option<u64>,
    post_packets: Option<u64>,
    have_bytes: bool,
    have_packets: bool,
    rate: SamplingInfo,
}

impl FlowAcc {
    /// Reads one IANA field (id `id`, value `v`). Always inlined: a record calls it for
    /// every field it has.
    #[inline(always)]
    fn field(&mut self, id: u16, v: &[u8]) {
        let Self {
            f,
            total_bytes,
            total_packets,
            post_bytes,
            post_packets,
            have_bytes,
            have_packets,
            rate,
        } = self;
        {
            let n = || be_uint(v);
            match id {
                1 => {
                    f.bytes = n();
                    *have_bytes = true;
                }
                2 => {
                    f.packets = n();
                    *have_packets = true;
                }
                85 => *total_bytes = Some(n()),
                86 => *total_packets = Some(n()),
                23 => *post_bytes = Some(n()),
                24 => *post_packets = Some(n()),
                4 => f.proto = n() as u8,
                5 => f.tos = n() as u8,
                6 => f.tcp_flags = n() as u8,
                7 => f.src_port = n() as u16,
                11 => f.dst_port = n() as u16,
                8 if v.len() == 4 => {
                    f.src = IpAddr::V4(ipv4_at(v, 0));
                    f.l3 = FlowL3::Ipv4;
                }
                12 if v.len() == 4 => {
                    f.dst = IpAddr::V4(ipv4_at(v, 0));
                    f.l3 = FlowL3::Ipv4;
                }
                27 if v.len() == 16 => {
                    f.src = IpAddr::V6(ipv6_at(v, 0));
                    f.l3 = FlowL3::Ipv6;
                }
                28 if v.len() == 16 => {
                    f.dst = IpAddr::V6(ipv6_at(v, 0));
                    f.l3 = FlowL3::Ipv6;
                }
                15 if v.len() == 4 => f.next_hop = IpAddr::V4(ipv4_at(v, 0)),
                62 if v.len() == 16 => f.next_hop = IpAddr::V6(ipv6_at(v, 0)),
                9 | 29 => f.src_mask = n() as u8,
                13 | 30 => f.dst_mask = n() as u8,
                10 => f.in_if = n() as u32,
                14 => f.out_if = n() as u32,
                16 => f.src_as = n() as u32,
                17 => f.dst_as = n() as u32,
                22 => {
                    f.start = n();
                    f.time_base = TimeBase::Uptime;
                }
                21 => {
                    f.end = n();
                    f.time_base = TimeBase::Uptime;
                }
                150 => {
                    f.start = n().saturating_mul(1000);
                    f.time_base = TimeBase::UnixMs;
                }
                151 => {
                    f.end = n().saturating_mul(1000);
                    f.time_base = TimeBase::UnixMs;
                }
                152 => {
                    f.start = n();
                    f.time_base = TimeBase::UnixMs;
                }
                153 => {
                    f.end = n();
                    f.time_base = TimeBase::UnixMs;
                }
                _ => sampling_field(id, v, rate),
            }
        }
    }

    /// The record, fall-backs applied.
    fn finish(self) -> FlowRecord {
        let mut f = self.f;
        if !self.have_bytes {
            f.bytes = self.total_bytes.or(self.post_bytes).unwrap_or(0);
        }
        if !self.have_packets {
            f.packets = self.total_packets.or(self.post_packets).unwrap_or(0);
        }
        f.sampling_rate = self.rate.rate;
        f.sampler_id = self.rate.sampler_id;
        f
    }
}

/// Reads the sampling elements: samplingInterval (34), samplerRandomInterval (50),
/// samplingPacketInterval (305); the sampler is FLOW_SAMPLER_ID / samplerId (48) or
/// selectorId (302).
#[inline]
fn sampling_field(id: u16, v: &[u8], s: &mut SamplingInfo) {
    match id {
        34 | 50 | 305 => {
            let r = be_uint(v);
            if r > 0 {
                s.rate = r.min(u64::from(u32::MAX)) as u32;
            }
        }
        48 | 302 => s.sampler_id = be_uint(v) as u32,
        _ => {}
    }
}

/// Iterator over `(field spec, value bytes)` of one data record.
#[derive(Clone, Debug)]
pub struct FieldValues<'a> {
    specs: &'a [FieldSpec],
    rest: &'a [u8],
    i: usize,
}

impl<'a> Iterator for FieldValues<'a> {
    type Item = (FieldSpec, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let spec = *self.specs.get(self.i)?;
        self.i += 1;
        let (skip, len) = if spec.len == VARLEN {
            match self.rest.first() {
                Some(255) => (3, usize::from(be16(self.rest, 1))),
                Some(&n) => (1, usize::from(n)),
                None => return None,
            }
        } else {
            (0, usize::from(spec.len))
        };
        let v = self.rest.get(skip..skip + len)?;
        self.rest = &self.rest[skip + len..];
        Some((spec, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netflow::{Datagram, SetKind};

    /// A v9 datagram: one template set (id 256: src v4, dst v4, packets, bytes, in if, proto)
    /// and one data set with two records.
    pub(crate) fn v9_template_and_data() -> Vec<u8> {
        let mut b = vec![0, 9, 0, 2];
        b.extend_from_slice(&[0, 0, 0, 1, 0x5f, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 42]);
        let fields: [(u16, u16); 6] = [(8, 4), (12, 4), (2, 4), (1, 4), (10, 2), (4, 1)];
        let mut t = vec![1u8, 0, 0, fields.len() as u8];
        for (id, len) in fields {
            t.extend_from_slice(&id.to_be_bytes());
            t.extend_from_slice(&len.to_be_bytes());
        }
        b.extend_from_slice(&0u16.to_be_bytes());
        b.extend_from_slice(&((t.len() + 4) as u16).to_be_bytes());
        b.extend_from_slice(&t);
        let mut d = Vec::new();
        for i in 1..=2u8 {
            d.extend_from_slice(&[192, 0, 2, i, 198, 51, 100, 1]);
            d.extend_from_slice(&u32::from(i).to_be_bytes());
            d.extend_from_slice(&(1000 * u32::from(i)).to_be_bytes());
            d.extend_from_slice(&[0, 7, 17]);
        }
        d.extend_from_slice(&[0, 0]); // padding
        b.extend_from_slice(&256u16.to_be_bytes());
        b.extend_from_slice(&((d.len() + 4) as u16).to_be_bytes());
        b.extend_from_slice(&d);
        b
    }

    #[test]
    fn v9_template_then_data() {
        let b = v9_template_and_data();
        let dg = Datagram::parse(&b).unwrap();
        assert_eq!((dg.sequence, dg.domain), (7, 42));
        let mut sets = dg.sets();
        let ts = sets.next().unwrap().unwrap();
        assert_eq!(ts.kind(false), SetKind::Template);
        let def = template_records(ts.body, false, false)
            .next()
            .unwrap()
            .unwrap();
        assert_eq!((def.id, def.field_count), (256, 6));
        let tpl = Template::from_def(&def).unwrap();
        assert_eq!(tpl.min_record_len(), 19);
        let ds = sets.next().unwrap().unwrap();
        assert_eq!(ds.kind(false), SetKind::Data(256));
        let recs: Vec<_> = tpl.records(ds.body).map(|r| r.to_flow()).collect();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].src, "192.0.2.2".parse::<IpAddr>().unwrap());
        assert_eq!((recs[1].packets, recs[1].bytes), (2, 2000));
        assert_eq!(
            (recs[1].in_if, recs[1].proto, recs[1].l3),
            (7, 17, FlowL3::Ipv4)
        );
        assert!(sets.next().is_none());
    }

    #[test]
    fn ipfix_varlen_enterprise_and_withdrawal() {
        // Template 300: enterprise field (pen 9, id 1, varlen), octetDeltaCount (8 bytes),
        // reduced-size packetDeltaCount (2 bytes).
        let mut t = vec![1u8, 44, 0, 3];
        t.extend_from_slice(&[0x80, 1, 0xff, 0xff, 0, 0, 0, 9]);
        t.extend_from_slice(&[0, 1, 0, 8, 0, 2, 0, 2]);
        let def = template_records(&t, true, false).next().unwrap().unwrap();
        assert!(!def.is_withdrawal());
        let tpl = Template::from_def(&def).unwrap();
        assert_eq!(tpl.fields()[0].enterprise, 9);
        let mut data = vec![3, b'a', b'b', b'c'];
        data.extend_from_slice(&500u64.to_be_bytes());
        data.extend_from_slice(&5u16.to_be_bytes());
        // Long form of the variable length: 255 then two bytes.
        data.extend_from_slice(&[255, 0, 1, b'z']);
        data.extend_from_slice(&7u64.to_be_bytes());
        data.extend_from_slice(&1u16.to_be_bytes());
        let recs: Vec<_> = tpl.records(&data).collect();
        assert_eq!(recs.len(), 2);
        let (spec, v) = recs[0].fields().next().unwrap();
        assert_eq!((spec.enterprise, spec.id, v), (9, 1, &b"abc"[..]));
        assert_eq!(
            (recs[0].to_flow().bytes, recs[0].to_flow().packets),
            (500, 5)
        );
        assert_eq!(recs[1].fields().next().unwrap().1, b"z");
        // A variable length past the end stops the walk with an error.
        let mut it = tpl.records(&[200, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
        assert!(it.next().is_none());
        assert_eq!(it.error(), Some(NetflowError::VarlenTruncated));
        // Withdrawal: a template record with no fields.
        let w = template_records(&[1, 44, 0, 0], true, false)
            .next()
            .unwrap()
            .unwrap();
        assert!(w.is_withdrawal());
    }

    #[test]
    fn ipfix_withdrawal_records() {
        let ids = |body: &[u8], ipfix: bool, options: bool| -> Vec<(u16, bool, bool)> {
            template_records(body, ipfix, options)
                .flatten()
                .map(|d| (d.id, d.is_withdrawal(), d.is_withdraw_all()))
                .collect()
        };
        // Two withdrawals of one template each, then padding.
        assert_eq!(
            ids(&[1, 44, 0, 0, 1, 45, 0, 0, 0, 0], true, false),
            [(300, true, false), (301, true, false)]
        );
        // Withdraw-all: id 2 in a template set, 3 in an options template set.
        assert_eq!(ids(&[0, 2, 0, 0], true, false), [(2, true, true)]);
        assert_eq!(ids(&[0, 3, 0, 0], true, true), [(3, true, true)]);
        // The other kind's all-id is padding, not a withdrawal.
        assert!(ids(&[0, 3, 0, 0], true, false).is_empty());
        assert!(ids(&[0, 2, 0, 0], true, true).is_empty());
        // Options withdrawals: 4 bytes each, or 6 with a zero scope count.
        assert_eq!(
            ids(&[1, 44, 0, 0, 1, 45, 0, 0, 0, 0, 1, 46, 0, 0], true, true),
            [(300, true, false), (301, true, false), (302, true, false)]
        );
        // NetFlow v9 has no withdrawal: a record without fields is not one, and ids below 256
        // are padding.
        let v9 = template_records(&[1, 44, 0, 0], false, false)
            .next()
            .unwrap()
            .unwrap();
        assert!(!v9.is_withdrawal());
        assert!(Template::from_def(&v9).is_err());
        assert!(ids(&[0, 2, 0, 0], false, false).is_empty());
    }

    #[test]
    fn options_templates_and_sampling() {
        // v9 options template 257: scope system (1) 4 bytes; options: samplingInterval (34)
        // 4 bytes, samplingAlgorithm (35) 1 byte.
        let t = [1u8, 1, 0, 4, 0, 8, 0, 1, 0, 4, 0, 34, 0, 4, 0, 35, 0, 1];
        let def = template_records(&t, false, true).next().unwrap().unwrap();
        assert_eq!(
            (def.field_count, def.scope_count, def.options),
            (3, 1, true)
        );
        let tpl = Template::from_def(&def).unwrap();
        let data = [0, 0, 0, 1, 0, 0, 0x03, 0xe8, 2];
        let r = tpl.records(&data).next().unwrap();
        assert_eq!(r.sampling().rate, 1000);
        // IPFIX options template: id 400, 2 fields, 1 scope: selectorId (302) 2 bytes,
        // samplingPacketInterval (305) 4 bytes.
        let t = [1u8, 144, 0, 2, 0, 1, 1, 46, 0, 2, 1, 49, 0, 4];
        let def = template_records(&t, true, true).next().unwrap().unwrap();
        let tpl = Template::from_def(&def).unwrap();
        let r = tpl.records(&[0, 5, 0, 0, 0, 64]).next().unwrap();
        assert_eq!(
            r.sampling(),
            SamplingInfo {
                sampler_id: 5,
                rate: 64
            }
        );
    }

    #[test]
    fn bad_templates_are_refused() {
        // Field count past the end of the set.
        let t = [1u8, 0, 0, 9, 0, 1, 0, 4];
        assert_eq!(
            template_records(&t, false, false).next().unwrap(),
            Err(NetflowError::TemplateTruncated)
        );
        // Zero-length fields only: records would be empty.
        let t = [1u8, 0, 0, 1, 0, 1, 0, 0];
        let def = template_records(&t, false, false).next().unwrap().unwrap();
        assert_eq!(Template::from_def(&def), Err(NetflowError::TemplateEmpty));
        // More fields than a template holds.
        let mut t = vec![1u8, 0, 0x01, 0x00];
        for _ in 0..256 {
            t.extend_from_slice(&[0, 1, 0, 4]);
        }
        let def = template_records(&t, false, false).next().unwrap().unwrap();
        assert_eq!(
            Template::from_def(&def),
            Err(NetflowError::TemplateTooLarge)
        );
    }

    /// A template record (id 256) of `(id, len, enterprise)` fields; enterprise numbers
    /// only reach IPFIX templates.
    fn template_bytes(fields: &[(u16, u16, u32)], ipfix: bool) -> Vec<u8> {
        let mut t = vec![1u8, 0];
        t.extend_from_slice(&(fields.len() as u16).to_be_bytes());
        for &(id, len, pen) in fields {
            if ipfix && pen != 0 {
                t.extend_from_slice(&(id | 0x8000).to_be_bytes());
                t.extend_from_slice(&len.to_be_bytes());
                t.extend_from_slice(&pen.to_be_bytes());
            } else {
                t.extend_from_slice(&(if ipfix { id & 0x7fff } else { id }).to_be_bytes());
                t.extend_from_slice(&len.to_be_bytes());
            }
        }
        t
    }

    fn template_of(fields: &[(u16, u16, u32)], ipfix: bool) -> Template {
        let t = template_bytes(fields, ipfix);
        let def = template_records(&t, ipfix, false).next().unwrap().unwrap();
        Template::from_def(&def).unwrap()
    }

    #[test]
    fn plans_resolve_duplicates_and_fall_backs_like_the_walk() {
        // IPv6 source after an IPv4 one, the total byte count (no octetDeltaCount), a
        // 16-byte packet count, flowStartSeconds then flowStartMilliseconds, a 3-byte AS.
        let tpl = template_of(
            &[
                (8, 4, 0),
                (27, 16, 0),
                (85, 4, 0),
                (23, 4, 0),
                (2, 16, 0),
                (150, 4, 0),
                (152, 8, 0),
                (151, 4, 0),
                (16, 3, 0),
                (12, 4, 0),
                (34, 2, 0),
            ],
            true,
        );
        assert!(tpl.plan.is_some());
        let data: Vec<u8> = (0..tpl.min_record_len() as u8).map(|i| i ^ 0x5a).collect();
        let r = tpl.records(&data).next().unwrap();
        let f = r.to_flow();
        assert_eq!(f, r.to_flow_walked());
        assert_eq!(f.l3, FlowL3::Ipv4);
        assert!(f.src.is_ipv6() && f.dst.is_ipv4());
        assert_eq!(f.time_base, TimeBase::UnixMs);
        assert_eq!(
            f.bytes,
            u64::from(u32::from_be_bytes([
                0x5a ^ 20,
                0x5a ^ 21,
                0x5a ^ 22,
                0x5a ^ 23
            ]))
        );
        // Two sampling-rate elements: the last non-zero wins, which only the walk knows.
        let tpl = template_of(&[(34, 4, 0), (305, 4, 0), (1, 4, 0)], false);
        assert!(tpl.plan.is_none());
        let data = [0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(
            tpl.records(&data).next().unwrap().to_flow().sampling_rate,
            7
        );
        // More loads than a plan holds: the walk.
        let tpl = template_of(&[(4, 1, 0); MAX_OPS + 1], false);
        assert!(tpl.plan.is_none());
        let tpl = template_of(&[(4, 1, 0); MAX_OPS], false);
        assert!(tpl.plan.is_some());
        assert!(size_of::<Template>() < 2200, "{}", size_of::<Template>());
    }

    #[test]
    fn flows_read_windowed_and_long_records_like_the_walk() {
        // Records whose fields all end in the short window (the last one ends at byte 63),
        // records one byte longer, records whose last field ends at byte 255, the last
        // in the long window, and records read through the checked loads.
        for (pad, window) in [
            (38u16, Window::Short),
            (39, Window::Long),
            (230, Window::Long),
            (231, Window::None),
        ] {
            let tpl = template_of(
                &[
                    (8, 4, 0),
                    (12, 4, 0),
                    (7, 2, 0),
                    (11, 2, 0),
                    (4, 1, 0),
                    (1, 4, 0),
                    (999, pad, 0),
                    (2, 8, 0),
                ],
                false,
            );
            let plan = tpl.plan.as_ref().unwrap();
            assert_eq!(plan.window, window);
            let len = tpl.min_record_len();
            // Several records and some padding: the last ones have less than a window left.
            let data: Vec<u8> = (0..len * 4 + 3).map(|i| (i * 7 + 1) as u8).collect();
            let walked: Vec<_> = tpl.records(&data).map(|r| r.to_flow_walked()).collect();
            let fast: Vec<_> = tpl.flows(&data).collect();
            assert_eq!(walked.len(), 4);
            assert_eq!(fast, walked);
            assert_eq!(fast[3].packets, be_uint(&data[len * 4 - 8..len * 4]));
        }
        // No plan (a variable-length field): the walk, with its error.
        let tpl = template_of(&[(8, 4, 0), (1, VARLEN, 0)], true);
        let mut flows = tpl.flows(&[192, 0, 2, 1, 1, 9, 192, 0, 2, 2, 200]);
        assert_eq!(flows.next().unwrap().bytes, 9);
        assert!(flows.next().is_none());
        assert_eq!(flows.error(), Some(NetflowError::VarlenTruncated));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

        /// The one-load widths read what the byte loop reads.
        #[test]
        fn be_uint_equals_the_byte_loop(
            b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12),
        ) {
            let tail = if b.len() > 8 { &b[b.len() - 8..] } else { &b[..] };
            let want = tail.iter().fold(0u64, |v, &x| (v << 8) | u64::from(x));
            proptest::prop_assert_eq!(be_uint(&b), want);
        }

        /// A template's compiled plan reads what the walk over every field reads, on any
        /// template (known, unknown, enterprise, variable-length, zero-length and long
        /// fields; duplicates) and any record bytes; the record walk is the same either way.
        #[test]
        fn planned_decode_equals_the_field_walk(
            fields in proptest::collection::vec(
                (
                    proptest::prop_oneof![
                        4 => 0u16..40,
                        1 => 80u16..90,
                        1 => 148u16..156,
                        1 => 300u16..306,
                        1 => proptest::sample::select(vec![34u16, 48, 50, 62, 302, 305]),
                        1 => proptest::prelude::any::<u16>(),
                    ],
                    proptest::prop_oneof![
                        6 => 0u16..9,
                        3 => proptest::sample::select(vec![4u16, 16]),
                        1 => 9u16..40,
                        1 => proptest::strategy::Just(VARLEN),
                    ],
                    proptest::prop_oneof![
                        6 => proptest::strategy::Just(0u32),
                        1 => proptest::prelude::any::<u32>(),
                    ],
                ),
                1..24,
            ),
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            ipfix in proptest::prelude::any::<bool>(),
        ) {
            let t = template_bytes(&fields, ipfix);
            let def = template_records(&t, ipfix, false).next().unwrap().unwrap();
            let Ok(tpl) = Template::from_def(&def) else {
                return Ok(());
            };
            let mut recs = tpl.records(&data);
            let mut n = 0;
            let mut walked = Vec::new();
            for r in recs.by_ref() {
                proptest::prop_assert_eq!(r.to_flow(), r.to_flow_walked());
                walked.push(r.to_flow_walked());
                n += 1;
            }
            // The set-at-a-time decode yields the same records and stops the same way.
            let mut flows = tpl.flows(&data);
            let fast: Vec<_> = flows.by_ref().collect();
            proptest::prop_assert_eq!(&fast, &walked);
            proptest::prop_assert_eq!(flows.error(), recs.error());
            // Into one reused record, whatever the previous one left in it.
            let mut flows = tpl.flows(&data);
            let mut f = FlowRecord::default();
            let mut reused = Vec::new();
            while flows.next_into(&mut f) {
                reused.push(f);
                f = FlowRecord {
                    l3: FlowL3::Ipv6,
                    src: IpAddr::V6(Ipv6Addr::LOCALHOST),
                    sampling_rate: 7,
                    time_base: TimeBase::Uptime,
                    packets: 3,
                    ..FlowRecord::default()
                };
            }
            proptest::prop_assert_eq!(reused, walked);
            if !tpl.varlen {
                // Every fixed-length template gets a plan, but those with several rate
                // elements, records shorter than a load, or fields past any record.
                let rates = tpl
                    .fields()
                    .iter()
                    .filter(|f| f.enterprise == 0 && matches!(f.id, 34 | 50 | 305))
                    .count();
                proptest::prop_assert!(
                    tpl.plan.is_some()
                        || rates > 1
                        || tpl.min_record_len() < 8
                        || tpl.min_record_len() > usize::from(u16::MAX)
                );
                proptest::prop_assert_eq!(n, data.len() / tpl.min_record_len());
                proptest::prop_assert_eq!(recs.error(), None);
            }
        }
    }

    #[test]
    fn reduced_size_and_long_values() {
        assert_eq!(be_uint(&[1, 0]), 256);
        assert_eq!(be_uint(&[]), 0);
        assert_eq!(be_uint(&[9, 0, 0, 0, 0, 0, 0, 0, 1]), 1);
    }
}
