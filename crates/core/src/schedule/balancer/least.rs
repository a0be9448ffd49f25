//! Least-connections: the eligible candidate with the fewest calls in flight; ties rotate.
//!
//! Same answer as a scan that starts at the balancer's cursor and keeps the first candidate
//! with the smallest load (the previous implementation, kept as the test reference): among the
//! candidates with the minimum load, the first at or after the cursor, else the first of all.
//! The tree orders slots by `(load, position)`, so its top is the minimum load's first
//! position; when that lies before the cursor, one range query over `cursor..` finds the
//! first one at or after it.
//!
//! The loads are a copy kept up to date through `changed` (a call started or finished).
//! Ineligible candidates met by a pick are parked until `changed` brings them back, so an open
//! breaker or a full member costs one O(log n) step when first met rather than on every pick.
//!
//! Cost: a pick is O(log n) plus O(log n) per parked or avoided candidate it walks past; a
//! load change is O(log n); adding is O(log n) amortised; removing and re-reading all are O(n).

use super::tree::{search, MinTree};
use super::Candidate;

/// `(load, position)` as one integer; `NONE` (no slot) after every slot: it reads the
/// `u32::MAX` kept after the loads, so that looking a load up never branches.
#[inline(always)]
fn key(load: &[u32], a: u32) -> u64 {
    (load[(a as usize).min(load.len() - 1)] as u64) << 32 | a as u64
}

#[inline(always)]
fn before(load: &[u32], a: u32, b: u32) -> bool {
    key(load, a) < key(load, b)
}

#[derive(Debug, Clone)]
pub(super) struct Least {
    /// Per position, then `u32::MAX`.
    load: Vec<u32>,
    tree: MinTree,
}

impl Least {
    pub fn build<C: Candidate>(items: &[C]) -> Self {
        let mut me = Least { load: items.iter().map(|c| c.in_flight()).chain([u32::MAX]).collect(), tree: MinTree::default() };
        me.rebuild();
        me
    }

    fn rebuild(&mut self) {
        let load = &self.load;
        self.tree.rebuild(load.len() - 1, |_| true, |a, b| before(load, a, b));
    }

    pub fn len(&self) -> usize {
        self.load.len() - 1
    }

    pub fn push<C: Candidate>(&mut self, c: &C) {
        self.load.insert(self.len(), c.in_flight());
        let load = &self.load;
        self.tree.push(true, |a, b| before(load, a, b));
    }

    pub fn remove(&mut self, i: usize) {
        self.load.remove(i);
        let load = &self.load;
        self.tree.remove(i, |a, b| before(load, a, b));
    }

    /// Candidate `i`'s load changed, or it may have become eligible: re-reads its load and puts
    /// it (back) in the tree.
    #[inline]
    pub fn changed<C: Candidate>(&mut self, i: usize, c: &C) {
        let n = c.in_flight();
        if n != self.load[i] || !self.tree.contains(i) {
            self.load[i] = n;
            let load = &self.load;
            self.tree.set(i, true, |a, b| before(load, a, b));
        }
    }

    pub fn changed_all<C: Candidate>(&mut self, items: &[C]) {
        for (l, c) in self.load.iter_mut().zip(items) {
            *l = c.in_flight();
        }
        self.rebuild();
    }

    #[cfg(debug_assertions)]
    pub fn parked(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len()).filter(|&i| !self.tree.contains(i))
    }

    /// `(first in line that is not avoided, first in line avoided)`, in line meaning by load,
    /// then cyclically from `cursor`.
    pub fn search<C>(&mut self, cursor: usize, items: &[C], set_aside: &mut Vec<u32>, eligible: &impl Fn(usize, &C) -> bool, avoid: &impl Fn(usize, &C) -> bool) -> (Option<usize>, Option<usize>) {
        let start = cursor % self.len().max(1);
        let load = &self.load;
        let next = |t: &MinTree| {
            let first = t.top()?;
            if first >= start {
                return Some(first);
            }
            // The one at the cursor, when it has the least load (say every candidate is idle).
            if t.contains(start) && load[start] == load[first] {
                return Some(start);
            }
            match t.best_from(start, |a, b| before(load, a, b)) {
                Some(j) if load[j] == load[first] => Some(j),
                _ => Some(first),
            }
        };
        let r = search(&mut self.tree, set_aside, items, next, |a, b| before(load, a, b), eligible, avoid);
        for i in set_aside.drain(..) {
            self.tree.set(i as usize, true, |a, b| before(load, a, b));
        }
        r
    }
}
