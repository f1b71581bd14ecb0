//! Period sequencing: pktvisor's rotation rule, applied once, globally, so that every worker
//! agrees on which period each packet belongs to however the packets are sharded.

use analyzers::window::Period;

/// pktvisor's period length.
pub const PERIOD_SEC: u64 = 60;

/// Assigns events to periods by event time. A new period starts at the first event whose second
/// is at or past the previous start second + 60 (pktvisor's `new_event`); with one period
/// configured, nothing ever rotates.
#[derive(Clone, Debug, Default)]
pub struct PeriodClock {
    rotate: bool,
    periods: Vec<Period>,
    next_shift_sec: u64,
    last_ns: u64,
}

impl PeriodClock {
    pub fn new(num_periods: u8) -> Self {
        Self {
            rotate: num_periods > 1,
            ..Default::default()
        }
    }

    /// The period sequence number of an event at `ts_ns`.
    pub fn observe(&mut self, ts_ns: u64) -> u32 {
        let sec = ts_ns / 1_000_000_000;
        if self.periods.is_empty() {
            self.periods.push(Period {
                start_ns: ts_ns,
                end_ns: 0,
            });
            self.next_shift_sec = sec + PERIOD_SEC;
        } else if self.rotate && sec >= self.next_shift_sec {
            if let Some(last) = self.periods.last_mut() {
                last.end_ns = ts_ns;
            }
            self.periods.push(Period {
                start_ns: ts_ns,
                end_ns: 0,
            });
            self.next_shift_sec = sec + PERIOD_SEC;
        }
        self.last_ns = ts_ns;
        self.current()
    }

    /// The live period's sequence number.
    pub fn current(&self) -> u32 {
        self.periods.len().saturating_sub(1) as u32
    }

    /// Closes the live period at the last event seen (end of a recorded input).
    pub fn finish(&mut self) {
        let last = self.last_ns;
        if let Some(p) = self.periods.last_mut() {
            p.end_ns = last;
        }
    }

    pub fn periods(&self) -> &[Period] {
        &self.periods
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn rotates_on_event_time_like_pktvisor() {
        let mut c = PeriodClock::new(5);
        assert_eq!(c.observe(100 * S + 5), 0);
        assert_eq!(c.observe(159 * S + 999), 0);
        assert_eq!(c.observe(160 * S), 1);
        // an older packet after the shift stays in the live period
        assert_eq!(c.observe(150 * S), 1);
        assert_eq!(c.observe(300 * S), 2);
        c.finish();
        let p = c.periods();
        assert_eq!(p[0].start_ns, 100 * S + 5);
        assert_eq!(p[0].end_ns, 160 * S);
        assert_eq!(p[1].length_sec(), 140);
        assert_eq!(p[2].end_ns, 300 * S);
    }

    #[test]
    fn one_period_never_rotates() {
        let mut c = PeriodClock::new(1);
        c.observe(S);
        assert_eq!(c.observe(10_000 * S), 0);
        c.finish();
        assert_eq!(c.periods()[0].length_sec(), 9_999);
    }
}
