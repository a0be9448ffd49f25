//! Picks one candidate among the eligible ones.
//!
//! Round-robin and random are O(1) when the next candidate in line is eligible (a walk past
//! the ineligible ones otherwise). Weighted and least-connections keep an index of the
//! candidates (`weighted`, `least`: a tournament tree, `tree`) so that a pick is O(log n) at
//! any number of candidates; the index is built for the strategy in use on its first pick and
//! kept current through `push`, `remove`, `changed` and `changed_all`, which the owner calls
//! when candidates are added, removed, or change in a way that matters: a call started or
//! finished, an open breaker half-opened or closed, options changed, the configuration
//! changed. Nothing allocates per pick; cost never depends on traffic.

mod least;
#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;
mod tree;
mod weighted;

use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    RoundRobin,
    Random,
    /// Weighted round-robin: over any window of Σweight picks every candidate is chosen
    /// exactly in proportion to its weight, interleaved rather than bursty (WF2Q+ on a virtual
    /// clock, see `weighted`).
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
}

/// The index kept for the strategy in use.
#[derive(Debug, Clone)]
enum Index {
    None,
    Weighted(weighted::Weighted),
    Least(least::Least),
}

pub struct Balancer {
    cursor: usize,
    rng: fastrand::Rng,
    index: Index,
    /// Scratch space for the candidates a pick passes over because the request avoids them.
    set_aside: Vec<u32>,
}

impl Default for Balancer {
    fn default() -> Self {
        Balancer::with_rng(fastrand::Rng::new())
    }
}

impl Balancer {
    pub fn with_seed(seed: u64) -> Self {
        Balancer::with_rng(fastrand::Rng::with_seed(seed))
    }

    fn with_rng(rng: fastrand::Rng) -> Self {
        Balancer { cursor: 0, rng, index: Index::None, set_aside: Vec::new() }
    }

    /// The index of the chosen candidate, or `None` when none is eligible. `Custom` strategies
    /// are resolved by the caller; here they fall back to round-robin.
    ///
    /// `items` must be the same candidates, in the same order, that `push` / `remove` /
    /// `changed` described (a different number of them rebuilds the index from scratch).
    /// `eligible` must not turn true for a candidate without a `changed` call for it: weighted
    /// and least-connections park the ineligible candidates they meet until then.
    pub fn pick<C: Candidate>(&mut self, strategy: &Strategy, items: &[C], eligible: impl Fn(usize, &C) -> bool) -> Option<usize> {
        self.pick_avoiding(strategy, items, eligible, |_, _| false)
    }

    /// Like `pick`, but candidates for which `avoid` holds (those a retried request already
    /// failed on) are chosen only when no other eligible candidate is left (as the scheduler
    /// did before: the preferred ones if any, else all eligible ones). Being passed over costs
    /// a candidate what it did before: round-robin's cursor moves past it, and weighted gives it
    /// no credit for the picks it was passed over in (smooth WRR froze its score); it is not
    /// parked.
    pub fn pick_avoiding<C: Candidate>(
        &mut self,
        strategy: &Strategy,
        items: &[C],
        eligible: impl Fn(usize, &C) -> bool,
        avoid: impl Fn(usize, &C) -> bool,
    ) -> Option<usize> {
        let n = items.len();
        if n == 0 {
            return None;
        }
        match strategy {
            // These keep no index (one left from another strategy stays valid: the owner keeps
            // calling the hooks; `changed_all` drops it when the configuration changes).
            Strategy::RoundRobin | Strategy::Custom(_) => self.rotate(items, &eligible, &avoid),
            Strategy::Random => {
                let start = self.rng.usize(..n);
                let (found, fallback) = first_in_line(start, items, &eligible, &avoid);
                found.or(fallback)
            }
            Strategy::Weighted => {
                if !matches!(&self.index, Index::Weighted(w) if w.len() == n) {
                    self.index = Index::Weighted(weighted::Weighted::build(items));
                }
                let Index::Weighted(w) = &mut self.index else { unreachable!() };
                #[cfg(debug_assertions)]
                check_parked(w.parked(), items, &eligible);
                let (found, fallback) = w.search(items, &mut self.set_aside, &eligible, &avoid);
                // Weight-0 candidates are chosen only when no weighted one can be, and then in
                // turn; the avoided ones come last, as with every strategy.
                let mut pick = found;
                let mut zero = None;
                if found.is_none() && w.has_zero_weight() {
                    let is_zero = |i: usize, c: &C| c.weight_units() <= 0 && eligible(i, c);
                    let (z, z_avoided) = first_in_line(self.cursor % n, items, &is_zero, &avoid);
                    zero = z.or(if fallback.is_none() { z_avoided } else { None });
                }
                if zero.is_none() {
                    pick = pick.or(fallback);
                }
                w.serve(pick, &mut self.set_aside);
                if let Some(z) = zero {
                    self.cursor = z + 1;
                    return Some(z);
                }
                pick
            }
            Strategy::LeastConnections => {
                if !matches!(&self.index, Index::Least(l) if l.len() == n) {
                    self.index = Index::Least(least::Least::build(items));
                }
                let Index::Least(l) = &mut self.index else { unreachable!() };
                #[cfg(debug_assertions)]
                check_parked(l.parked(), items, &eligible);
                let (found, fallback) = l.search(self.cursor, items, &mut self.set_aside, &eligible, &avoid);
                let i = found.or(fallback)?;
                self.cursor = i + 1;
                Some(i)
            }
        }
    }

