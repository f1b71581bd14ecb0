//! Log-linear histogram of `u64` values giving quantiles and pktvisor-style cumulative
//! histograms; it keeps counts per value range, not the samples themselves.
//!
//! # Buckets
//!
//! Values below 256 each have their own bucket (exact). A value `v ≥ 256` with
//! `e = ⌊log2 v⌋` falls in one of 128 equal sub-buckets of `[2^e, 2^(e+1))`, each
//! `2^(e−7)` wide, so a bucket spans at most 1/128 of its lower edge. 7 424 buckets cover
//! all of `u64`. Counts are stored densely over the occupied index range only; the range
//! grows (by doubling) when a new extreme arrives, so an update allocates only on growth.
//!
//! # Error bound
//!
//! `quantile(r)` first finds — exactly — the bucket holding the true inclusive-rank answer
//! (the smallest sample value `v*` with `#{x ≤ v*}/n ≥ r`, DataSketches' inclusive rule).
//! Below 256 it returns `v*` itself. Above, it returns the bucket midpoint clamped to the
//! exact `[min, max]`, which is within half a bucket of `v*`: relative error
//! `|q − v*| / v* ≤ 1/256 ≈ 0.39 %`.
//!
//! # Merge
//!
//! Merge adds bucket counts and combines the exact `count`, `sum`, `min`, `max`, so
//! `merge(a, b)` equals the sketch of `a ∪ b` **exactly** (hence exactly associative and
//! commutative).

/// Ranks reported as p50/p90/p95/p99.
pub const RANKS: [f64; 4] = [0.50, 0.90, 0.95, 0.99];
/// JSON keys of [`RANKS`].
pub const RANK_LABELS: [&str; 4] = ["p50", "p90", "p95", "p99"];
/// Prometheus `quantile` label values of [`RANKS`].
pub const PROMETHEUS_LABELS: [&str; 4] = ["0.5", "0.9", "0.95", "0.99"];

/// Values below this each have their own exact bucket.
pub const EXACT_LIMIT: u64 = 256;
/// Sub-buckets per power of two above [`EXACT_LIMIT`] (log2).
const SUB_BITS: u32 = 7;
const SUB: usize = 1 << SUB_BITS;
/// First exponent handled by log buckets (2^8 = 256).
const FIRST_EXP: u32 = 8;
/// Total number of buckets covering `0..=u64::MAX`.
pub const BUCKETS: usize = EXACT_LIMIT as usize + (64 - FIRST_EXP as usize) * SUB;
/// Smallest number of buckets added when the occupied range grows.
const MIN_GROW: usize = 16;

