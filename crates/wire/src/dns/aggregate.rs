//! pktvisor's qname aggregation (`aggregateDomain`): the qname2/qname3 keys of the top-name
//! lists, as suffix slices of the name. It does not lower-case or validate names.

/// Splits a name into pktvisor's (qname2, qname3) aggregation keys, both suffixes of `name`.
///
/// qname2 is the last two labels with their leading dot (`biz.foo.bar.com` → `.bar.com`),
/// qname3 the last three (`.foo.bar.com`); when there is no third label qname3 is the whole
/// name (`foo.bar.com` → `foo.bar.com`). Names shorter than 5 bytes, or without a second
/// dot, give qname2 = the whole name and no qname3. A trailing dot is kept and ignored when
/// counting labels. `static_suffix_len` (0 for none) is the length of a suffix that counts as
/// a single label — a matched `only_qname_suffix` entry or public suffix including its leading
/// dot — and is ignored unless shorter than the name.
///
/// This reproduces pktvisor's algorithm byte for byte, including its quirks (a name whose
/// only dot is its first byte gives qname3 = the whole name).
pub fn aggregate_qname(name: &[u8], static_suffix_len: usize) -> (&[u8], Option<&[u8]>) {
    let n = name.len();
    // The smallest name ever aggregated is a.b.c.
    if n < 5 {
        return (name, None);
    }
    let end_dot = if static_suffix_len > 0 && n > static_suffix_len {
        Some(n - static_suffix_len)
    } else if name.last() == Some(&b'.') {
        Some(n - 2)
    } else {
        None
    };
    let mut qname2 = name;
    let mut qname3 = Some(name);
    if let Some(first_dot) = rfind_dot(name, end_dot)
        && first_dot > 0
    {
        match rfind_dot(name, Some(first_dot - 1)) {
            Some(second_dot) => {
                qname2 = name.get(second_dot..).unwrap_or(name);
                if second_dot > 0
                    && let Some(third_dot) = rfind_dot(name, Some(second_dot - 1))
                {
                    qname3 = Some(name.get(third_dot..).unwrap_or(name));
                }
            }
            None => qname3 = None,
        }
    }
    (qname2, qname3)
}

/// [`aggregate_qname`] for text: both keys are suffixes of `name` starting at a `.` (or the
/// whole name), so slicing there always lands on a character boundary.
pub fn aggregate_qname_str(name: &str, static_suffix_len: usize) -> (&str, Option<&str>) {
    let (q2, q3) = aggregate_qname(name.as_bytes(), static_suffix_len);
    let suffix = |part: &[u8]| name.get(name.len() - part.len()..).unwrap_or(name);
    (suffix(q2), q3.map(suffix))
}

/// Position of the last `.` at or before `upto` (anywhere when `None`), like C++ `rfind`.
///
/// Scans backwards eight bytes at a time: the labels before the dots are often long random
/// strings, and a byte loop spent more on them than the rest of the aggregation.
#[inline]
fn rfind_dot(name: &[u8], upto: Option<usize>) -> Option<usize> {
    const L: u64 = 0x0101_0101_0101_0101;
    const H: u64 = 0x8080_8080_8080_8080;
    let mut end = upto.map_or(name.len(), |p| p.saturating_add(1).min(name.len()));
    // Each step moves `end` down by eight, so the loop is bounded by the name length.
    while end >= 8 {
        let word = name.get(end - 8..end)?.first_chunk::<8>()?;
        let x = u64::from_le_bytes(*word) ^ (u64::from(b'.') * L);
        // High bit of each byte that is zero (a dot), exact per byte: adding 0x7F to the low
        // seven bits never carries into the next byte, unlike the `(x - L) & !x` trick whose
        // borrows could mark bytes above a real match.
        let zero = !(((x & !H) + 0x7F * L) | x) & H;
        if zero != 0 {
            // The highest marked byte is the last dot of the word (little-endian).
            let byte = (63 - zero.leading_zeros() as usize) / 8;
            return Some(end - 8 + byte);
        }
        end -= 8;
    }
    name.get(..end)?.iter().rposition(|&b| b == b'.')
}

