//! The Mozilla public suffix list: parsed once from `public_suffix_list.dat` (allocating),
//! then queried without allocation to find how long a name's public suffix is. It does not
//! fetch or update the list; the built-in copy is embedded at compile time.
//!
//! Rules are matched label-wise from the longest candidate suffix down, honouring wildcard
//! (`*.ck`) and exception (`!www.ck`) rules. Internationalised rules are stored in their
//! punycode (`xn--`) form, which is how they appear in DNS messages.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

/// The embedded list (MPL-2.0, see `crates/wire/data/README.md`).
const BUILTIN_TEXT: &str = include_str!("../../data/public_suffix_list.dat");

/// Which parts of the list file to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sections {
    /// Only the ICANN section (what pktvisor uses).
    Icann,
    /// The ICANN and the private (hosting/CDN platforms) sections.
    All,
}

const EXACT: u8 = 1;
const WILDCARD: u8 = 2;
const EXCEPTION: u8 = 4;
/// Some longer rule ends with this suffix, so the lookup must go on to longer candidates.
const INTERIOR: u8 = 8;

/// Small multiplicative hash for the rule table: keys are a fixed list and lookups only
/// probe, so flooding resistance is not needed, and SipHash costs more than the rest of the
/// lookup.
#[derive(Default, Clone, Copy)]
struct SuffixHasher(u64);

impl SuffixHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for SuffixHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let (words, tail) = bytes.as_chunks::<8>();
        for w in words {
            self.add(u64::from_le_bytes(*w));
        }
        let mut last = [0u8; 8];
        if let Some(dst) = last.get_mut(..tail.len()) {
            dst.copy_from_slice(tail);
        }
        self.add(u64::from_le_bytes(last) ^ (tail.len() as u64) << 59);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // Spread the high bits down: the table uses both ends of the hash.
        self.0 ^ (self.0 >> 29)
    }
}

type RuleMap = HashMap<Box<[u8]>, u8, BuildHasherDefault<SuffixHasher>>;

/// A parsed public suffix list.
#[derive(Debug, Clone, Default)]
pub struct PublicSuffixList {
    /// Key: rule without `*.`/`!` prefix, lower case, punycode (and every shorter suffix of
    /// it, flagged `INTERIOR`); value: `EXACT|WILDCARD|EXCEPTION|INTERIOR` bits.
    rules: RuleMap,
    count: usize,
}

