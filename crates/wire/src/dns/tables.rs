//! Name tables for DNS RCODEs and QTYPEs (pktvisor's mnemonics), both directions. Pure
//! lookups; unknown values have no name and callers print the number.

/// RCODE mnemonics as pktvisor prints them (note `SRVFAIL`, not `SERVFAIL`).
const RCODES: [(u16, &str); 12] = [
    (0, "NOERROR"),
    (1, "FORMERR"),
    (2, "SRVFAIL"),
    (3, "NXDOMAIN"),
    (4, "NOTIMP"),
    (5, "REFUSED"),
    (6, "YXDOMAIN"),
    (7, "YXRRSET"),
    (8, "NXRRSET"),
    (9, "NOTAUTH"),
    (10, "NOTZONE"),
    (11, "DSOTYPENI"),
];

/// QTYPE mnemonics (IANA "Resource Record (RR) TYPEs"), the set pktvisor knows plus a few
/// newer ones. 255 is named `ANY` (pktvisor prints `*`; both are accepted by
/// [`qtype_from_name`]).
const QTYPES: [(u16, &str); 92] = [
    (1, "A"),
    (2, "NS"),
    (3, "MD"),
    (4, "MF"),
    (5, "CNAME"),
    (6, "SOA"),
    (7, "MB"),
    (8, "MG"),
    (9, "MR"),
    (10, "NULL"),
    (11, "WKS"),
    (12, "PTR"),
    (13, "HINFO"),
    (14, "MINFO"),
    (15, "MX"),
    (16, "TXT"),
    (17, "RP"),
    (18, "AFSDB"),
    (19, "X25"),
    (20, "ISDN"),
    (21, "RT"),
    (22, "NSAP"),
    (23, "NSAP-PTR"),
    (24, "SIG"),
    (25, "KEY"),
    (26, "PX"),
    (27, "GPOS"),
    (28, "AAAA"),
    (29, "LOC"),
    (30, "NXT"),
    (31, "EID"),
    (32, "NIMLOC"),
    (33, "SRV"),
    (34, "ATMA"),
    (35, "NAPTR"),
    (36, "KX"),
    (37, "CERT"),
    (38, "A6"),
    (39, "DNAME"),
    (40, "SINK"),
    (41, "OPT"),
    (42, "APL"),
    (43, "DS"),
    (44, "SSHFP"),
    (45, "IPSECKEY"),
    (46, "RRSIG"),
    (47, "NSEC"),
    (48, "DNSKEY"),
    (49, "DHCID"),
    (50, "NSEC3"),
    (51, "NSEC3PARAM"),
    (52, "TLSA"),
    (53, "SMIMEA"),
    (55, "HIP"),
    (56, "NINFO"),
    (57, "RKEY"),
    (58, "TALINK"),
    (59, "CDS"),
    (60, "CDNSKEY"),
    (61, "OPENPGPKEY"),
    (62, "CSYNC"),
    (63, "ZONEMD"),
    (64, "SVCB"),
    (65, "HTTPS"),
    (66, "DSYNC"),
    (99, "SPF"),
    (100, "UINFO"),
    (101, "UID"),
    (102, "GID"),
    (103, "UNSPEC"),
    (104, "NID"),
    (105, "L32"),
    (106, "L64"),
    (107, "LP"),
    (108, "EUI48"),
    (109, "EUI64"),
    (249, "TKEY"),
    (250, "TSIG"),
    (251, "IXFR"),
    (252, "AXFR"),
    (253, "MAILB"),
    (254, "MAILA"),
    (255, "ANY"),
    (256, "URI"),
    (257, "CAA"),
    (258, "AVC"),
    (259, "DOA"),
    (260, "AMTRELAY"),
    (261, "RESINFO"),
    (262, "WALLET"),
    (32768, "TA"),
    (32769, "DLV"),
];

/// pktvisor's name for an RCODE (0..=11), `None` for others.
pub fn rcode_name(rcode: u16) -> Option<&'static str> {
    RCODES.get(usize::from(rcode)).map(|&(_, name)| name)
}

/// RCODE for a mnemonic, case-insensitive; also accepts the IANA spelling `SERVFAIL`.
pub fn rcode_from_name(s: &str) -> Option<u16> {
    if s.eq_ignore_ascii_case("SERVFAIL") {
        return Some(2);
    }
    RCODES
        .iter()
        .find(|(_, name)| name.eq_ignore_ascii_case(s))
        .map(|&(code, _)| code)
}

/// Mnemonic for a QTYPE, `None` when the table has no name for it.
pub fn qtype_name(qtype: u16) -> Option<&'static str> {
    QTYPES
        .binary_search_by_key(&qtype, |&(code, _)| code)
        .ok()
        .and_then(|i| QTYPES.get(i))
        .map(|&(_, name)| name)
}

/// QTYPE for a mnemonic, case-insensitive (`*` is accepted for ANY).
pub fn qtype_from_name(s: &str) -> Option<u16> {
    if s == "*" {
        return Some(255);
    }
    QTYPES
        .iter()
        .find(|(_, name)| name.eq_ignore_ascii_case(s))
        .map(|&(code, _)| code)
}

#[cfg(test)]
mod tests {
    use super::{QTYPES, RCODES, qtype_from_name, qtype_name, rcode_from_name, rcode_name};

    #[test]
    fn rcode_table_matches_pktvisor() {
        assert_eq!(rcode_name(0), Some("NOERROR"));
        assert_eq!(rcode_name(2), Some("SRVFAIL"));
        assert_eq!(rcode_name(3), Some("NXDOMAIN"));
        assert_eq!(rcode_name(5), Some("REFUSED"));
        assert_eq!(rcode_name(11), Some("DSOTYPENI"));
        assert_eq!(rcode_name(12), None);
        assert_eq!(rcode_name(16), None);
        assert_eq!(rcode_from_name("nxdomain"), Some(3));
        assert_eq!(rcode_from_name("Refused"), Some(5));
        assert_eq!(rcode_from_name("servfail"), Some(2));
        assert_eq!(rcode_from_name("srvfail"), Some(2));
        assert_eq!(rcode_from_name("5"), None);
        assert_eq!(rcode_from_name("bogus"), None);
        for (i, &(code, name)) in RCODES.iter().enumerate() {
            assert_eq!(usize::from(code), i);
            assert_eq!(rcode_from_name(name), Some(code));
        }
    }

    #[test]
    fn qtype_table_round_trips() {
        assert!(QTYPES.windows(2).all(|w| w[0].0 < w[1].0), "table sorted");
        for &(code, name) in &QTYPES {
            assert_eq!(qtype_name(code), Some(name));
            assert_eq!(qtype_from_name(name), Some(code));
            assert_eq!(qtype_from_name(&name.to_ascii_lowercase()), Some(code));
        }
        assert_eq!(qtype_name(1), Some("A"));
        assert_eq!(qtype_name(28), Some("AAAA"));
        assert_eq!(qtype_name(65), Some("HTTPS"));
        assert_eq!(qtype_name(255), Some("ANY"));
        assert_eq!(qtype_name(0), None);
        assert_eq!(qtype_name(270), None);
        assert_eq!(qtype_from_name("TxT"), Some(16));
        assert_eq!(qtype_from_name("*"), Some(255));
        assert_eq!(qtype_from_name("any"), Some(255));
        assert_eq!(qtype_from_name("nope"), None);
    }
}
