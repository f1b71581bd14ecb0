//! Property tests of the DHCPv4 and DHCPv6 parsers: arbitrary, truncated and mutated messages
//! never panic, and what is parsed stays inside the input.

use proptest::prelude::*;
use wire::dhcp::{self, HEADER_LEN, MAGIC_COOKIE, v6};

/// A well-formed DHCPv4 REQUEST with a host name, then `extra` option bytes.
fn v4_message(xid: u32, extra: &[u8]) -> Vec<u8> {
    let mut m = vec![0u8; HEADER_LEN];
    m[0] = 1;
    m[1] = 1;
    m[2] = 6;
    m[4..8].copy_from_slice(&xid.to_be_bytes());
    m.extend_from_slice(&MAGIC_COOKIE);
    m.extend_from_slice(&[53, 1, 3, 12, 3, b'a', b'b', b'c']);
    m.extend_from_slice(extra);
    m
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        dhcp::fuzz_parse(&data);
    }

    #[test]
    fn v4_options_never_leave_the_message(xid in any::<u32>(), extra in proptest::collection::vec(any::<u8>(), 0..300)) {
        let b = v4_message(xid, &extra);
        let m = dhcp::parse(&b).expect("full header");
        prop_assert_eq!(m.xid, xid);
        // The message type precedes the random bytes, so it always survives them.
        prop_assert_eq!(m.msg_type, Some(dhcp::msg::REQUEST));
        prop_assert_eq!(m.hostname, Some(&b"abc"[..]));
        let range = b.as_ptr_range();
        for o in m.options() {
            let r = o.data.as_ptr_range();
            prop_assert!(r.start >= range.start && r.end <= range.end);
        }
    }

    #[test]
    fn v4_truncation_at_any_point_is_safe(cut in 0usize..260) {
        let b = v4_message(7, &[50, 4, 10, 0, 0, 1, 255]);
        let cut = cut.min(b.len());
        match dhcp::parse(&b[..cut]) {
            Ok(m) => {
                prop_assert!(cut >= HEADER_LEN);
                let _ = m.options().count();
            }
            Err(e) => {
                prop_assert!(cut < HEADER_LEN);
                prop_assert_eq!(e.reason(), "short bootp header");
            }
        }
    }

    #[test]
    fn v6_mutations_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200), ty in 0u8..16) {
        let mut b = vec![ty, 1, 2, 3];
        b.extend_from_slice(&data);
        if let Ok(m) = v6::parse(&b) {
            prop_assert_eq!(m.msg_type, ty);
            let _ = m.ia_addresses().count();
            let _ = m.innermost();
        }
    }
}
