//! Exponential backoff with jitter, the OpenAI SDK's shape: `min(base * mult^attempt, max)`
//! shrunk by up to 25% at random, unless the upstream said how long to wait.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
    pub multiplier: f64,
    pub jitter: bool,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { base: Duration::from_millis(500), max: Duration::from_millis(8000), multiplier: 2.0, jitter: true }
    }
}

impl Backoff {
    /// The wait before retry number `attempt` (0 = the first retry). A `Retry-After` from the
    /// upstream wins over the computed delay (it is the server's explicit request).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>, rng: &mut fastrand::Rng) -> Duration {
        if let Some(ra) = retry_after {
            return ra;
        }
        let exp = self.multiplier.max(1.0).powi(attempt.min(64) as i32);
        let raw = (self.base.as_secs_f64() * exp).min(self.max.as_secs_f64());
        let factor = if self.jitter { 1.0 - rng.f64() * 0.25 } else { 1.0 };
        Duration::from_secs_f64((raw * factor).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_up_to_the_cap_and_jitter_only_shrinks() {
        let b = Backoff::default();
        let mut rng = fastrand::Rng::with_seed(1);
        for attempt in 0..20 {
            let nominal = (500.0 * 2f64.powi(attempt as i32)).min(8000.0);
            for _ in 0..200 {
                let d = b.delay(attempt, None, &mut rng).as_secs_f64() * 1000.0;
                assert!(d <= nominal + 1e-6 && d >= nominal * 0.75 - 1e-6, "attempt {attempt}: {d}");
            }
        }
        let exact = Backoff { jitter: false, ..b };
        assert_eq!(exact.delay(2, None, &mut rng), Duration::from_millis(2000));
    }

    #[test]
    fn retry_after_wins() {
        let mut rng = fastrand::Rng::with_seed(1);
        assert_eq!(Backoff::default().delay(0, Some(Duration::from_secs(3)), &mut rng), Duration::from_secs(3));
    }
}