#[cfg(test)]
mod tests {
    use super::{aggregate_qname, aggregate_qname_str};

    fn agg(name: &str, suffix: &str) -> (String, Option<String>) {
        let (q2, q3) = aggregate_qname(name.as_bytes(), suffix.len());
        (
            String::from_utf8(q2.to_vec()).expect("ascii"),
            q3.map(|q| String::from_utf8(q.to_vec()).expect("ascii")),
        )
    }

    fn check(name: &str, suffix: &str, q2: &str, q3: Option<&str>) {
        assert_eq!(
            agg(name, suffix),
            (q2.to_string(), q3.map(str::to_string)),
            "name {name:?} suffix {suffix:?}"
        );
    }

    #[test]
    fn pktvisor_cases_without_suffix() {
        check("biz.foo.bar.com", "", ".bar.com", Some(".foo.bar.com"));
        check("a.com", "", "a.com", None);
        check("abcdefg.com.", "", "abcdefg.com.", None);
        check("foo.bar.com", "", ".bar.com", Some("foo.bar.com"));
        check(".", "", ".", None);
        check("..", "", "..", None);
        check("a", "", "a", None);
        check("a.", "", "a.", None);
        check("foo.bar.com.", "", ".bar.com.", Some("foo.bar.com."));
        check(".foo.bar.com", "", ".bar.com", Some(".foo.bar.com"));
        check("a.b.c", "", ".b.c", Some("a.b.c"));
        check(".b.c", "", ".b.c", None);
    }

    #[test]
    fn pktvisor_cases_with_static_suffix() {
        check(
            "biz.foo.bar.com",
            ".bar.com",
            ".foo.bar.com",
            Some("biz.foo.bar.com"),
        );
        check(
            "biz.foo.bar.com",
            "bar.com",
            ".foo.bar.com",
            Some("biz.foo.bar.com"),
        );
        check("biz.foo.bar.com", "foo.bar.com", "biz.foo.bar.com", None);
        check(
            "foo.bar.com.",
            "biz.foo.bar.com",
            ".bar.com.",
            Some("foo.bar.com."),
        );
        check(
            "www.google.co.uk",
            ".co.uk",
            ".google.co.uk",
            Some("www.google.co.uk"),
        );
        check("www.google.co.uk", "google.co.uk", "www.google.co.uk", None);
    }

    #[test]
    fn suffix_as_long_as_the_name_is_ignored() {
        // pktvisor only applies a static suffix shorter than the name, so a name equal to its
        // suffix aggregates as if there were none (a 3-label name still yields qname3).
        check(
            "foo.bar.com",
            "foo.bar.com",
            ".bar.com",
            Some("foo.bar.com"),
        );
        check("google.com", "google.com", "google.com", None);
        // With only_qname_suffix ["google.com"] pktvisor's top_qname3 stays empty.
        check("play.google.com", "google.com", "play.google.com", None);
        check(
            "nonexistent.google.com",
            "google.com",
            "nonexistent.google.com",
            None,
        );
    }

    #[test]
    fn suffix_covering_the_whole_tail_keeps_the_whole_name() {
        // The suffix's leading dot is the first dot of the name: no second label exists.
        check("foo.bar.com", ".bar.com", "foo.bar.com", None);
        check(
            "sirius.mwbsys.com",
            ".com",
            ".mwbsys.com",
            Some("sirius.mwbsys.com"),
        );
    }

    #[test]
    fn quirks_are_reproduced() {
        // No dot at all: both keys are the whole name (pktvisor counts it in qname3 too).
        check("abcdef", "", "abcdef", Some("abcdef"));
        // Dot only at position 0.
        check(".abcdef", "", ".abcdef", Some(".abcdef"));
        // Two labels with a leading dot: qname3 falls back to the whole name.
        check(".bar.com", "", ".bar.com", Some(".bar.com"));
        // Suffix longer than the name is ignored.
        check("x.y.z", "abcdefgh", ".y.z", Some("x.y.z"));
    }