/// Mergeable value distribution (log-linear histogram, HdrHistogram-like).
///
/// Error bound: quantiles are exact for values below 256 and within 0.39 % relative of the
/// true inclusive-rank sample value above; `count`, `sum`, `min`, `max` are exact. Merge is
/// exact. See the module documentation.
#[derive(Clone, Debug)]
pub struct Quantiles {
    /// `counts[i]` is the count of bucket `base + i`.
    counts: Vec<u64>,
    base: usize,
    count: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Default for Quantiles {
    fn default() -> Self {
        Self::new()
    }
}

impl Quantiles {
    /// Creates an empty sketch; allocates nothing until the first record.
    #[must_use]
    pub fn new() -> Self {
        Quantiles {
            counts: Vec::new(),
            base: 0,
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    /// Records one sample.
    #[inline]
    pub fn record(&mut self, v: u64) {
        self.record_n(v, 1);
    }

    /// Records `n` samples of value `v` (no-op when `n == 0`).
    #[inline]
    pub fn record_n(&mut self, v: u64, n: u64) {
        if n == 0 {
            return;
        }
        let idx = bucket_index(v);
        // Checked here so the common case (bucket already allocated) needs no call.
        let len = self.counts.len();
        if !(len > 0 && idx >= self.base && idx < self.base + len) {
            self.ensure_range(idx, idx);
        }
        if let Some(c) = self.counts.get_mut(idx.wrapping_sub(self.base)) {
            *c = c.saturating_add(n);
        }
        self.count = self.count.saturating_add(n);
        self.sum = self
            .sum
            .saturating_add(u128::from(v).saturating_mul(u128::from(n)));
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// Number of samples.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Smallest sample, `None` when empty.
    #[must_use]
    pub fn min(&self) -> Option<u64> {
        (self.count > 0).then_some(self.min)
    }

    /// Largest sample, `None` when empty.
    #[must_use]
    pub fn max(&self) -> Option<u64> {
        (self.count > 0).then_some(self.max)
    }

    /// Exact sum of samples, saturating at `u64::MAX`.
    #[must_use]
    pub fn sum(&self) -> u64 {
        u64::try_from(self.sum).unwrap_or(u64::MAX)
    }

    /// True when no sample was recorded.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The value at inclusive rank `rank` ∈ [0, 1]: the smallest `v` such that
    /// (samples ≤ v) / n ≥ rank (DataSketches' inclusive rule; rank 0 gives the minimum).
    /// `None` when empty or when `rank` is outside [0, 1] or NaN.
    #[must_use]
    pub fn quantile(&self, rank: f64) -> Option<u64> {
        if self.count == 0 || !(0.0..=1.0).contains(&rank) {
            return None;
        }
        let need = rank_weight(rank, self.count);
        // The extreme ranks are known exactly.
        if need <= 1 {
            return Some(self.min);
        }
        if need >= self.count {
            return Some(self.max);
        }
        let mut cum = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            cum = cum.saturating_add(c);
            if cum >= need {
                return Some(self.representative(self.base + i));
            }
        }
        Some(self.max)
    }

    /// Quantiles at [`RANKS`] (p50, p90, p95, p99); `None` when empty.
    #[must_use]
    pub fn quantiles4(&self) -> Option<[u64; 4]> {
        let mut out = [0u64; 4];
        for (o, &r) in out.iter_mut().zip(RANKS.iter()) {
            *o = self.quantile(r)?;
        }
        Some(out)
    }

    /// Number of samples ≤ `v`. Exact for `v < 256`, `v < min` and `v ≥ max`; otherwise
    /// bucket-granular: every sample of a log bucket is taken to sit at the bucket's
    /// reported value (midpoint clamped to [min, max]), consistent with [`Self::quantile`].
    #[must_use]
    pub fn count_le(&self, v: u64) -> u64 {
        if self.count == 0 || v < self.min {
            return 0;
        }
        if v >= self.max {
            return self.count;
        }
        let idx = bucket_index(v);
        let mut cum = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            let b = self.base + i;
            if b > idx || (b == idx && self.representative(b) > v) {
                break;
            }
            cum = cum.saturating_add(c);
        }
        cum
    }

    /// pktvisor's histogram: for each edge `⌊10^(i/18)·10^e⌋` (e ∈ [−9, 17], i ∈ 0..18,
    /// duplicates removed) whose bin (samples in (previous edge, edge]) is non-empty,
    /// `(edge, samples ≤ edge)`. The caller appends `"+Inf"` = [`Self::count`]. Empty when
    /// the sketch is empty. Bucket-granular above 255 like [`Self::count_le`].
    #[must_use]
    pub fn pktvisor_histogram(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        if self.count == 0 {
            return out;
        }
        let mut prev_cum = 0u64;
        for edge in pktvisor_edges() {
            let cum = self.count_le(edge);
            if cum > prev_cum {
                out.push((edge, cum));
            }
            prev_cum = cum;
            if cum >= self.count {
                break;
            }
        }
        out
    }

    /// Adds every sample of `other` to `self`. Exact.
    pub fn merge(&mut self, other: &Self) {
        if other.count == 0 {
            return;
        }
        let lo = bucket_index(other.min);
        let hi = bucket_index(other.max);
        self.ensure_range(lo, hi);
        for (i, &c) in other.counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            let idx = other.base + i;
            if let Some(mine) = self.counts.get_mut(idx.wrapping_sub(self.base)) {
                *mine = mine.saturating_add(c);
            }
        }
        self.count = self.count.saturating_add(other.count);
        self.sum = self.sum.saturating_add(other.sum);
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Bytes held on the heap (the dense bucket counts).
    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        self.counts.capacity() * size_of::<u64>()
    }

