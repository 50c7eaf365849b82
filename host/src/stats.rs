//! Order statistics for timings (benchmarks and `vigil doctor`).

use std::time::Duration;

/// The `q`-quantile (0.0..=1.0, nearest rank) of `samples`; sorts them.
pub fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let rank = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

/// Microseconds as f64, for printing.
pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let mut v: Vec<Duration> = (1..=100).rev().map(Duration::from_micros).collect();
        assert_eq!(quantile(&mut v, 0.5), Duration::from_micros(50));
        assert_eq!(quantile(&mut v, 0.99), Duration::from_micros(99));
        assert_eq!(quantile(&mut v, 1.0), Duration::from_micros(100));
        assert_eq!(quantile(&mut [], 0.5), Duration::ZERO);
    }
}