    #[test]
    fn str_version_agrees() {
        assert_eq!(
            aggregate_qname_str("biz.foo.bar.com", 0),
            (".bar.com", Some(".foo.bar.com"))
        );
        assert_eq!(
            aggregate_qname_str("www.google.co.uk", 6),
            (".google.co.uk", Some("www.google.co.uk"))
        );
        assert_eq!(aggregate_qname_str("a.com", 0), ("a.com", None));
        assert_eq!(aggregate_qname_str("", 0), ("", None));
    }

    #[test]
    fn results_are_suffixes_of_the_input() {
        let name = b"deep.www.example.co.uk";
        let (q2, q3) = aggregate_qname(name, 6);
        assert_eq!(q2, b".example.co.uk");
        assert_eq!(q3, Some(&b".www.example.co.uk"[..]));
        assert!(name.ends_with(q2));
        assert_eq!(
            q2.as_ptr() as usize + q2.len(),
            name.as_ptr() as usize + name.len()
        );
    }

    /// `aggregate_qname` written with the byte-at-a-time search only: the reference for the
    /// word search.
    fn aggregate_with_byte_search(name: &[u8], suffix: usize) -> (&[u8], Option<&[u8]>) {
        let n = name.len();
        if n < 5 {
            return (name, None);
        }
        let end_dot = if suffix > 0 && n > suffix {
            Some(n - suffix)
        } else if name.last() == Some(&b'.') {
            Some(n - 2)
        } else {
            None
        };
        let (mut q2, mut q3) = (name, Some(name));
        if let Some(first) = rfind_dot_bytes(name, end_dot)
            && first > 0
        {
            match rfind_dot_bytes(name, Some(first - 1)) {
                Some(second) => {
                    q2 = &name[second..];
                    if second > 0
                        && let Some(third) = rfind_dot_bytes(name, Some(second - 1))
                    {
                        q3 = Some(&name[third..]);
                    }
                }
                None => q3 = None,
            }
        }
        (q2, q3)
    }

    /// The byte-at-a-time search the word version replaced.
    fn rfind_dot_bytes(name: &[u8], upto: Option<usize>) -> Option<usize> {
        let end = upto.map_or(name.len(), |p| p.saturating_add(1).min(name.len()));
        name.get(..end)?.iter().rposition(|&b| b == b'.')
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn aggregation_matches_the_byte_search(
            labels in proptest::collection::vec(
                proptest::collection::vec(
                    proptest::prop_oneof![
                        8 => proptest::prelude::Just(b'a'),
                        1 => proptest::prelude::Just(b'.'),
                    ],
                    0..40,
                ),
                0..10,
            ),
            trailing_dot in proptest::prelude::any::<bool>(),
            suffix in 0usize..120,
        ) {
            let mut name = labels.join(&b'.');
            if trailing_dot {
                name.push(b'.');
            }
            proptest::prop_assert_eq!(
                aggregate_qname(&name, suffix),
                aggregate_with_byte_search(&name, suffix)
            );
        }

        #[test]
        fn word_rfind_is_the_byte_rfind(
            name in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::Just(b'.'),
                    proptest::prelude::Just(0x2Eu8 ^ 0x80),
                    proptest::prelude::Just(0u8),
                    proptest::prelude::Just(b'/'),
                    proptest::prelude::Just(b'-'),
                    proptest::prelude::any::<u8>(),
                ],
                0..80,
            ),
            upto in proptest::option::of(0usize..90),
        ) {
            proptest::prop_assert_eq!(
                super::rfind_dot(&name, upto),
                rfind_dot_bytes(&name, upto)
            );
        }
    }
}
