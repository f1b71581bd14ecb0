//! Per-second event counts on packet time, mergeable across workers; it yields the
//! p50/p90/p95/p99 of events per second, it is not a wall-clock rate meter.
//!
//! Several workers each see a share of the packets of the same second, so the per-second
//! counts are kept (not a sketch of them) and **summed** per absolute second on merge before
//! any quantile is taken. Quantiles are exact (inclusive-rank rule, as
//! [`crate::quantiles::Quantiles`]) over every second from the first to the last one seen,
//! seconds without events counting as 0.
//!
//! # Span cap
//!
//! At most `max_span` consecutive seconds (default [`MAX_SPAN`] = 86 400, one day) are kept:
//! the window is always the `max_span` seconds ending at the latest second seen. When a
//! later second arrives the oldest seconds slide out; events older than the window are not
//! stored and their count is reported by [`Rate::dropped`]. The window depends only on the
//! set of events (not their order), so merge stays exactly associative and commutative.
//!
//! The last second may still be in progress when the rate is read; callers wanting only
//! complete seconds should read the rate after the window's end.

use std::collections::VecDeque;

use crate::quantiles::RANKS;

/// Default cap on the number of seconds kept (one day).
pub const MAX_SPAN: u64 = 86_400;

/// Per-second counts over a bounded span of absolute seconds; exact, mergeable.
///
/// Error bound: none — quantiles of per-second counts are exact for the kept span (see the
/// module documentation for what happens beyond [`MAX_SPAN`] seconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Absolute second of `counts[0]`.
    first: u64,
    /// Absolute second of the last count (`first + len - 1`), kept so the per-event fast
    /// path is one comparison; 0 while empty (and not used then).
    last: u64,
    counts: VecDeque<u64>,
    dropped: u64,
    max_span: u64,
}

impl Default for Rate {
    fn default() -> Self {
        Self::new()
    }
}

impl Rate {
    /// Creates an empty rate keeping at most [`MAX_SPAN`] seconds.
    #[must_use]
    pub fn new() -> Self {
        Self::with_max_span(MAX_SPAN)
    }

    /// Creates an empty rate keeping at most `max_span` seconds (at least 1).
    #[must_use]
    pub fn with_max_span(max_span: u64) -> Self {
        Rate {
            first: 0,
            last: 0,
            counts: VecDeque::new(),
            dropped: 0,
            max_span: max_span.max(1),
        }
    }

    /// Adds `n` events at absolute second `second`. `n == 0` still marks the second as seen
    /// (extending the span), which lets a caller record idle seconds.
    #[inline]
    pub fn add(&mut self, second: u64, n: u64) {
        // Fast path: almost every event falls in the latest second seen (an empty rate has
        // no back and takes the slow path whatever `last` says).
        if second == self.last
            && let Some(c) = self.counts.back_mut()
        {
            *c = c.saturating_add(n);
            return;
        }
        self.add_slow(second, n);
    }

    /// Every case but "the latest second again": kept out of line so `add` inlines small.
    #[inline(never)]
    fn add_slow(&mut self, second: u64, n: u64) {
        self.add_general(second, n);
        let len = self.counts.len() as u64;
        if len > 0 {
            self.last = self.first.saturating_add(len - 1);
        }
    }

    /// Adds `n` at `second` in any position; `last` is brought up to date by the caller.
    fn add_general(&mut self, second: u64, n: u64) {
        let len = self.counts.len() as u64;
        if len == 0 {
            self.first = second;
            self.counts.push_back(n);
            return;
        }
        let last = self.first.saturating_add(len - 1);
        if second > last {
            let window_start = second.saturating_sub(self.max_span - 1);
            if window_start > last {
                // Every kept second slides out; the span now starts at the window start
                // because earlier events exist (the kept span is
                // [max(earliest event, latest − span + 1), latest] whatever the order).
                self.dropped = self.dropped.saturating_add(self.total());
                self.counts.clear();
                self.first = window_start;
                // second − window_start < max_span: bounded by the span cap.
                for _ in window_start..second {
                    self.counts.push_back(0);
                }
                self.counts.push_back(n);
                return;
            }
            while self.first < window_start {
                match self.counts.pop_front() {
                    Some(c) => self.dropped = self.dropped.saturating_add(c),
                    None => break,
                }
                self.first += 1;
            }
            // second − last ≤ max_span here, so this loop is bounded by the span cap.
            for _ in last + 1..second {
                self.counts.push_back(0);
            }
            self.counts.push_back(n);
        } else if second >= self.first {
            if let Some(c) = self.counts.get_mut((second - self.first) as usize) {
                *c = c.saturating_add(n);
            }
        } else {
            let window_start = last.saturating_sub(self.max_span - 1);
            if second < window_start {
                // Too old to keep, but it proves the span reaches back to the window start.
                self.dropped = self.dropped.saturating_add(n);
                while self.first > window_start {
                    self.counts.push_front(0);
                    self.first -= 1;
                }
                return;
            }
            for _ in second + 1..self.first {
                self.counts.push_front(0);
            }
            self.counts.push_front(n);
            self.first = second;
        }
    }

