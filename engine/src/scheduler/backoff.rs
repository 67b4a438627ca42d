//! Exponential backoff with full jitter between retries of a step.

use crate::workflow::RetryPolicy;
use rand::Rng;
use std::time::Duration;

/// Delay before retry number `retry` (1 = first retry): a random point in
/// `[base/2, base]` where `base = initial * 2^(retry-1)`, capped at `max_backoff`. Jitter keeps
/// parallel steps that failed together from retrying in lockstep.
pub fn delay(policy: &RetryPolicy, retry: u32) -> Duration {
    let exp = 2u32.saturating_pow(retry.saturating_sub(1).min(20));
    let base = policy.initial_backoff.saturating_mul(exp).min(policy.max_backoff);
    let low = base / 2;
    let spread = (base - low).as_millis() as u64;
    low + Duration::from_millis(rand::rng().random_range(0..=spread))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_caps() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        for _ in 0..50 {
            let d1 = delay(&p, 1);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100), "{d1:?}");
            let d3 = delay(&p, 3);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400), "{d3:?}");
            let d9 = delay(&p, 9);
            assert!(d9 >= Duration::from_millis(500) && d9 <= Duration::from_secs(1), "{d9:?}");
        }
    }
}
