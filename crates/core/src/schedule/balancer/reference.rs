//! Test-only references: the previous O(n) balancer (a scan per pick, nginx's smooth weighted
//! round-robin), and an O(n) scan of the weighted schedule `weighted` implements, to check the
//! indexed balancer against.

// The previous implementation, kept as it was.
#![allow(clippy::needless_range_loop)]

use super::{Candidate, Strategy};

/// The balancer as it was before the indexes, unchanged but for the smooth-WRR scores living
/// here rather than in the candidates, and the scheduler's "avoid" rule (try the preferred
/// candidates; all eligible ones when there are none) folded in.
pub struct Scan {
    pub cursor: usize,
    rng: fastrand::Rng,
    pub swrr: Vec<i64>,
}

impl Scan {
    pub fn with_seed(seed: u64) -> Self {
        Scan { cursor: 0, rng: fastrand::Rng::with_seed(seed), swrr: Vec::new() }
    }

    pub fn pick_avoiding<C: Candidate>(&mut self, strategy: &Strategy, items: &[C], eligible: impl Fn(usize, &C) -> bool, avoid: impl Fn(usize, &C) -> bool) -> Option<usize> {
        let prefer = |i: usize, c: &C| eligible(i, c) && !avoid(i, c);
        if (0..items.len()).any(|i| prefer(i, &items[i])) {
            self.pick(strategy, items, prefer)
        } else {
            self.pick(strategy, items, eligible)
        }
    }

