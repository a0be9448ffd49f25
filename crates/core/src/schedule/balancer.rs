//! Picks one candidate among the eligible ones. Every built-in strategy is O(1) when the next
//! candidate in line is eligible (round-robin, random) or one pass over the candidates
//! (weighted, least-connections), with no allocation; cost never depends on traffic.

use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    RoundRobin,
    Random,
    /// Smooth weighted round-robin (nginx's): over any window of Σweight picks every
    /// candidate is chosen exactly in proportion to its weight, interleaved rather than bursty.
    Weighted,
    /// The candidate with the fewest calls in flight; ties rotate.
    LeastConnections,
    /// A strategy registered from JS under this name.
    Custom(Arc<str>),
}

impl Strategy {
    pub fn parse(name: &str, is_custom: &dyn Fn(&str) -> bool) -> Option<Strategy> {
        Some(match name {
            "round-robin" | "roundRobin" => Strategy::RoundRobin,
            "random" => Strategy::Random,
            "weighted" | "weighted-round-robin" => Strategy::Weighted,
            "least-connections" | "leastConnections" => Strategy::LeastConnections,
            other if is_custom(other) => Strategy::Custom(other.into()),
            _ => return None,
        })
    }

    pub fn name(&self) -> &str {
        match self {
            Strategy::RoundRobin => "round-robin",
            Strategy::Random => "random",
            Strategy::Weighted => "weighted",
            Strategy::LeastConnections => "least-connections",
            Strategy::Custom(n) => n,
        }
    }
}

/// Weights are kept as integers (thousandths) so that weighted picks are exact.
pub fn weight_units(weight: f64) -> i64 {
    (weight.max(0.0) * 1000.0).round().min(1e15) as i64
}

/// What the balancer needs to know about a candidate.
pub trait Candidate {
    fn weight_units(&self) -> i64;
    fn in_flight(&self) -> u32;
    /// The smooth-weighted running score, owned by the candidate.
    fn swrr_score(&mut self) -> &mut i64;
}

pub struct Balancer {
    cursor: usize,
    rng: fastrand::Rng,
}

impl Default for Balancer {
    fn default() -> Self {
        Balancer { cursor: 0, rng: fastrand::Rng::new() }
    }
}

impl Balancer {
    pub fn with_seed(seed: u64) -> Self {
        Balancer { cursor: 0, rng: fastrand::Rng::with_seed(seed) }
    }

    /// The index of the chosen candidate, or `None` when none is eligible. `Custom` strategies
    /// are resolved by the caller; here they fall back to round-robin.
    pub fn pick<C: Candidate>(&mut self, strategy: &Strategy, items: &mut [C], eligible: impl Fn(usize, &C) -> bool) -> Option<usize> {
        let n = items.len();
        if n == 0 {
            return None;
        }
        match strategy {
            Strategy::RoundRobin | Strategy::Custom(_) => self.rotate(items, &eligible),
            Strategy::Random => {
                let start = self.rng.usize(..n);
                (0..n).map(|i| (start + i) % n).find(|&i| eligible(i, &items[i]))
            }
            Strategy::Weighted => {
                let mut total = 0i64;
                let mut best: Option<usize> = None;
                for i in 0..n {
                    let w = items[i].weight_units();
                    if w == 0 || !eligible(i, &items[i]) {
                        continue;
                    }
                    total += w;
                    let score = items[i].swrr_score();
                    *score += w;
                    let s = *score;
                    if best.is_none_or(|b| s > *items[b].swrr_score()) {
                        best = Some(i);
                    }
                }
                match best {
                    Some(b) => {
                        *items[b].swrr_score() -= total;
                        Some(b)
                    }
                    // Every eligible candidate has weight 0: treat them as equal.
                    None => self.rotate(items, &eligible),
                }
            }
            Strategy::LeastConnections => {
                let start = self.cursor % n;
                let mut best: Option<(usize, u32)> = None;
                for k in 0..n {
                    let i = (start + k) % n;
                    if !eligible(i, &items[i]) {
                        continue;
                    }
                    let load = items[i].in_flight();
                    if best.is_none_or(|(_, l)| load < l) {
                        best = Some((i, load));
                        if load == 0 {
                            break;
                        }
                    }
                }
                let (i, _) = best?;
                self.cursor = i + 1;
                Some(i)
            }
        }
    }

