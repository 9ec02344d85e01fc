//! Owns waiting between attempts: exponential back-off with jitter, bounded.
//!
//! Invariants: every wait is at most [`MAX_DELAY`]; the jitter (±25%, as git's lock retries)
//! keeps producers that collided from colliding again in lockstep.

use std::time::Duration;

/// The first wait.
pub const FIRST_DELAY: Duration = Duration::from_millis(50);
/// The longest wait.
pub const MAX_DELAY: Duration = Duration::from_secs(5);

/// Back-off state: each [`Backoff::wait()`] sleeps about twice as long as the one before.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    seed: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos().into())
            ^ u64::from(std::process::id()).rotate_left(32);
        Self {
            next: FIRST_DELAY,
            seed: seed | 1,
        }
    }
}

impl Backoff {
    /// The next delay (with jitter), advancing the state.
    pub fn next_delay(&mut self) -> Duration {
        // xorshift64: enough randomness for jitter, no dependency.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let base = self.next;
        self.next = (self.next * 2).min(MAX_DELAY);
        let quarter = base / 4;
        let spread = u64::try_from(quarter.as_nanos() * 2)
            .unwrap_or(u64::MAX)
            .max(1);
        let jitter = Duration::from_nanos(self.seed % spread);
        (base.saturating_sub(quarter) + jitter).min(MAX_DELAY)
    }

    /// Sleep for the next delay.
    pub fn wait(&mut self) {
        std::thread::sleep(self.next_delay());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_are_jittered_and_bounded() {
        let mut backoff = Backoff::default();
        let delays: Vec<Duration> = (0..20).map(|_| backoff.next_delay()).collect();
        assert!(delays[0] >= FIRST_DELAY * 3 / 4 && delays[0] <= FIRST_DELAY * 5 / 4);
        assert!(delays[3] > delays[0] * 4);
        assert!(delays.iter().all(|d| *d <= MAX_DELAY));
        assert!(delays[19] >= MAX_DELAY * 3 / 4);
    }
}
