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
#[derive(Clone)]
pub struct Window<B> {
    buckets: VecDeque<(u32, B)>,
    capacity: usize,
}

impl<B: Bucket> Window<B> {
    pub fn new(capacity: usize) -> Self {
        let mut buckets = VecDeque::with_capacity(capacity.max(1) + 1);
        buckets.push_front((0, B::default()));
        Self {
            buckets,
            capacity: capacity.max(1),
        }
    }

    /// The live bucket.
    #[inline]
    pub fn live(&mut self) -> &mut B {
        // Invariant: the deque always holds at least the live bucket.
        &mut self
            .buckets
            .front_mut()
            .expect("window always has a live bucket")
            .1
    }

    pub fn live_seq(&self) -> u32 {
        self.buckets.front().map_or(0, |(s, _)| *s)
    }

    /// Starts period `seq` if it is newer than the live one; returns true if it rotated.
    pub fn rotate_to(&mut self, seq: u32) -> bool {
        if seq <= self.live_seq() {
            return false;
        }
        self.buckets.push_front((seq, B::default()));
        while self.buckets.len() > self.capacity {
            self.buckets.pop_back();
        }
        true
    }

    /// The bucket of period `seq`, if still kept.
    pub fn get(&self, seq: u32) -> Option<&B> {
        self.buckets.iter().find(|(s, _)| *s == seq).map(|(_, b)| b)
    }

    /// The bucket just before the live one, if any (pktvisor's "bucket 1").
    pub fn previous(&self) -> Option<&B> {
        self.buckets.get(1).map(|(_, b)| b)
    }

    /// Merges another worker's window into this one, period by period.
    pub fn merge(&mut self, other: &Self) {
        for (seq, b) in other.buckets.iter() {
            if let Some((_, mine)) = self.buckets.iter_mut().find(|(s, _)| s == seq) {
                mine.merge(b);
            } else {
                self.buckets.push_back((*seq, b.clone()));
            }
        }
        self.buckets
            .make_contiguous()
            .sort_by_key(|b| std::cmp::Reverse(b.0));
        while self.buckets.len() > self.capacity {
            self.buckets.pop_back();
        }
    }

    /// Sequence numbers kept, newest first.
    pub fn seqs(&self) -> impl Iterator<Item = u32> + '_ {
        self.buckets.iter().map(|(s, _)| *s)
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

    #[test]
    fn period_length_is_whole_seconds() {
        let p = Period {
            start_ns: 1_567_706_414_599_964_000,
            end_ns: 1_567_706_420_602_866_000,
        };
        assert_eq!(p.length_sec(), 6);
    }
}
