//! Differential check of the IPv4 defragmenter against etherparse's `IpDefragPool`: both get
//! the same wire fragments in the same order and must agree on the reassembled payload; the
//! rebuilt header must also re-parse as a valid, unfragmented IPv4 header.

use core::net::{IpAddr, Ipv4Addr};

use etherparse::defrag::IpDefragPool;
use etherparse::{IpFragOffset, IpNumber, Ipv4Header, Ipv4HeaderSlice, SlicedPacket};
use flow::defrag::{DefragConfig, Defragmenter, FragKey};
use proptest::prelude::*;

const SRC: [u8; 4] = [192, 0, 2, 10];
const DST: [u8; 4] = [203, 0, 113, 7];

/// Builds the wire bytes of one IPv4 fragment with etherparse.
fn wire_fragment(id: u16, offset: usize, more: bool, bytes: &[u8]) -> Vec<u8> {
    let mut h = Ipv4Header::new(bytes.len() as u16, 64, IpNumber(253), SRC, DST).unwrap();
    h.identification = id;
    h.more_fragments = more;
    h.fragment_offset = IpFragOffset::try_new((offset / 8) as u16).unwrap();
    h.header_checksum = h.calc_header_checksum();
    let mut v = h.to_bytes().to_vec();
    v.extend_from_slice(bytes);
    v
}

fn check(payload: &[u8], cuts: &[usize], order: &[usize]) -> Result<(), TestCaseError> {
    let mut frags = Vec::new();
    let mut start = 0;
    for &c in cuts.iter().chain(core::iter::once(&payload.len())) {
        if c > start {
            frags.push((start, c < payload.len(), &payload[start..c]));
            start = c;
        }
    }
    let mut pool: IpDefragPool<(), ()> = IpDefragPool::new();
    let mut ours = Defragmenter::new(DefragConfig::default());
    let key = FragKey {
        src: IpAddr::V4(Ipv4Addr::from(SRC)),
        dst: IpAddr::V4(Ipv4Addr::from(DST)),
        id: 4242,
        // 253 (experimentation): etherparse then does not try to parse a transport header.
        proto: 253,
        vlan: 0,
    };
    let mut theirs_out = None;
    let mut ours_out = None;
    for &i in order {
        let (off, more, bytes) = frags[i % frags.len()];
        let wire = wire_fragment(4242, off, more, bytes);
        let slice = SlicedPacket::from_ip(&wire).unwrap();
        if let Ok(Some(p)) = pool.process_sliced_packet(&slice, (), ()) {
            theirs_out.get_or_insert(p.payload);
        }
        if let Some(d) = ours.insert(key, &wire[..20], off as u16, more, bytes, 0) {
            ours_out.get_or_insert(d.to_vec());
        }
    }
    match (theirs_out, ours_out) {
        (Some(t), Some(o)) => {
            prop_assert_eq!(&o[20..], &t[..]);
            prop_assert_eq!(&t[..], payload);
            let h = Ipv4HeaderSlice::from_slice(&o).unwrap().to_header();
            prop_assert_eq!(usize::from(h.total_len), o.len());
            prop_assert!(!h.more_fragments);
            prop_assert_eq!(h.fragment_offset.value(), 0);
            prop_assert_eq!(h.header_checksum, h.calc_header_checksum());
            prop_assert_eq!(h.identification, 4242);
        }
        (None, None) => {}
        (t, o) => {
            prop_assert!(
                false,
                "disagreement: etherparse {:?} ours {:?}",
                t.is_some(),
                o.is_some()
            );
        }
    }
    Ok(())
}

#[test]
fn three_fragments_reversed_agree() {
    let payload: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    check(&payload, &[1480, 2960], &[2, 1, 0]).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_fragmentation_agrees(
        payload in proptest::collection::vec(any::<u8>(), 9..3000),
        raw_cuts in proptest::collection::vec(1usize..375, 0..8),
        order in proptest::collection::vec(0usize..16, 1..24),
    ) {
        let mut cuts: Vec<usize> = raw_cuts.iter().map(|c| c * 8).filter(|&c| c < payload.len()).collect();
        cuts.sort_unstable();
        cuts.dedup();
        // A single fragment is not a fragmented packet (etherparse passes it over): cut once.
        if cuts.is_empty() {
            cuts.push((payload.len() / 16 * 8).max(8));
        }
        // Always deliver every fragment at least once, then the random extra order.
        let n = cuts.len() + 1;
        let full: Vec<usize> = order.iter().copied().chain(0..n).collect();
        check(&payload, &cuts, &full)?;
    }
}