    /// Adds every second of `other` (element-wise sum per absolute second; span = union,
    /// capped as documented). Exact.
    pub fn merge(&mut self, other: &Self) {
        for (i, &c) in other.counts.iter().enumerate() {
            self.add(other.first.saturating_add(i as u64), c);
        }
        self.dropped = self.dropped.saturating_add(other.dropped);
    }

    /// True when no second was ever recorded.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Per-second count at inclusive rank `rank` ∈ [0, 1] over the kept span (zeros
    /// included); `None` when empty or for a rank outside [0, 1].
    #[must_use]
    pub fn quantile(&self, rank: f64) -> Option<u64> {
        let sorted = self.sorted();
        pick(&sorted, rank)
    }

    /// p50/p90/p95/p99 of per-second counts over the kept span; `None` when empty.
    #[must_use]
    pub fn quantiles4(&self) -> Option<[u64; 4]> {
        let sorted = self.sorted();
        let mut out = [0u64; 4];
        for (o, &r) in out.iter_mut().zip(RANKS.iter()) {
            *o = pick(&sorted, r)?;
        }
        Some(out)
    }

    /// First kept second, `None` when empty.
    #[must_use]
    pub fn first_second(&self) -> Option<u64> {
        (!self.is_empty()).then_some(self.first)
    }

    /// Last (latest) second seen, `None` when empty.
    #[must_use]
    pub fn last_second(&self) -> Option<u64> {
        let len = self.counts.len() as u64;
        (len > 0).then(|| self.first.saturating_add(len - 1))
    }

    /// Count of the latest second seen (pktvisor's "live" value when that second is complete).
    #[must_use]
    pub fn last(&self) -> Option<u64> {
        self.counts.back().copied()
    }

    /// Number of seconds in the kept span.
    #[must_use]
    pub fn span(&self) -> u64 {
        self.counts.len() as u64
    }

    /// Total events in the kept span.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.counts.iter().fold(0u64, |a, &c| a.saturating_add(c))
    }

    /// Events that fell (or slid) outside the kept span.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Bytes held on the heap (8 per second of span, plus growth slack).
    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        self.counts.capacity() * size_of::<u64>()
    }

    fn sorted(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.counts.iter().copied().collect();
        v.sort_unstable();
        v
    }
}