impl PublicSuffixList {
    /// Parses the text of a `public_suffix_list.dat` file. Lines that are empty or comments are
    /// skipped; a rule is the first whitespace-delimited word of a line.
    pub fn parse(text: &str, sections: Sections) -> Self {
        let mut psl = PublicSuffixList::default();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with("//") {
                if sections == Sections::Icann && line.contains("===END ICANN DOMAINS===") {
                    break;
                }
                continue;
            }
            let Some(rule) = line.split_whitespace().next() else {
                continue;
            };
            let (kind, body) = if let Some(rest) = rule.strip_prefix('!') {
                (EXCEPTION, rest)
            } else if let Some(rest) = rule.strip_prefix("*.") {
                (WILDCARD, rest)
            } else {
                (EXACT, rule)
            };
            let Some(key) = to_ascii_key(body) else {
                continue;
            };
            // Every proper suffix of the rule leads to it: mark them so lookups keep going.
            for (i, _) in key.match_indices('.') {
                let parent = key.get(i + 1..).unwrap_or_default();
                *psl.rules.entry(parent.as_bytes().into()).or_insert(0) |= INTERIOR;
            }
            *psl.rules
                .entry(key.into_bytes().into_boxed_slice())
                .or_insert(0) |= kind;
            psl.count += 1;
        }
        psl
    }

    /// The embedded list, ICANN section only (matching pktvisor), parsed on first use.
    pub fn builtin() -> &'static PublicSuffixList {
        static LIST: OnceLock<PublicSuffixList> = OnceLock::new();
        LIST.get_or_init(|| PublicSuffixList::parse(BUILTIN_TEXT, Sections::Icann))
    }

    /// Number of rules loaded.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when no rule was loaded.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The public suffix of `name` (lower-case text, e.g. from
    /// [`NameBuf`](super::NameBuf)) as a slice of it, without leading or trailing dot, or
    /// `None` when no rule matches (unknown TLD). May be the whole name.
    pub fn public_suffix<'n>(&self, name: &'n [u8]) -> Option<&'n [u8]> {
        let body = name.strip_suffix(b".").unwrap_or(name);
        // Candidates grow from the last label leftwards; the longest match wins, an exception
        // wins outright, and the walk stops once no longer rule can match.
        let mut best = None;
        let mut after_wildcard = false;
        let mut end = body.len();
        // Each iteration adds one label, so this runs at most once per label.
        for _ in 0..=body.len() {
            let start = body
                .get(..end)?
                .iter()
                .rposition(|&b| b == b'.')
                .map_or(0, |d| d + 1);
            let cand = body.get(start..)?;
            if start == end {
                // Empty label (`a..com`): nothing longer can match.
                return best;
            }
            let flags = self.rules.get(cand).copied().unwrap_or(0);
            if flags & EXCEPTION != 0 {
                // An exception rule's public suffix is the rule minus its first label.
                return body.get(end.min(body.len()).saturating_add(1)..).or(best);
            }
            if flags & EXACT != 0 || after_wildcard {
                best = Some(cand);
            }
            after_wildcard = flags & WILDCARD != 0;
            if start == 0 || (flags & INTERIOR == 0 && !after_wildcard) {
                return best;
            }
            end = start - 1;
        }
        best
    }

    /// Length of the public suffix of `name` plus one for its leading dot (plus one more when
    /// `name` ends with a dot), ready to pass as `static_suffix_len` to
    /// [`aggregate_qname`](super::aggregate_qname); 0 when no rule matches. `name` must be
    /// lower case. When the whole name is a public suffix the result exceeds its length, which
    /// `aggregate_qname` treats as "no suffix".
    pub fn suffix_len(&self, name: &[u8]) -> usize {
        let trailing = usize::from(name.last() == Some(&b'.'));
        match self.public_suffix(name) {
            Some(s) => s.len() + 1 + trailing,
            None => 0,
        }
    }
}

/// Lower-cases a rule and converts non-ASCII labels to punycode; `None` for unusable rules.
fn to_ascii_key(rule: &str) -> Option<String> {
    if rule.is_empty() {
        return None;
    }
    if rule.is_ascii() {
        return Some(rule.to_ascii_lowercase());
    }
    let mut out = String::with_capacity(rule.len() * 2);
    for (i, label) in rule.split('.').enumerate() {
        if i > 0 {
            out.push('.');
        }
        if label.is_ascii() {
            out.push_str(&label.to_ascii_lowercase());
        } else {
            out.push_str("xn--");
            punycode_encode(&label.to_lowercase(), &mut out)?;
        }
    }
    Some(out)
}

/// RFC 3492 punycode encoding of one label (without the `xn--` prefix).
fn punycode_encode(label: &str, out: &mut String) -> Option<()> {
    const BASE: u32 = 36;
    const TMIN: u32 = 1;
    const TMAX: u32 = 26;
    let input: Vec<u32> = label.chars().map(u32::from).collect();
    let basic = input.iter().filter(|&&c| c < 0x80).count();
    for &c in &input {
        if c < 0x80 {
            out.push(char::from_u32(c)?);
        }
    }
    if basic > 0 {
        out.push('-');
    }
    let digit = |d: u32| -> Option<char> {
        match d {
            0..=25 => char::from_u32(u32::from(b'a') + d),
            26..=35 => char::from_u32(u32::from(b'0') + d - 26),
            _ => None,
        }
    };
    let mut n: u32 = 0x80;
    let mut delta: u32 = 0;
    let mut bias: u32 = 72;
    let mut handled = basic;
    while handled < input.len() {
        let m = input.iter().copied().filter(|&c| c >= n).min()?;
        let h1 = u32::try_from(handled + 1).ok()?;
        delta = delta.checked_add((m - n).checked_mul(h1)?)?;
        n = m;
        for &c in &input {
            if c < n {
                delta = delta.checked_add(1)?;
            }
            if c == n {
                let mut q = delta;
                let mut k = BASE;
                loop {
                    let t = if k <= bias {
                        TMIN
                    } else if k >= bias + TMAX {
                        TMAX
                    } else {
                        k - bias
                    };
                    if q < t {
                        break;
                    }
                    out.push(digit(t + (q - t) % (BASE - t))?);
                    q = (q - t) / (BASE - t);
                    k += BASE;
                }
                out.push(digit(q)?);
                bias = adapt(delta, u32::try_from(handled + 1).ok()?, handled == basic);
                delta = 0;
                handled += 1;
            }
        }
        delta = delta.checked_add(1)?;
        n = n.checked_add(1)?;
    }
    Some(())
}

