//! A handler's ring of 60-second periods. The caller decides when a period ends (packet time in
//! offline runs, the wall clock live); the window only keeps the most recent `capacity` buckets.

use std::collections::VecDeque;

/// One period's summaries; merging must be associative and commutative.
pub trait Bucket: Default + Clone + Send {
    fn merge(&mut self, other: &Self);
}

/// Period metadata kept by the engine for every bucket sequence number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Period {
    /// First event time of the period, ns.
    pub start_ns: u64,
    /// End time (the event that closed it, or the last event of the input), ns; 0 while open.
    pub end_ns: u64,
}

impl Period {
    /// pktvisor's integer period length: end seconds minus start seconds.
    pub fn length_sec(&self) -> u64 {
        (self.end_ns / 1_000_000_000).saturating_sub(self.start_ns / 1_000_000_000)
    }
}

/// The most recent buckets of one handler, newest first, each tagged with its period sequence.
///
/// The live bucket is a field of its own, so [`Window::live`] — called by every handler on
/// every event — is a plain field access, not a ring-buffer lookup.
#[derive(Clone)]
pub struct Window<B> {
    live_seq: u32,
    live: B,
    /// Buckets before the live one, newest first (at most `capacity - 1`).
    older: VecDeque<(u32, B)>,
    capacity: usize,
}

impl<B: Bucket> Window<B> {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            live_seq: 0,
            live: B::default(),
            older: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// The live bucket.
    #[inline]
    pub fn live(&mut self) -> &mut B {
        &mut self.live
    }

    pub fn live_seq(&self) -> u32 {
        self.live_seq
    }

    /// Starts period `seq` if it is newer than the live one; returns true if it rotated.
    pub fn rotate_to(&mut self, seq: u32) -> bool {
        if seq <= self.live_seq {
            return false;
        }
        let done = std::mem::take(&mut self.live);
        self.older.push_front((self.live_seq, done));
        self.live_seq = seq;
        while self.older.len() + 1 > self.capacity {
            self.older.pop_back();
        }
        true
    }

    /// The bucket of period `seq`, if still kept.
    pub fn get(&self, seq: u32) -> Option<&B> {
        if seq == self.live_seq {
            return Some(&self.live);
        }
        self.older.iter().find(|(s, _)| *s == seq).map(|(_, b)| b)
    }

    /// The bucket just before the live one, if any (pktvisor's "bucket 1").
    pub fn previous(&self) -> Option<&B> {
        self.older.front().map(|(_, b)| b)
    }

    /// Merges another worker's window into this one, period by period.
    pub fn merge(&mut self, other: &Self) {
        // All buckets newest first, the live one included; the newest stays live.
        let mut all: Vec<(u32, B)> = Vec::with_capacity(self.older.len() + 1);
        all.push((self.live_seq, std::mem::take(&mut self.live)));
        all.extend(self.older.drain(..));
        for (seq, b) in other.iter() {
            if let Some((_, mine)) = all.iter_mut().find(|(s, _)| *s == seq) {
                mine.merge(b);
            } else {
                all.push((seq, b.clone()));
            }
        }
        all.sort_by_key(|b| std::cmp::Reverse(b.0));
        all.truncate(self.capacity);
        let mut it = all.into_iter();
        if let Some((seq, b)) = it.next() {
            self.live_seq = seq;
            self.live = b;
        }
        self.older.extend(it);
    }