/// Inclusive-rank pick from sorted values: element `ceil(rank·n)` (1-based, at least 1).
fn pick(sorted: &[u64], rank: f64) -> Option<u64> {
    if sorted.is_empty() || !(0.0..=1.0).contains(&rank) {
        return None;
    }
    let n = sorted.len();
    let need = ((rank * n as f64).ceil() as usize).clamp(1, n);
    sorted.get(need - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// Reference: per-second sums over the window ending at the latest second, zeros filled.
    fn reference(events: &[(u64, u64)], max_span: u64) -> (Vec<u64>, u64, u64) {
        let Some(max) = events.iter().map(|e| e.0).max() else {
            return (Vec::new(), 0, 0);
        };
        let start = max.saturating_sub(max_span - 1);
        let min_kept = events.iter().map(|e| e.0).min().unwrap().max(start);
        let mut m = BTreeMap::new();
        let mut dropped = 0;
        for &(s, n) in events {
            if s < start {
                dropped += n;
            } else {
                *m.entry(s).or_insert(0) += n;
            }
        }
        let counts = (min_kept..=max)
            .map(|s| m.get(&s).copied().unwrap_or(0))
            .collect();
        (counts, min_kept, dropped)
    }

    fn build(events: &[(u64, u64)], max_span: u64) -> Rate {
        let mut r = Rate::with_max_span(max_span);
        for &(s, n) in events {
            r.add(s, n);
        }
        r
    }

    #[test]
    fn quantiles_include_idle_seconds() {
        let mut r = Rate::new();
        r.add(100, 10);
        r.add(104, 2);
        r.add(100, 5);
        // Seconds 100..=104: [15, 0, 0, 0, 2].
        assert_eq!(r.span(), 5);
        assert_eq!(r.quantiles4(), Some([0, 15, 15, 15]));
        assert_eq!(r.quantile(0.6), Some(0));
        assert_eq!(r.quantile(0.8), Some(2));
        assert_eq!(r.last(), Some(2));
        assert_eq!(r.total(), 17);
    }

    #[test]
    fn empty_rate() {
        let r = Rate::new();
        assert!(r.is_empty());
        assert_eq!(r.quantiles4(), None);
        assert_eq!(r.last_second(), None);
        assert_eq!(r.heap_bytes(), 0);
    }

    #[test]
    fn workers_sum_per_second() {
        let mut a = Rate::new();
        let mut b = Rate::new();
        for s in 0..10 {
            a.add(s, 3);
            b.add(s, 4);
        }
        a.merge(&b);
        assert_eq!(a.quantiles4(), Some([7, 7, 7, 7]));
    }

    #[test]
    fn span_cap_slides_and_counts_dropped() {
        let mut r = Rate::with_max_span(3);
        r.add(10, 1);
        r.add(11, 2);
        r.add(14, 4); // window 12..=14
        assert_eq!(r.first_second(), Some(12));
        assert_eq!(r.dropped(), 3);
        r.add(5, 9); // too old
        assert_eq!(r.dropped(), 12);
        r.add(1_000_000, 1); // jump: everything slides out
        assert_eq!(r.span(), 3);
        assert_eq!(r.first_second(), Some(999_998));
        assert_eq!(r.quantiles4(), Some([0, 1, 1, 1]));
        assert_eq!(r.dropped(), 16);
        let mut big = Rate::new();
        big.add(0, 1);
        big.add(u64::MAX, 1);
        assert_eq!(big.span(), MAX_SPAN);
        assert_eq!(big.last_second(), Some(u64::MAX));
    }

    fn events_strategy() -> impl Strategy<Value = Vec<(u64, u64)>> {
        proptest::collection::vec(
            (
                prop_oneof![4 => 1_000u64..1_030, 1 => 900u64..1_100],
                0u64..50,
            ),
            0..80,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn matches_reference(events in events_strategy(), span in prop_oneof![Just(MAX_SPAN), 1u64..60]) {
            let r = build(&events, span);
            let (counts, first, dropped) = reference(&events, span);
            prop_assert_eq!(r.counts.iter().copied().collect::<Vec<_>>(), counts.clone());
            if !counts.is_empty() {
                prop_assert_eq!(r.first_second(), Some(first));
            }
            prop_assert_eq!(r.dropped(), dropped);
            let mut sorted = counts;
            sorted.sort_unstable();
            for (i, &rank) in RANKS.iter().enumerate() {
                let want = pick(&sorted, rank);
                prop_assert_eq!(r.quantiles4().map(|q| q[i]), want);
            }
        }

        #[test]
        fn merge_exact_associative_commutative(
            a in events_strategy(),
            b in events_strategy(),
            c in events_strategy(),
            span in prop_oneof![Just(MAX_SPAN), 1u64..60],
        ) {
            let all: Vec<(u64, u64)> = a.iter().chain(&b).chain(&c).copied().collect();
            let union = build(&all, span);
            let (ra, rb, rc) = (build(&a, span), build(&b, span), build(&c, span));
            let mut ab_c = ra.clone();
            ab_c.merge(&rb);
            ab_c.merge(&rc);
            let mut bc = rb.clone();
            bc.merge(&rc);
            let mut a_bc = ra.clone();
            a_bc.merge(&bc);
            let mut cba = rc.clone();
            cba.merge(&rb);
            cba.merge(&ra);
            prop_assert_eq!(&ab_c, &union);
            prop_assert_eq!(&a_bc, &union);
            prop_assert_eq!(&cba, &union);
        }
    }
}