fn adapt(delta: u32, num_points: u32, first: bool) -> u32 {
    const BASE: u32 = 36;
    const TMIN: u32 = 1;
    const TMAX: u32 = 26;
    const SKEW: u32 = 38;
    const DAMP: u32 = 700;
    let mut delta = if first { delta / DAMP } else { delta / 2 };
    delta += delta / num_points;
    let mut k = 0;
    while delta > ((BASE - TMIN) * TMAX) / 2 {
        delta /= BASE - TMIN;
        k += BASE;
    }
    k + ((BASE - TMIN + 1) * delta) / (delta + SKEW)
}

#[cfg(test)]
mod tests {
    use super::{PublicSuffixList, Sections, punycode_encode, to_ascii_key};
    use crate::dns::aggregate_qname;

    const SAMPLE: &str = "// ===BEGIN ICANN DOMAINS===\n\
        com\n\
        uk\n\
        co.uk\n\
        // ck : https://en.wikipedia.org/wiki/.ck\n\
        *.ck\n\
        !www.ck\n\
        jp\n\
        *.kawasaki.jp\n\
        !city.kawasaki.jp\n\
        公司.cn\n\
        cn\n\
        // ===END ICANN DOMAINS===\n\
        // ===BEGIN PRIVATE DOMAINS===\n\
        github.io\n\
        // ===END PRIVATE DOMAINS===\n";

