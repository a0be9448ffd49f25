//! The circuit breaker of one pipeline/provider: closed → open after `failure_threshold`
//! consecutive counted failures; open → half-open once the cooldown (the recovery timeout, or
//! the upstream's `Retry-After` when longer) has passed; half-open admits at most
//! `half_open_max_calls` probes; a probe success closes it, a probe failure re-opens it.
//! Calls refused by the breaker are not failures; results of calls that were not probes do not
//! move a half-open breaker.

use std::time::Duration;

use tokio::time::Instant;

use super::config::BreakerConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

impl CircuitState {
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half-open",
        }
    }
}

/// A state change, reported as an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Opened { cooldown: Duration },
    HalfOpened,
    Closed,
}

/// What a call admitted by the breaker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Normal,
    Probe,
}

#[derive(Debug, Clone)]
pub struct Breaker {
    state: CircuitState,
    consecutive_failures: u32,
    open_until: Instant,
    probes_in_flight: u32,
    trips: u64,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker { state: CircuitState::Closed, consecutive_failures: 0, open_until: Instant::now(), probes_in_flight: 0, trips: 0 }
    }
}

impl Breaker {
    /// The state at `now`, moving open → half-open when the cooldown is over.
    pub fn refresh(&mut self, now: Instant, cfg: &BreakerConfig) -> Option<Transition> {
        if !cfg.enabled {
            return None;
        }
        if self.state == CircuitState::Open && now >= self.open_until {
            self.state = CircuitState::HalfOpen;
            self.probes_in_flight = 0;
            return Some(Transition::HalfOpened);
        }
        None
    }

    pub fn state(&self) -> CircuitState {
        self.state
    }