    pub fn pick<C: Candidate>(&mut self, strategy: &Strategy, items: &[C], eligible: impl Fn(usize, &C) -> bool) -> Option<usize> {
        let n = items.len();
        self.swrr.resize(n, 0);
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
                    self.swrr[i] += w;
                    let s = self.swrr[i];
                    if best.is_none_or(|b| s > self.swrr[b]) {
                        best = Some(i);
                    }
                }
                match best {
                    Some(b) => {
                        self.swrr[b] -= total;
                        Some(b)
                    }
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

/// The weighted schedule of `weighted` (WF2Q+) as scans: the same state and the same rules,
/// with every "earliest" found by a pass over the candidates instead of the tree.
pub struct WfqScan {
    pub cursor: usize,
    /// Per candidate: `(w, a, place)`; place 0 due, 1 later, 2 out.
    s: Vec<(u128, u128, u8)>,
    vn: u128,
    vd: u128,
    total: u128,
}

const DUE: u8 = 0;
const LATER: u8 = 1;
const OUT: u8 = 2;

impl WfqScan {
    pub fn new<C: Candidate>(items: &[C]) -> Self {
        let s: Vec<_> = items.iter().map(|c| (c.weight_units() as u128, 0, if c.weight_units() > 0 { DUE } else { OUT })).collect();
        let total = s.iter().map(|x| x.0).sum::<u128>();
        WfqScan { cursor: 0, s, vn: 0, vd: total.max(1), total }
    }

    fn is_due(&self, i: usize) -> bool {
        self.s[i].1 * self.vd <= self.vn * self.s[i].0
    }

    fn due_or_later(&self, i: usize) -> u8 {
        if self.is_due(i) {
            DUE
        } else {
            LATER
        }
    }

    fn retotal(&mut self, add: u128, sub: u128) {
        self.total = self.total + add - sub;
        if self.total == 0 || self.total == self.vd {
            return;
        }
        // ⌈V·W⌉ in steps of 1/W.
        self.vn = (self.vn * self.total).div_ceil(self.vd);
        self.vd = self.total;
    }

    fn catch_up(&mut self, i: usize) {
        let at = self.vn * self.s[i].0 / self.vd;
        self.s[i].1 = self.s[i].1.max(at);
    }

    fn earliest(&self, place: u8) -> Option<usize> {
        let key = |i: usize| if place == DUE { self.s[i].1 + 1 } else { self.s[i].1 };
        (0..self.s.len()).filter(|&i| self.s[i].2 == place).min_by(|&x, &y| (key(x) * self.s[y].0).cmp(&(key(y) * self.s[x].0)).then(x.cmp(&y)))
    }

    fn advance(&mut self, nothing_set_aside: bool) {
        loop {
            match self.earliest(LATER) {
                Some(j) if self.is_due(j) => self.s[j].2 = DUE,
                Some(j) if nothing_set_aside && self.earliest(DUE).is_none() => {
                    self.vn = self.vn.max((self.s[j].1 * self.vd).div_ceil(self.s[j].0));
                }
                _ => return,
            }
        }
    }

    pub fn push<C: Candidate>(&mut self, c: &C) {
        let w = c.weight_units() as u128;
        self.s.push((w, 0, OUT));
        if w > 0 {
            let i = self.s.len() - 1;
            self.retotal(w, 0);
            self.catch_up(i);
            self.s[i].2 = self.due_or_later(i);
        }
    }

    pub fn remove(&mut self, i: usize) {
        let (w, _, p) = self.s.remove(i);
        if w > 0 && p != OUT {
            self.retotal(0, w);
        }
    }

    pub fn changed<C: Candidate>(&mut self, i: usize, c: &C) {
        let w = c.weight_units() as u128;
        let (ow, a, p) = self.s[i];
        let scheduled = p != OUT;
        if w != ow {
            self.s[i] = (w, (a * w).checked_div(ow).unwrap_or(0), p);
            self.retotal(w, if scheduled { ow } else { 0 });
            if w == 0 {
                self.s[i].2 = OUT;
                return;
            }
        } else if w == 0 || scheduled {
            return;
        } else {
            self.retotal(w, 0);
        }
        self.catch_up(i);
        self.s[i].2 = self.due_or_later(i);
    }

    pub fn changed_all<C: Candidate>(&mut self, items: &[C]) {
        for (i, c) in items.iter().enumerate() {
            self.changed(i, c);
        }
    }

    pub fn pick_avoiding<C: Candidate>(&mut self, items: &[C], eligible: impl Fn(usize, &C) -> bool, avoid: impl Fn(usize, &C) -> bool) -> Option<usize> {
        let n = items.len();
        let mut set_aside = Vec::new();
        let mut fallback = None;
        let mut found = None;
        'phases: for place in [DUE, LATER] {
            loop {
                if place == DUE {
                    self.advance(set_aside.is_empty());
                }
                let Some(i) = self.earliest(place) else { break };
                if !eligible(i, &items[i]) {
                    self.s[i].2 = OUT;
                    self.retotal(0, self.s[i].0);
                } else if avoid(i, &items[i]) {
                    fallback.get_or_insert(i);
                    set_aside.push(i);
                    self.s[i].2 = OUT;
                } else {
                    found = Some(i);
                    break 'phases;
                }
            }
            if set_aside.is_empty() {
                break;
            }
        }
        // Weight 0 only when no weighted candidate can be chosen; avoided ones last.
        let in_turn = |cursor: usize, ok: &dyn Fn(usize) -> bool| (0..n).map(|k| (cursor + k) % n).find(|&i| items[i].weight_units() <= 0 && ok(i));
        let mut pick = found;
        let mut zero = None;
        if found.is_none() && self.s.iter().any(|x| x.0 == 0) {
            let start = self.cursor % n.max(1);
            let z = in_turn(start, &|i| eligible(i, &items[i]) && !avoid(i, &items[i]));
            let za = in_turn(start, &|i| eligible(i, &items[i]) && avoid(i, &items[i]));
            zero = z.or(if fallback.is_none() { za } else { None });
        }
        if zero.is_none() {
            pick = pick.or(fallback);
        }
        if let Some(i) = pick {
            self.s[i].1 += 1;
            self.vn += 1;
            self.s[i].2 = self.due_or_later(i);
        }
        for j in set_aside {
            if Some(j) != pick {
                self.catch_up(j);
                self.s[j].2 = self.due_or_later(j);
            }
        }
        if let Some(z) = zero {
            self.cursor = z + 1;
            return Some(z);
        }
        pick
    }
}