    /// Iterates non-empty buckets as `(lowest value, highest value, count)`, ascending.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|&(_, &c)| c > 0)
            .map(|(i, &c)| {
                let (lo, hi) = bucket_bounds(self.base + i);
                (lo, hi, c)
            })
    }

    /// Reported value for bucket `idx`: the value itself below 256, otherwise the midpoint
    /// clamped to the exact [min, max].
    fn representative(&self, idx: usize) -> u64 {
        let (lo, hi) = bucket_bounds(idx);
        if lo == hi {
            return lo;
        }
        let mid = lo + (hi - lo).div_ceil(2);
        mid.clamp(self.min, self.max.max(self.min))
    }

    /// Makes the dense array cover bucket indices `lo..=hi` (both < BUCKETS), growing by at
    /// least doubling so repeated new extremes cost amortized O(1).
    fn ensure_range(&mut self, lo: usize, hi: usize) {
        let len = self.counts.len();
        if len > 0 && lo >= self.base && hi < self.base + len {
            return;
        }
        let (cur_lo, cur_hi) = if len == 0 {
            (lo, hi)
        } else {
            (self.base.min(lo), (self.base + len - 1).max(hi))
        };
        let slack = (cur_hi - cur_lo + 1).max(len).max(MIN_GROW);
        let (new_lo, new_hi) = if len == 0 {
            (
                cur_lo.saturating_sub(MIN_GROW / 2),
                (cur_hi + MIN_GROW / 2).min(BUCKETS - 1),
            )
        } else if lo < self.base {
            (cur_lo.saturating_sub(slack), cur_hi)
        } else {
            (cur_lo, (cur_hi + slack).min(BUCKETS - 1))
        };
        let new_len = new_hi - new_lo + 1;
        if len == 0 {
            self.counts = vec![0; new_len];
        } else if new_lo == self.base {
            self.counts.resize(new_len, 0);
        } else {
            let mut grown = vec![0u64; new_len];
            let shift = self.base - new_lo;
            if let Some(dst) = grown.get_mut(shift..shift + len) {
                dst.copy_from_slice(&self.counts);
            }
            self.counts = grown;
        }
        self.base = new_lo;
    }
}

impl PartialEq for Quantiles {
    /// Equal when both hold the same multiset of bucketed samples and the same exact
    /// count/sum/min/max; the internal occupied range does not matter.
    fn eq(&self, other: &Self) -> bool {
        self.count == other.count
            && self.sum == other.sum
            && (self.count == 0 || (self.min == other.min && self.max == other.max))
            && self.buckets().eq(other.buckets())
    }
}

impl Eq for Quantiles {}

/// Target cumulative weight for `rank` over `n` samples, as DataSketches computes it for
/// inclusive queries: `ceil(rank · n)`, at least 1.
fn rank_weight(rank: f64, n: u64) -> u64 {
    let w = (rank * n as f64).ceil();
    // `as` saturates; the clamp keeps the answer within the samples.
    (w as u64).clamp(1, n)
}

/// Index of the bucket holding `v`.
#[inline]
#[must_use]
pub fn bucket_index(v: u64) -> usize {
    if v < EXACT_LIMIT {
        return v as usize;
    }
    let e = 63 - v.leading_zeros(); // ≥ FIRST_EXP
    let sub = (v >> (e - SUB_BITS)) as usize & (SUB - 1);
    EXACT_LIMIT as usize + (e - FIRST_EXP) as usize * SUB + sub
}

/// Inclusive value range `(lo, hi)` of bucket `idx` (saturating for out-of-range indices).
#[must_use]
pub fn bucket_bounds(idx: usize) -> (u64, u64) {
    if idx < EXACT_LIMIT as usize {
        return (idx as u64, idx as u64);
    }
    let idx = idx.min(BUCKETS - 1);
    let j = idx - EXACT_LIMIT as usize;
    let e = (j / SUB) as u32 + FIRST_EXP;
    let sub = (j % SUB) as u64;
    let shift = e - SUB_BITS;
    let lo = ((SUB as u64) + sub) << shift;
    let hi = lo + ((1u64 << shift) - 1);
    (lo, hi)
}