    /// When an open breaker half-opens (`None` unless open).
    pub fn open_until(&self) -> Option<Instant> {
        (self.state == CircuitState::Open).then_some(self.open_until)
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    pub fn trips(&self) -> u64 {
        self.trips
    }

    /// Whether a call could be admitted now (after `refresh`), without taking a probe slot.
    pub fn can_admit(&self, cfg: &BreakerConfig) -> bool {
        if !cfg.enabled {
            return true;
        }
        match self.state {
            CircuitState::Closed => true,
            CircuitState::Open => false,
            CircuitState::HalfOpen => self.probes_in_flight < cfg.half_open_max_calls,
        }
    }

    /// Time until an open breaker half-opens (zero when not open).
    pub fn retry_after(&self, now: Instant) -> Duration {
        match self.state {
            CircuitState::Open => self.open_until.saturating_duration_since(now),
            _ => Duration::ZERO,
        }
    }

    /// Admits a call (the caller checked `can_admit`).
    pub fn admit(&mut self, cfg: &BreakerConfig) -> Admission {
        if cfg.enabled && self.state == CircuitState::HalfOpen {
            self.probes_in_flight += 1;
            Admission::Probe
        } else {
            Admission::Normal
        }
    }

    pub fn on_success(&mut self, admission: Admission) -> Option<Transition> {
        match (self.state, admission) {
            (CircuitState::HalfOpen, Admission::Probe) => {
                self.state = CircuitState::Closed;
                self.consecutive_failures = 0;
                self.probes_in_flight = 0;
                Some(Transition::Closed)
            }
            (CircuitState::Closed, _) => {
                self.consecutive_failures = 0;
                None
            }
            _ => None,
        }
    }

    /// A counted failure. `retry_after` is the upstream's request to wait, if it sent one.
    pub fn on_failure(&mut self, now: Instant, cfg: &BreakerConfig, admission: Admission, retry_after: Option<Duration>) -> Option<Transition> {
        if !cfg.enabled {
            return None;
        }
        match (self.state, admission) {
            (CircuitState::HalfOpen, Admission::Probe) => Some(self.open(now, cfg, retry_after)),
            (CircuitState::Closed, _) => {
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                if self.consecutive_failures >= cfg.failure_threshold {
                    Some(self.open(now, cfg, retry_after))
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// A result that says nothing about the upstream (a cancellation, a request error).
    pub fn on_neutral(&mut self, admission: Admission) {
        if admission == Admission::Probe && self.state == CircuitState::HalfOpen {
            self.probes_in_flight = self.probes_in_flight.saturating_sub(1);
        }
    }

    fn open(&mut self, now: Instant, cfg: &BreakerConfig, retry_after: Option<Duration>) -> Transition {
        let cooldown = cfg.recovery_timeout.max(retry_after.unwrap_or(Duration::ZERO));
        self.state = CircuitState::Open;
        self.open_until = now + cooldown;
        self.probes_in_flight = 0;
        self.trips += 1;
        Transition::Opened { cooldown }
    }

    /// Back to closed, e.g. when the breaker is switched off at run time.
    pub fn reset(&mut self) -> Option<Transition> {
        let was_closed = self.state == CircuitState::Closed;
        self.state = CircuitState::Closed;
        self.consecutive_failures = 0;
        self.probes_in_flight = 0;
        (!was_closed).then_some(Transition::Closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(threshold: u32, probes: u32) -> BreakerConfig {
        BreakerConfig { enabled: true, failure_threshold: threshold, recovery_timeout: Duration::from_secs(10), half_open_max_calls: probes }
    }

    #[test]
    fn full_cycle_with_probe_limit() {
        let c = cfg(3, 2);
        let t0 = Instant::now();
        let mut b = Breaker::default();
        for _ in 0..2 {
            let a = b.admit(&c);
            assert_eq!(b.on_failure(t0, &c, a, None), None);
        }
        // A success resets the consecutive count.
        let a = b.admit(&c);
        b.on_success(a);
        for _ in 0..2 {
            let a = b.admit(&c);
            assert_eq!(b.on_failure(t0, &c, a, None), None);
        }
        let a = b.admit(&c);
        assert_eq!(b.on_failure(t0, &c, a, None), Some(Transition::Opened { cooldown: Duration::from_secs(10) }));
        assert!(!b.can_admit(&c));
        assert_eq!(b.retry_after(t0 + Duration::from_secs(4)), Duration::from_secs(6));
        assert_eq!(b.refresh(t0 + Duration::from_secs(9), &c), None);
        assert_eq!(b.refresh(t0 + Duration::from_secs(10), &c), Some(Transition::HalfOpened));
        // Two probes, not three.
        assert!(b.can_admit(&c));
        let p1 = b.admit(&c);
        let p2 = b.admit(&c);
        assert_eq!((p1, p2), (Admission::Probe, Admission::Probe));
        assert!(!b.can_admit(&c));
        // A cancelled probe frees its slot.
        b.on_neutral(p2);
        assert!(b.can_admit(&c));
        assert_eq!(b.on_success(p1), Some(Transition::Closed));
        assert_eq!(b.state(), CircuitState::Closed);
        assert_eq!(b.trips(), 1);
    }

    #[test]
    fn probe_failure_reopens_and_retry_after_lengthens_cooldown() {
        let c = cfg(1, 1);
        let t0 = Instant::now();
        let mut b = Breaker::default();
        let a = b.admit(&c);
        assert_eq!(b.on_failure(t0, &c, a, Some(Duration::from_secs(30))), Some(Transition::Opened { cooldown: Duration::from_secs(30) }));
        assert_eq!(b.refresh(t0 + Duration::from_secs(10), &c), None, "Retry-After is longer than the recovery timeout");
        assert_eq!(b.refresh(t0 + Duration::from_secs(30), &c), Some(Transition::HalfOpened));
        let p = b.admit(&c);
        let t1 = t0 + Duration::from_secs(31);
        assert_eq!(b.on_failure(t1, &c, p, Some(Duration::from_secs(1))), Some(Transition::Opened { cooldown: Duration::from_secs(10) }));
        assert_eq!(b.retry_after(t1), Duration::from_secs(10));
        assert_eq!(b.trips(), 2);
    }

    #[test]
    fn late_results_of_normal_calls_do_not_move_a_half_open_breaker() {
        let c = cfg(1, 1);
        let t0 = Instant::now();
        let mut b = Breaker::default();
        let before = b.admit(&c); // admitted while closed, finishes late
        let a = b.admit(&c);
        b.on_failure(t0, &c, a, None);
        b.refresh(t0 + Duration::from_secs(10), &c);
        assert_eq!(b.on_success(before), None);
        assert_eq!(b.state(), CircuitState::HalfOpen);
        assert_eq!(b.on_failure(t0, &c, before, None), None);
        assert_eq!(b.state(), CircuitState::HalfOpen);
    }

    #[test]
    fn disabled_breaker_never_opens() {
        let c = BreakerConfig { enabled: false, ..cfg(1, 1) };
        let mut b = Breaker::default();
        for _ in 0..10 {
            let a = b.admit(&c);
            assert_eq!(b.on_failure(Instant::now(), &c, a, None), None);
        }
        assert!(b.can_admit(&c));
    }
}