    /// The next eligible candidate from the cursor, preferring those not avoided.
    fn rotate<C>(&mut self, items: &[C], eligible: &impl Fn(usize, &C) -> bool, avoid: &impl Fn(usize, &C) -> bool) -> Option<usize> {
        let (found, fallback) = first_in_line(self.cursor % items.len(), items, eligible, avoid);
        let i = found.or(fallback)?;
        self.cursor = i + 1;
        Some(i)
    }

    /// A candidate was appended to the list.
    pub fn push<C: Candidate>(&mut self, c: &C) {
        match &mut self.index {
            Index::None => {}
            Index::Weighted(w) => w.push(c),
            Index::Least(l) => l.push(c),
        }
    }

    /// Candidate `i` was removed; the later ones moved down one position.
    pub fn remove(&mut self, i: usize) {
        match &mut self.index {
            Index::None => {}
            Index::Weighted(w) => w.remove(i),
            Index::Least(l) => l.remove(i),
        }
    }

    /// Candidate `i` changed: its load or weight, or it may have become eligible again (a call
    /// finished, its breaker half-opened or closed, its options changed). Calling it when
    /// nothing changed is harmless. O(log n); nothing to do for round-robin and random.
    #[inline]
    pub fn changed<C: Candidate>(&mut self, i: usize, c: &C) {
        match &mut self.index {
            Index::None => {}
            Index::Weighted(w) => w.changed(i, c),
            Index::Least(l) => l.changed(i, c),
        }
    }

    /// The configuration changed: any candidate may have, and the strategy may be another one
    /// (whose index, if it keeps one, is built by its first pick; one it does not use is
    /// dropped). O(n).
    pub fn changed_all<C: Candidate>(&mut self, strategy: &Strategy, items: &[C]) {
        match (&mut self.index, strategy) {
            (Index::Weighted(w), Strategy::Weighted) if w.len() == items.len() => w.changed_all(items),
            (Index::Least(l), Strategy::LeastConnections) if l.len() == items.len() => l.changed_all(items),
            _ => self.index = Index::None,
        }
    }
}

/// The first eligible candidate in cyclic order from `start` that is not avoided, and the
/// first eligible avoided one.
#[inline]
fn first_in_line<C>(start: usize, items: &[C], eligible: &impl Fn(usize, &C) -> bool, avoid: &impl Fn(usize, &C) -> bool) -> (Option<usize>, Option<usize>) {
    let n = items.len();
    let mut fallback = None;
    for k in 0..n {
        let i = if start + k >= n { start + k - n } else { start + k };
        if eligible(i, &items[i]) {
            if !avoid(i, &items[i]) {
                return (Some(i), fallback);
            }
            fallback.get_or_insert(i);
        }
    }
    (None, fallback)
}

/// The owner's side of the contract: a parked candidate is not eligible (else a `changed`
/// call is missing and it would be starved). Debug builds only: O(n).
#[cfg(debug_assertions)]
fn check_parked<C>(parked: impl Iterator<Item = usize>, items: &[C], eligible: &impl Fn(usize, &C) -> bool) {
    for i in parked {
        assert!(!eligible(i, &items[i]), "candidate {i} is eligible but parked: a Balancer::changed call is missing");
    }
}