/// pktvisor's histogram edges for integer values, ascending and de-duplicated:
/// `⌊10^(i/18) · 10^e⌋` for e ∈ [−9, 17], i ∈ 0..18.
#[must_use]
pub fn pktvisor_edges() -> Vec<u64> {
    let mut edges: Vec<u64> = Vec::with_capacity(27 * 18);
    for e in -9i32..=17 {
        for i in 0..18u32 {
            let v = 10f64.powf(f64::from(i) / 18.0) * 10f64.powi(e);
            // Truncation toward zero, as pktvisor's cast to the integer value type.
            let edge = v as u64;
            if edges.last() != Some(&edge) {
                edges.push(edge);
            }
        }
    }
    edges
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn build(values: &[u64]) -> Quantiles {
        let mut q = Quantiles::new();
        for &v in values {
            q.record(v);
        }
        q
    }

    /// Exact inclusive-rank answer over raw samples.
    fn exact_quantile(values: &[u64], rank: f64) -> u64 {
        let mut s = values.to_vec();
        s.sort_unstable();
        let need = rank_weight(rank, s.len() as u64) as usize;
        s[need - 1]
    }

    #[test]
    fn pktvisor_single_value() {
        let q = build(&[12]);
        assert_eq!(q.quantiles4(), Some([12, 12, 12, 12]));
        assert_eq!(q.min(), Some(12));
        assert_eq!(q.max(), Some(12));
        assert_eq!(q.count(), 1);
    }

    #[test]
    fn pktvisor_five_values_p50() {
        let q = build(&[12, 12, 1, 8, 12]);
        assert_eq!(q.quantile(0.5), Some(12));
        assert_eq!(q.quantiles4(), Some([12, 12, 12, 12]));
        assert_eq!(q.quantile(0.0), Some(1));
        assert_eq!(q.quantile(0.2), Some(1));
        assert_eq!(q.quantile(0.4), Some(8));
    }

    #[test]
    fn pktvisor_histograms() {
        let q = build(&[12, 12, 12, 8]);
        assert_eq!(q.pktvisor_histogram(), vec![(8, 1), (12, 4)]);
        assert_eq!(q.count(), 4);
        let q = build(&[12, 12, 1, 8, 12]);
        assert_eq!(q.pktvisor_histogram(), vec![(1, 1), (8, 2), (12, 5)]);
        assert_eq!(q.count(), 5);
    }

    #[test]
    fn pktvisor_edges_shape() {
        let e = pktvisor_edges();
        assert_eq!(&e[..12], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12]);
        assert!(e.windows(2).all(|w| w[0] < w[1]));
        assert!(e.contains(&1000) && e.contains(&1291));
        let last = *e.last().unwrap();
        assert!(
            last > 879_000_000_000_000_000 && last < 880_000_000_000_000_000,
            "{last}"
        );
    }

    #[test]
    fn empty_sketch() {
        let q = Quantiles::new();
        assert!(q.is_empty());
        assert_eq!(q.quantile(0.5), None);
        assert_eq!(q.quantiles4(), None);
        assert_eq!(q.min(), None);
        assert_eq!(q.count_le(100), 0);
        assert!(q.pktvisor_histogram().is_empty());
        assert_eq!(q.heap_bytes(), 0);
    }

    #[test]
    fn invalid_rank_is_none() {
        let q = build(&[1, 2, 3]);
        assert_eq!(q.quantile(-0.1), None);
        assert_eq!(q.quantile(1.1), None);
        assert_eq!(q.quantile(f64::NAN), None);
        assert_eq!(q.quantile(1.0), Some(3));
    }

    #[test]
    fn bucket_layout_is_contiguous_and_tight() {
        let mut prev_hi = None;
        for idx in 0..BUCKETS {
            let (lo, hi) = bucket_bounds(idx);
            if let Some(p) = prev_hi {
                assert_eq!(lo, p + 1, "bucket {idx}");
            }
            assert_eq!(bucket_index(lo), idx);
            assert_eq!(bucket_index(hi), idx);
            if lo >= EXACT_LIMIT {
                assert!((hi - lo + 1) * 128 <= lo, "bucket {idx} too wide");
            }
            prev_hi = Some(hi);
        }
        assert_eq!(prev_hi, Some(u64::MAX));
    }

    #[test]
    fn extremes_do_not_overflow() {
        let mut q = Quantiles::new();
        q.record_n(u64::MAX, u64::MAX);
        q.record_n(0, 3);
        assert_eq!(q.count(), u64::MAX);
        assert_eq!(q.sum(), u64::MAX);
        assert_eq!(q.quantile(1.0), Some(u64::MAX));
        assert_eq!(q.quantile(0.0), Some(0));
    }

    #[test]
    fn sum_and_count_le() {
        let q = build(&[1, 5, 5, 300, 1000]);
        assert_eq!(q.sum(), 1311);
        assert_eq!(q.count_le(0), 0);
        assert_eq!(q.count_le(5), 3);
        assert_eq!(q.count_le(299), 3);
        assert_eq!(q.count_le(1000), 5);
        assert_eq!(q.count_le(u64::MAX), 5);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn quantiles_within_bound(
            values in proptest::collection::vec(prop_oneof![0u64..300, 0u64..100_000, any::<u64>()], 1..400),
            rank in 0.0f64..=1.0,
        ) {
            let q = build(&values);
            for r in RANKS.iter().copied().chain([rank, 0.0, 1.0]) {
                let want = exact_quantile(&values, r);
                let got = q.quantile(r).unwrap();
                if want < EXACT_LIMIT {
                    prop_assert_eq!(got, want);
                } else {
                    let err = (got as f64 - want as f64).abs() / want as f64;
                    prop_assert!(err <= 1.0 / 256.0, "rank {} want {} got {}", r, want, got);
                }
            }
            let min = *values.iter().min().unwrap();
            let max = *values.iter().max().unwrap();
            prop_assert_eq!(q.min(), Some(min));
            prop_assert_eq!(q.max(), Some(max));
            let sum: u128 = values.iter().map(|&v| u128::from(v)).sum();
            prop_assert_eq!(u128::from(q.sum()), sum.min(u128::from(u64::MAX)));
        }

        #[test]
        fn count_le_exact_in_exact_region(values in proptest::collection::vec(0u64..400, 1..200), v in 0u64..256) {
            let q = build(&values);
            prop_assert_eq!(q.count_le(v), values.iter().filter(|&&x| x <= v).count() as u64);
        }

        #[test]
        fn merge_is_exact_associative_commutative(
            a in proptest::collection::vec(prop_oneof![0u64..300, any::<u64>()], 0..100),
            b in proptest::collection::vec(prop_oneof![0u64..300, 0u64..1_000_000], 0..100),
            c in proptest::collection::vec(0u64..5_000, 0..100),
        ) {
            let all: Vec<u64> = a.iter().chain(&b).chain(&c).copied().collect();
            let union = build(&all);
            let (qa, qb, qc) = (build(&a), build(&b), build(&c));
            let mut ab_c = qa.clone();
            ab_c.merge(&qb);
            ab_c.merge(&qc);
            let mut bc = qb.clone();
            bc.merge(&qc);
            let mut a_bc = qa.clone();
            a_bc.merge(&bc);
            let mut cba = qc.clone();
            cba.merge(&qb);
            cba.merge(&qa);
            prop_assert_eq!(&ab_c, &union);
            prop_assert_eq!(&a_bc, &union);
            prop_assert_eq!(&cba, &union);
            prop_assert_eq!(ab_c.quantiles4(), union.quantiles4());
            prop_assert_eq!(ab_c.pktvisor_histogram(), union.pktvisor_histogram());
        }
    }
}