    fn rotate<C>(&mut self, items: &[C], eligible: &impl Fn(usize, &C) -> bool) -> Option<usize> {
        let n = items.len();
        let start = self.cursor % n;
        let i = (0..n).map(|k| (start + k) % n).find(|&i| eligible(i, &items[i]))?;
        self.cursor = i + 1;
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct C {
        w: i64,
        load: u32,
        score: i64,
        ok: bool,
    }

    impl Candidate for C {
        fn weight_units(&self) -> i64 {
            self.w
        }
        fn in_flight(&self) -> u32 {
            self.load
        }
        fn swrr_score(&mut self) -> &mut i64 {
            &mut self.score
        }
    }

    fn cands(weights: &[f64]) -> Vec<C> {
        weights.iter().map(|&w| C { w: weight_units(w), load: 0, score: 0, ok: true }).collect()
    }

    fn counts(b: &mut Balancer, s: &Strategy, items: &mut [C], picks: usize) -> Vec<usize> {
        let mut out = vec![0; items.len()];
        for _ in 0..picks {
            out[b.pick(s, items, |_, c| c.ok).unwrap()] += 1;
        }
        out
    }

    #[test]
    fn round_robin_skips_ineligible_in_order() {
        let mut b = Balancer::with_seed(1);
        let mut items = cands(&[1.0, 1.0, 1.0, 1.0]);
        items[2].ok = false;
        let order: Vec<_> = (0..6).map(|_| b.pick(&Strategy::RoundRobin, &mut items, |_, c| c.ok).unwrap()).collect();
        assert_eq!(order, [0, 1, 3, 0, 1, 3]);
        for c in items.iter_mut() {
            c.ok = false;
        }
        assert_eq!(b.pick(&Strategy::RoundRobin, &mut items, |_, c| c.ok), None);
    }

    #[test]
    fn weighted_is_exact_and_interleaved_over_10000_picks() {
        let mut b = Balancer::with_seed(1);
        let mut items = cands(&[5.0, 3.0, 2.0]);
        assert_eq!(counts(&mut b, &Strategy::Weighted, &mut items, 10_000), [5000, 3000, 2000]);
        // Smooth: the heaviest never runs more than twice in a row with 5:3:2.
        let seq: Vec<_> = (0..10).map(|_| b.pick(&Strategy::Weighted, &mut items, |_, _| true).unwrap()).collect();
        assert!(seq.windows(3).all(|w| !(w[0] == 0 && w[1] == 0 && w[2] == 0)), "{seq:?}");
        // Fractional weights are exact too, and weight 0 is never picked.
        let mut items = cands(&[0.5, 1.5, 0.0]);
        assert_eq!(counts(&mut b, &Strategy::Weighted, &mut items, 10_000), [2500, 7500, 0]);
    }

    #[test]
    fn weighted_redistributes_when_a_candidate_is_ineligible() {
        let mut b = Balancer::with_seed(1);
        let mut items = cands(&[1.0, 1.0, 2.0]);
        items[2].ok = false;
        assert_eq!(counts(&mut b, &Strategy::Weighted, &mut items, 1000), [500, 500, 0]);
        let mut zero = cands(&[0.0, 0.0]);
        assert_eq!(counts(&mut b, &Strategy::Weighted, &mut zero, 10), [5, 5]);
    }

    #[test]
    fn least_connections_prefers_idle_and_rotates_ties() {
        let mut b = Balancer::with_seed(1);
        let mut items = cands(&[1.0, 1.0, 1.0]);
        items[0].load = 3;
        items[1].load = 1;
        items[2].load = 2;
        assert_eq!(b.pick(&Strategy::LeastConnections, &mut items, |_, _| true), Some(1));
        for c in items.iter_mut() {
            c.load = 0;
        }
        let seq: Vec<_> = (0..6).map(|_| b.pick(&Strategy::LeastConnections, &mut items, |_, _| true).unwrap()).collect();
        assert_eq!(seq, [2, 0, 1, 2, 0, 1]);
    }

    #[test]
    fn random_covers_all_and_respects_eligibility() {
        let mut b = Balancer::with_seed(7);
        let mut items = cands(&[1.0; 4]);
        items[1].ok = false;
        let c = counts(&mut b, &Strategy::Random, &mut items, 4000);
        assert_eq!(c[1], 0);
        assert!(c.iter().enumerate().filter(|(i, _)| *i != 1).all(|(_, &n)| n > 800), "{c:?}");
    }
}