    fn suffix<'a>(psl: &PublicSuffixList, name: &'a str) -> Option<&'a str> {
        psl.public_suffix(name.as_bytes())
            .map(|s| std::str::from_utf8(s).expect("ascii"))
    }

    #[test]
    fn exact_wildcard_and_exception_rules() {
        let psl = PublicSuffixList::parse(SAMPLE, Sections::Icann);
        assert_eq!(psl.len(), 10);
        assert_eq!(suffix(&psl, "www.google.co.uk"), Some("co.uk"));
        assert_eq!(suffix(&psl, "sirius.mwbsys.com"), Some("com"));
        assert_eq!(suffix(&psl, "foo.bar.ck"), Some("bar.ck"));
        assert_eq!(suffix(&psl, "www.ck"), Some("ck"));
        assert_eq!(suffix(&psl, "a.www.ck"), Some("ck"));
        assert_eq!(suffix(&psl, "x.city.kawasaki.jp"), Some("kawasaki.jp"));
        assert_eq!(
            suffix(&psl, "x.other.kawasaki.jp"),
            Some("other.kawasaki.jp")
        );
        assert_eq!(suffix(&psl, "co.uk"), Some("co.uk"));
        assert_eq!(suffix(&psl, "host.local"), None);
        assert_eq!(suffix(&psl, ""), None);
        assert_eq!(suffix(&psl, "a..com"), Some("com"));
        // Private section skipped for Icann.
        assert_eq!(suffix(&psl, "bob.github.io"), None);
        let all = PublicSuffixList::parse(SAMPLE, Sections::All);
        assert_eq!(all.len(), 11);
        assert_eq!(suffix(&all, "bob.github.io"), Some("github.io"));
    }

    #[test]
    fn suffix_len_includes_leading_and_trailing_dots() {
        let psl = PublicSuffixList::parse(SAMPLE, Sections::Icann);
        assert_eq!(psl.suffix_len(b"www.google.co.uk"), 6);
        assert_eq!(psl.suffix_len(b"www.google.co.uk."), 7);
        assert_eq!(psl.suffix_len(b"sirius.mwbsys.com"), 4);
        assert_eq!(psl.suffix_len(b"printer.local"), 0);
        assert_eq!(psl.suffix_len(b"co.uk"), 6);
        let (q2, q3) = aggregate_qname(b"www.google.co.uk.", psl.suffix_len(b"www.google.co.uk."));
        assert_eq!(q2, b".google.co.uk.");
        assert_eq!(q3, Some(&b"www.google.co.uk."[..]));
    }

    #[test]
    fn idn_rules_are_stored_as_punycode() {
        let psl = PublicSuffixList::parse(SAMPLE, Sections::Icann);
        assert_eq!(suffix(&psl, "shop.xn--55qx5d.cn"), Some("xn--55qx5d.cn"));
        assert_eq!(to_ascii_key("公司.cn").as_deref(), Some("xn--55qx5d.cn"));
        let mut s = String::new();
        punycode_encode("bücher", &mut s).expect("encodes");
        assert_eq!(s, "bcher-kva");
        s.clear();
        punycode_encode("ελ", &mut s).expect("encodes");
        assert_eq!(s, "qxam");
    }

    /// The textbook algorithm: try every candidate from the longest down.
    fn reference(psl: &PublicSuffixList, name: &[u8]) -> Option<Vec<u8>> {
        use super::{EXACT, EXCEPTION, WILDCARD};
        let body = name.strip_suffix(b".").unwrap_or(name);
        let mut start = 0;
        loop {
            let cand = &body[start..];
            if cand.is_empty() {
                return None;
            }
            let first_dot = cand.iter().position(|&b| b == b'.');
            let kind = psl.rules.get(cand).copied().unwrap_or(0);
            if kind & EXCEPTION != 0 {
                return first_dot.map(|d| cand[d + 1..].to_vec());
            }
            if kind & EXACT != 0 {
                return Some(cand.to_vec());
            }
            let dot = first_dot?;
            if psl.rules.get(&cand[dot + 1..]).copied().unwrap_or(0) & WILDCARD != 0 {
                return Some(cand.to_vec());
            }
            start += dot + 1;
        }
    }

    #[test]
    fn early_stop_agrees_with_the_textbook_algorithm_on_the_whole_list() {
        let psl = PublicSuffixList::builtin();
        let mut checked = 0;
        for key in psl.rules.keys() {
            let key = std::str::from_utf8(key).expect("ascii keys");
            for prefix in ["", "a.", "www.", "x.y.", "city."] {
                let name = format!("{prefix}{key}");
                let got = psl.public_suffix(name.as_bytes()).map(<[u8]>::to_vec);
                assert_eq!(got, reference(psl, name.as_bytes()), "{name}");
                checked += 1;
            }
        }
        assert!(checked > 30_000, "{checked}");
        let sample = PublicSuffixList::parse(SAMPLE, Sections::All);
        for name in [
            "a.www.ck",
            "www.ck",
            "b.c.kawasaki.jp",
            "city.kawasaki.jp",
            "a..uk",
            ".",
            "",
        ] {
            assert_eq!(
                sample.public_suffix(name.as_bytes()).map(<[u8]>::to_vec),
                reference(&sample, name.as_bytes()),
                "{name}"
            );
        }
    }

    #[test]
    fn builtin_list_matches_pktvisor_examples() {
        let psl = PublicSuffixList::builtin();
        assert!(psl.len() > 6000, "icann rules: {}", psl.len());
        let name = b"sirius.mwbsys.com";
        let len = psl.suffix_len(name);
        assert_eq!(len, 4);
        let (q2, q3) = aggregate_qname(name, len);
        assert_eq!(q2, b".mwbsys.com");
        assert_eq!(q3, Some(&name[..]));
        assert_eq!(psl.suffix_len(b"www.google.co.uk"), 6);
        assert_eq!(psl.suffix_len(b"www.ck"), 3);
        assert_eq!(psl.suffix_len(b"a.b.ck"), 5);
        // Private rules are not in the built-in (ICANN) view.
        assert_eq!(psl.suffix_len(b"bob.github.io"), 3);
        // Same instance each time.
        assert!(std::ptr::eq(psl, PublicSuffixList::builtin()));
    }
}
