//! Per-attempt limits on what a plugin can make the host do: how fast it may call capabilities
//! (a token bucket: excess calls wait, they are not refused) and how much it may log (a budget:
//! past it, lines are dropped after one notice). Both keep a hostile or buggy plugin from
//! flooding AWS or the journal; well-behaved plugins never reach them.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Environment variable overriding the host-call rate: `PER_SECOND` or `PER_SECOND/BURST`.
pub const RATE_ENV: &str = "WHARF_HOST_CALL_RATE";
/// Sustained host calls per second of one step attempt. Built-in plugins make a few per second.
pub const DEFAULT_CALLS_PER_SECOND: f64 = 20.0;
/// Calls an attempt may make at once before the rate applies (create-cluster makes ~15 in a row).
pub const DEFAULT_BURST: f64 = 50.0;

/// Log lines (log and progress messages, denial warnings, calls planned by `wharf plan`) kept per
/// attempt.
pub const MAX_LOG_LINES: u32 = 2000;
/// Bytes of log messages kept per attempt.
pub const MAX_LOG_BYTES: usize = 1 << 20;

/// Bytes one attempt (its parts included) may download from registries into the host, over all
/// its calls: each blob is also capped on its own (registry/transfer.rs).
pub const MAX_DOWNLOAD_BYTES: u64 = 4 << 30;

/// What an attempt may still download into the host.
#[derive(Debug)]
pub struct DownloadBudget {
    left: std::sync::atomic::AtomicU64,
}

impl Default for DownloadBudget {
    fn default() -> Self {
        DownloadBudget::new(MAX_DOWNLOAD_BYTES)
    }
}

impl DownloadBudget {
    pub fn new(bytes: u64) -> Self {
        DownloadBudget { left: std::sync::atomic::AtomicU64::new(bytes) }
    }

    pub fn remaining(&self) -> u64 {
        self.left.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Takes `bytes` off what is left (never below zero).
    pub fn spend(&self, bytes: u64) {
        use std::sync::atomic::Ordering;
        let _ = self.left.fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| Some(left.saturating_sub(bytes)));
    }
}

/// A token bucket: `burst` calls at once, then `per_second`.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
    /// Whether the attempt has been told it is being slowed down.
    noticed: bool,
}

impl RateLimiter {
    pub fn new(per_second: f64, burst: f64) -> Self {
        let burst = burst.max(1.0);
        RateLimiter {
            per_second,
            burst,
            state: Mutex::new(Bucket { tokens: burst, refilled: Instant::now(), noticed: false }),
        }
    }

    /// The process's rate: [`RATE_ENV`] when set and valid, else the defaults.
    pub fn from_env() -> Self {
        let (rate, burst) = std::env::var(RATE_ENV)
            .ok()
            .and_then(|v| parse_rate(&v))
            .unwrap_or((DEFAULT_CALLS_PER_SECOND, DEFAULT_BURST));
        RateLimiter::new(rate, burst)
    }

    pub fn per_second(&self) -> f64 {
        self.per_second
    }

    /// Takes a token; returns how long the caller must wait first, and whether this is the first
    /// wait of the attempt (to journal one notice, not one per call).
    pub fn acquire(&self) -> (Duration, bool) {
        let mut b = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        b.tokens = (b.tokens + now.duration_since(b.refilled).as_secs_f64() * self.per_second).min(self.burst);
        b.refilled = now;
        // Going negative reserves the token: the next caller waits behind this one.
        b.tokens -= 1.0;
        if b.tokens >= 0.0 {
            return (Duration::ZERO, false);
        }
        let wait = Duration::from_secs_f64(-b.tokens / self.per_second);
        let first = !std::mem::replace(&mut b.noticed, true);
        (wait, first)
    }
}

/// `20` or `20/50`; `None` for anything else (non-positive or non-finite numbers included).
pub fn parse_rate(value: &str) -> Option<(f64, f64)> {
    let (rate, burst) = match value.trim().split_once('/') {
        Some((r, b)) => (r.trim().parse::<f64>().ok()?, b.trim().parse::<f64>().ok()?),
        None => {
            let r = value.trim().parse::<f64>().ok()?;
            (r, DEFAULT_BURST)
        }
    };
    let ok = |x: f64| x.is_finite() && x > 0.0;
    (ok(rate) && ok(burst)).then_some((rate, burst))
}

/// What an attempt has logged so far.
#[derive(Debug, Default)]
pub struct LogBudget {
    state: Mutex<(u32, usize, bool)>,
}

/// What to do with one log line.
#[derive(Debug, PartialEq, Eq)]
pub enum LogVerdict {
    Keep,
    /// The first line over budget: journal the notice instead of the line.
    NoticeThenDrop,
    Drop,
}

impl LogBudget {
    pub fn admit(&self, bytes: usize) -> LogVerdict {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (lines, total, exhausted) = &mut *s;
        if *exhausted {
            return LogVerdict::Drop;
        }
        if *lines < MAX_LOG_LINES && *total + bytes <= MAX_LOG_BYTES {
            *lines += 1;
            *total += bytes;
            return LogVerdict::Keep;
        }
        *exhausted = true;
        LogVerdict::NoticeThenDrop
    }
}

/// The notice journaled once when an attempt's log budget runs out.
pub fn log_budget_notice() -> String {
    format!(
        "log limit reached: this attempt logged (or planned) {MAX_LOG_LINES} lines or {} KiB; its further log lines and planned calls are dropped",
        MAX_LOG_BYTES / 1024
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_download_budget_is_spent_and_never_goes_below_zero() {
        let budget = DownloadBudget::new(100);
        budget.spend(60);
        assert_eq!(budget.remaining(), 40);
        budget.spend(60);
        assert_eq!(budget.remaining(), 0);
    }

    #[test]
    fn burst_is_free_then_calls_wait_at_the_rate() {
        let limiter = RateLimiter::new(10.0, 3.0);
        for _ in 0..3 {
            assert_eq!(limiter.acquire(), (Duration::ZERO, false));
        }
        let (wait, first) = limiter.acquire();
        assert!(first && wait > Duration::from_millis(90) && wait <= Duration::from_millis(100), "{wait:?}");
        let (wait, first) = limiter.acquire();
        assert!(!first && wait > Duration::from_millis(190), "queued behind the previous call: {wait:?}");
    }

    #[test]
    fn rates_parse_with_an_optional_burst() {
        assert_eq!(parse_rate("5"), Some((5.0, DEFAULT_BURST)));
        assert_eq!(parse_rate(" 100 / 10 "), Some((100.0, 10.0)));
        for bad in ["", "0", "-1", "x", "5/0", "inf", "5/x"] {
            assert_eq!(parse_rate(bad), None, "{bad}");
        }
    }

    #[test]
    fn log_budget_notices_once_then_drops() {
        let budget = LogBudget::default();
        for _ in 0..MAX_LOG_LINES {
            assert_eq!(budget.admit(10), LogVerdict::Keep);
        }
        assert_eq!(budget.admit(10), LogVerdict::NoticeThenDrop);
        assert_eq!(budget.admit(10), LogVerdict::Drop);
        let bytes = LogBudget::default();
        assert_eq!(bytes.admit(MAX_LOG_BYTES), LogVerdict::Keep);
        assert_eq!(bytes.admit(1), LogVerdict::NoticeThenDrop);
    }
}