    /// Every bucket kept with its sequence, newest first.
    fn iter(&self) -> impl Iterator<Item = (u32, &B)> + '_ {
        std::iter::once((self.live_seq, &self.live)).chain(self.older.iter().map(|(s, b)| (*s, b)))
    }

    /// Sequence numbers kept, newest first.
    pub fn seqs(&self) -> impl Iterator<Item = u32> + '_ {
        self.iter().map(|(s, _)| s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default, Debug, PartialEq)]
    struct Sum(u64);
    impl Bucket for Sum {
        fn merge(&mut self, other: &Self) {
            self.0 += other.0;
        }
    }

    #[test]
    fn rotation_keeps_capacity_and_merge_aligns_periods() {
        let mut a = Window::<Sum>::new(3);
        a.live().0 = 1;
        assert!(a.rotate_to(1));
        a.live().0 = 2;
        a.rotate_to(2);
        a.rotate_to(3);
        assert_eq!(a.seqs().collect::<Vec<_>>(), vec![3, 2, 1]);
        assert!(!a.rotate_to(3));
        let mut b = Window::<Sum>::new(3);
        b.rotate_to(2);
        b.live().0 = 10;
        a.merge(&b);
        assert_eq!(a.get(2), Some(&Sum(10)));
        assert_eq!(a.get(1), Some(&Sum(2)));
        assert_eq!(a.get(0), None);
    }

    /// The ring as a plain deque, newest first: the oracle of the property test.
    struct Oracle {
        buckets: VecDeque<(u32, Sum)>,
        capacity: usize,
    }

    impl Oracle {
        fn new(capacity: usize) -> Self {
            let mut buckets = VecDeque::new();
            buckets.push_front((0, Sum::default()));
            Self {
                buckets,
                capacity: capacity.max(1),
            }
        }
        fn live(&mut self) -> &mut Sum {
            &mut self.buckets.front_mut().unwrap().1
        }
        fn rotate_to(&mut self, seq: u32) -> bool {
            if seq <= self.buckets.front().unwrap().0 {
                return false;
            }
            self.buckets.push_front((seq, Sum::default()));
            self.buckets.truncate(self.capacity);
            true
        }
        fn merge(&mut self, other: &Self) {
            for (seq, b) in other.buckets.iter() {
                if let Some((_, mine)) = self.buckets.iter_mut().find(|(s, _)| s == seq) {
                    mine.0 += b.0;
                } else {
                    self.buckets.push_back((*seq, b.clone()));
                }
            }
            self.buckets
                .make_contiguous()
                .sort_by_key(|b| std::cmp::Reverse(b.0));
            self.buckets.truncate(self.capacity);
        }
        fn contents(&self) -> Vec<(u32, u64)> {
            self.buckets.iter().map(|(s, b)| (*s, b.0)).collect()
        }
    }

    fn contents(w: &Window<Sum>) -> Vec<(u32, u64)> {
        w.seqs().map(|s| (s, w.get(s).unwrap().0)).collect()
    }

    /// Rotations (by 0..3 periods, 0 = none) and additions, as one window and its oracle see them.
    fn run(ops: &[(u8, u8)], capacity: usize) -> (Window<Sum>, Oracle) {
        let (mut w, mut o) = (Window::<Sum>::new(capacity), Oracle::new(capacity));
        let mut seq = 0u32;
        for &(step, add) in ops {
            seq += u32::from(step % 3);
            assert_eq!(w.rotate_to(seq), o.rotate_to(seq));
            w.live().0 += u64::from(add);
            o.live().0 += u64::from(add);
        }
        (w, o)
    }

    proptest::proptest! {
        #[test]
        fn live_field_matches_a_plain_ring(
            a in proptest::collection::vec((0u8..6, 0u8..10), 0..40),
            b in proptest::collection::vec((0u8..6, 0u8..10), 0..40),
            capacity in 0usize..6,
        ) {
            let (mut wa, mut oa) = run(&a, capacity);
            let (wb, ob) = run(&b, capacity);
            proptest::prop_assert_eq!(contents(&wa), oa.contents());
            proptest::prop_assert_eq!(
                wa.previous().map(|b| b.0),
                oa.buckets.get(1).map(|b| b.1.0)
            );
            wa.merge(&wb);
            oa.merge(&ob);
            proptest::prop_assert_eq!(contents(&wa), oa.contents());
            proptest::prop_assert_eq!(wa.live_seq(), oa.buckets[0].0);
            proptest::prop_assert_eq!(wa.live().0, oa.live().0);
        }
    }

    #[test]
    fn period_length_is_whole_seconds() {
        let p = Period {
            start_ns: 1_567_706_414_599_964_000,
            end_ns: 1_567_706_420_602_866_000,
        };
        assert_eq!(p.length_sec(), 6);
    }
}
