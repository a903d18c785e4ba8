//! Retry policy: exponential backoff with jitter.

use std::time::Duration;

/// Delay before attempt `attempts + 1`: `base * 2^(attempts-1)`, capped at
/// `max`, then scaled by a random factor in [0.5, 1.0) so that many entries
/// failing together do not retry together.
pub fn backoff(attempts: u32, base: Duration, max: Duration) -> Duration {
    let exp = attempts.saturating_sub(1).min(20);
    let raw = base.saturating_mul(1u32 << exp).min(max);
    raw.mul_f64(0.5 + fastrand::f64() * 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_under_the_cap() {
        let base = Duration::from_secs(2);
        let max = Duration::from_secs(300);
        for _ in 0..100 {
            let d1 = backoff(1, base, max);
            assert!(d1 >= Duration::from_secs(1) && d1 < Duration::from_secs(2));
            let d3 = backoff(3, base, max);
            assert!(d3 >= Duration::from_secs(4) && d3 < Duration::from_secs(8));
            assert!(backoff(30, base, max) < max);
        }
    }
}
