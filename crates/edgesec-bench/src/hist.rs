//! A small log-linear latency histogram: values in nanoseconds, 32 sub-buckets per power of
//! two, so any recorded value is reported within about 3 % of what was measured. Histograms from
//! several client processes merge by adding their counts.

use serde::{Deserialize, Serialize};

/// Sub-buckets per power of two (5 bits of mantissa).
const SUB: u64 = 32;
/// Enough buckets for any `u64`.
const BUCKETS: usize = 2048;

#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }
}

fn index(v: u64) -> usize {
    if v < 2 * SUB {
        return v as usize;
    }
    let msb = 63 - u64::from(v.leading_zeros());
    let shift = msb - 5;
    (shift * SUB + (v >> shift)) as usize
}

/// The lowest and highest value that land in bucket `i`.
fn bounds(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < 2 * SUB {
        return (i, i);
    }
    let shift = i / SUB - 1;
    let mantissa = i % SUB + SUB;
    let low = mantissa << shift;
    (low, low + ((1 << shift) - 1))
}

impl Histogram {
    pub fn record(&mut self, nanos: u64) {
        self.counts[index(nanos)] += 1;
        self.total += 1;
        self.max = self.max.max(nanos);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The value at quantile `q` (0..=1), as the middle of its bucket (the maximum for q = 1).
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        if q >= 1.0 {
            return Some(self.max);
        }
        let rank = ((q * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, hi) = bounds(i);
                return Some((lo + (hi - lo) / 2).min(self.max));
            }
        }
        Some(self.max)
    }

    /// Milliseconds at quantile `q`.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        self.quantile(q).map(|n| n as f64 / 1e6)
    }

    /// The non-empty buckets, for sending between processes.
    pub fn to_wire(&self) -> WireHistogram {
        WireHistogram {
            buckets: self
                .counts
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(i, c)| (i as u32, *c))
                .collect(),
            max: self.max,
        }
    }

    pub fn from_wire(w: &WireHistogram) -> Histogram {
        let mut h = Histogram::default();
        for &(i, c) in &w.buckets {
            if let Some(slot) = h.counts.get_mut(i as usize) {
                *slot += c;
                h.total += c;
            }
        }
        h.max = w.max;
        h
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WireHistogram {
    buckets: Vec<(u32, u64)>,
    max: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_tight() {
        let mut prev_hi = None;
        for i in 0..index(u64::MAX) + 1 {
            let (lo, hi) = bounds(i);
            if let Some(p) = prev_hi {
                assert_eq!(lo, p + 1, "bucket {i}");
            }
            assert_eq!(index(lo), i);
            assert_eq!(index(hi), i);
            if lo >= 64 {
                assert!((hi - lo) as f64 / lo as f64 <= 1.0 / 32.0);
            }
            prev_hi = Some(hi);
        }
        assert_eq!(prev_hi, Some(u64::MAX));
    }

    #[test]
    fn quantiles_and_merge() {
        let mut a = Histogram::default();
        for v in 1..=1000u64 {
            a.record(v * 1000);
        }
        let p50 = a.quantile(0.5).unwrap() as f64;
        assert!((p50 - 500_000.0).abs() / 500_000.0 < 0.04, "{p50}");
        let p99 = a.quantile(0.99).unwrap() as f64;
        assert!((p99 - 990_000.0).abs() / 990_000.0 < 0.04, "{p99}");
        assert_eq!(a.quantile(1.0), Some(1_000_000));
        let b = Histogram::from_wire(&a.to_wire());
        let mut c = a.clone();
        c.merge(&b);
        assert_eq!(c.count(), 2000);
        assert_eq!(c.quantile(0.5), a.quantile(0.5));
        assert_eq!(Histogram::default().quantile(0.5), None);
    }
}
