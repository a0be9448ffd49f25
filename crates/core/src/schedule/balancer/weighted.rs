//! Weighted round-robin as WF2Q+ (worst-case fair weighted fair queueing, Bennett & Zhang):
//! earliest virtual finish time first among the candidates whose virtual start time has come,
//! exact in integers.
//!
//! Every candidate of weight `w` (integer thousandths, `weight_units`) has a virtual start
//! `S = a/w` and finish `F = (a+1)/w`, where `a` counts its turns (plus where it joined). The
//! virtual clock `V` advances by `1/W` per pick, `W` being the total weight in the schedule.
//! A candidate is due when `S ≤ V`; a pick serves the due candidate with the earliest `F`
//! (ties: the lower position), whose `S` then moves to its `F`.
//!
//! Why this keeps the old (nginx smooth-WRR) guarantees:
//! * Exact proportions: WF2Q keeps every candidate's count within one pick of its exact share
//!   `t·w/W` at every point `t` of the sequence. At `t = W/gcd` the shares are integers, so
//!   every candidate has had exactly its share, every start is back at the clock, and the
//!   sequence repeats: any window of `Σw/gcd` consecutive picks holds every candidate exactly
//!   in proportion to its weight.
//! * Interleaved: a candidate is never served ahead of its share (it waits until `S ≤ V`), nor
//!   more than one pick behind it, so picks of a heavy candidate are spread out and the light
//!   ones fall in between. (Plain earliest-deadline-first would be O(log n) too, but runs a heavy
//!   candidate in bursts when several light ones share a weight: 10:1:1:1:1:1 gives ten in a
//!   row. Smooth WRR does not, and neither does WF2Q: over thousands of random weight sets it
//!   never runs a candidate longer than smooth WRR, see the tests.) The order is not smooth
//!   WRR's pick for pick (5:3:2 gives `abacababac` instead of `abcaabacba`): the old rule
//!   moves every candidate's score on every pick, which no O(log n) index can follow.
//! * Exact arithmetic: starts, finishes and the clock are fractions compared by
//!   cross-multiplying in `u128` (exact for up to 2^20 candidates at the largest weight, more at
//!   smaller ones). The clock and every start are shifted back by whole units now and then, so
//!   the numbers stay bounded; an integer shift keeps every comparison.
//! * Skipped candidates get no catch-up burst (smooth WRR froze a skipped candidate's score):
//!   ineligible ones (open breaker, at their own limit, disabled) are taken out when a pick
//!   meets them ("parked"), leave the total weight, and come back through `changed`; ones the
//!   request avoids (it already failed on them) are put back once the pick is made. Either way a
//!   candidate behind the clock comes back with its start moved up to the clock (to its grid
//!   point just before it): at most one pick's worth of credit, and nothing gained by leaving.
//!   New candidates and new weights start at the clock too.
//!
//! The index is one tournament tree over the positions holding two winners per node: among
//! the candidates not known to be ahead of the clock, the earliest finish; among those found
//! ahead, the earliest start (the next to become due). A pick takes the first, moving it to the
//! second if it turns out to be ahead. Cost: a pick is O(log n): the served candidate's finish
//! moves, and now and then (when a candidate runs ahead) one candidate moves between the two;
//! plus O(log n) per parked or avoided candidate it walks past. Changes are O(log n); adding is
//! O(log n) amortised; removing and re-reading all are O(n).

use super::tree::{better as pick, NONE};
use super::Candidate;

/// The clock is shifted back once it has run this many units of virtual time (each unit is
/// `W` picks, so about 64 picks per candidate between shifts: O(1) amortised). Starts stay
/// within a unit or so of the clock, so `a < 2^57`.
const RENORM: u128 = 64;

#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Weight units; 0 never takes part (zero-weight candidates are the balancer's fallback).
    w: u64,
    /// Start `a/w`, finish `(a+1)/w`.
    a: u64,
}

/// Where a slot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// In the schedule, ordered by finish: due (`S ≤ V`), or not known yet to be ahead of the
    /// clock (a pick that meets it there moves it to `Later`: most candidates never run ahead,
    /// so most never make that trip).
    Due,
    /// In the schedule, ordered by start: ahead of the clock when last looked at (moved back to
    /// `Due` by the first pick after its start has come).
    Later,
    /// Not in the tree: weight 0, parked, or set aside for the current pick.
    Out,
}

/// What `NONE` (no slot) compares as: after every slot, in both orders (`a+1 < 2^57 ≤ 2^62`).
/// Kept as the last element of `slots`, so that looking a slot up never branches.
const NOBODY: Slot = Slot { w: 1, a: 1 << 62 };

#[inline(always)]
fn slot(slots: &[Slot], x: u32) -> Slot {
    slots[(x as usize).min(slots.len() - 1)]
}

/// Slot `x` finishes before slot `y` (then: lower position).
#[inline(always)]
fn finishes_first(slots: &[Slot], x: u32, y: u32) -> bool {
    let (p, q) = (slot(slots, x), slot(slots, y));
    // `a + 1` cannot overflow (`a < 2^57`, `NOBODY` 2^62): one 64×64 multiplication each.
    let l = (p.a + 1) as u128 * q.w as u128;
    let r = (q.a + 1) as u128 * p.w as u128;
    // Without short-circuits: the outcome is data-dependent, a select beats a branch.
    (l < r) | ((l == r) & (x < y))
}

/// Slot `x` starts before slot `y` (then: lower position).
#[inline(always)]
fn starts_first(slots: &[Slot], x: u32, y: u32) -> bool {
    let (p, q) = (slot(slots, x), slot(slots, y));
    let l = p.a as u128 * q.w as u128;
    let r = q.a as u128 * p.w as u128;
    (l < r) | ((l == r) & (x < y))
}

fn units<C: Candidate>(c: &C) -> u64 {
    c.weight_units().max(0) as u64
}

#[derive(Debug, Clone)]
pub(super) struct Weighted {
    /// Per position, then `NOBODY`.
    slots: Vec<Slot>,
    place: Vec<Place>,
    /// Leaves (a power of two).
    size: usize,
    /// Per node: the due slot below it with the earliest finish (`NONE` if none).
    due: Vec<u32>,
    /// Per node: the not-yet-due slot below it with the earliest start.
    later: Vec<u32>,
    /// The clock `V = vn / vd`; `vd` is `W` whenever `W > 0`.
    vn: u128,
    vd: u128,
    /// `W`: the total weight in the schedule (due, later, and set aside by the current pick).
    total: u128,
    /// Slots of weight 0.
    zero: usize,
}

impl Weighted {
    /// A fresh schedule: every candidate starting at 0, the clock at 0.
    pub fn build<C: Candidate>(items: &[C]) -> Self {
        let slots: Vec<Slot> = items.iter().map(|c| Slot { w: units(c), a: 0 }).chain([NOBODY]).collect();
        let place = items.iter().map(|c| if units(c) > 0 { Place::Due } else { Place::Out }).collect();
        let mut me = Weighted {
            zero: items.iter().filter(|c| units(*c) == 0).count(),
            total: items.iter().map(|c| units(c) as u128).sum(),
            slots,
            place,
            size: 0,
            due: Vec::new(),
            later: Vec::new(),
            vn: 0,
            vd: 1,
        };
        me.vd = me.total.max(1);
        me.rebuild();
        me
    }

    pub fn len(&self) -> usize {
        self.place.len()
    }

    /// Whether some candidate has weight 0.
    pub fn has_zero_weight(&self) -> bool {
        self.zero > 0
    }

    // ----- the tree -------------------------------------------------------------------------

    fn rebuild(&mut self) {
        let n = self.place.len();
        assert!(n < NONE as usize, "too many candidates");
        self.size = n.next_power_of_two();
        self.due.clear();
        self.due.resize(2 * self.size, NONE);
        self.later.clear();
        self.later.resize(2 * self.size, NONE);
        for i in 0..n {
            match self.place[i] {
                Place::Due => self.due[self.size + i] = i as u32,
                Place::Later => self.later[self.size + i] = i as u32,
                Place::Out => {}
            }
        }
        let slots = &self.slots;
        for k in (1..self.size).rev() {
            self.due[k] = pick(self.due[2 * k], self.due[2 * k + 1], &|x, y| finishes_first(slots, x, y));
            self.later[k] = pick(self.later[2 * k], self.later[2 * k + 1], &|x, y| starts_first(slots, x, y));
        }
    }

    /// Puts slot `i` at `p` (or re-sorts it after its start moved). O(log n): per level, one
    /// comparison with the sibling subtree in each order the move concerns.
    fn put(&mut self, i: usize, p: Place) {
        let was = self.place[i];
        self.place[i] = p;
        let slots = &self.slots;
        if was == Place::Due || p == Place::Due {
            Self::walk(&mut self.due, self.size + i, if p == Place::Due { i as u32 } else { NONE }, &|x, y| finishes_first(slots, x, y));
        }
        if was == Place::Later || p == Place::Later {
            Self::walk(&mut self.later, self.size + i, if p == Place::Later { i as u32 } else { NONE }, &|x, y| starts_first(slots, x, y));
        }
    }

    /// Sets leaf `k` to `v` and recomputes its ancestors: one comparison per level, against the
    /// sibling subtree's winner.
    #[inline(always)]
    fn walk(nodes: &mut [u32], mut k: usize, mut v: u32, first: &impl Fn(u32, u32) -> bool) {
        nodes[k] = v;
        while k > 1 {
            v = pick(v, nodes[k ^ 1], first);
            k >>= 1;
            nodes[k] = v;
        }
    }

    fn top(v: &[u32]) -> Option<usize> {
        match v.get(1) {
            Some(&i) if i != NONE => Some(i as usize),
            _ => None,
        }
    }

    // ----- the clock --------------------------------------------------------------------------

    /// `S ≤ V` for slot `i`: `a/w ≤ vn/vd`.
    #[inline]
    fn is_due(&self, i: usize) -> bool {
        let s = self.slots[i];
        s.a as u128 * self.vd <= self.vn * s.w as u128
    }

    /// The place slot `i` (in the schedule) belongs in.
    fn due_or_later(&self, i: usize) -> Place {
        if self.is_due(i) {
            Place::Due
        } else {
            Place::Later
        }
    }

    /// The total weight changed by `+add −sub`: the clock is re-expressed in `1/W` steps,
    /// rounded up (it never goes back, so whatever was due stays due).
    fn retotal(&mut self, add: u64, sub: u64) {
        self.total = self.total + add as u128 - sub as u128;
        if self.total == 0 || self.total == self.vd {
            return;
        }
        let (q, r) = (self.vn / self.vd, self.vn % self.vd);
        let frac = match r.checked_mul(self.total) {
            Some(x) => x.div_ceil(self.vd),
            // Beyond u128 (huge weights): a float rounding up; only monotonicity matters here.
            None => ((r as f64 / self.vd as f64) * self.total as f64).ceil() as u128 + 1,
        };
        self.vn = q * self.total + frac.min(self.total);
        self.vd = self.total;
    }

    /// Moves slot `i`'s start up to the clock if it is behind: to its grid point at or just
    /// before the clock, `⌊V·w⌋`.
    fn catch_up(&mut self, i: usize) {
        let w = self.slots[i].w as u128;
        let at = (self.vn * w / self.vd) as u64;
        self.slots[i].a = self.slots[i].a.max(at);
    }

    /// Moves the slots waiting in `Later` whose start has come back to `Due`; with nothing in
    /// `Due` and nothing set aside, first moves the clock to the earliest start (WF2Q+'s
    /// `V = max(V, min S)`: work-conserving).
    fn advance(&mut self, nothing_set_aside: bool) {
        loop {
            match Self::top(&self.later) {
                Some(j) if self.is_due(j) => self.put(j, Place::Due),
                Some(j) if nothing_set_aside && Self::top(&self.due).is_none() => {
                    let s = self.slots[j];
                    self.vn = self.vn.max((s.a as u128 * self.vd).div_ceil(s.w as u128));
                }
                _ => return,
            }
        }
    }

    // ----- the owner's hooks -----------------------------------------------------------------

    pub fn push<C: Candidate>(&mut self, c: &C) {
        let w = units(c);
        let i = self.place.len();
        self.slots.insert(i, Slot { w, a: 0 });
        self.place.push(Place::Out);
        if i >= self.size {
            self.rebuild();
        }
        if w == 0 {
            self.zero += 1;
        } else {
            self.retotal(w, 0);
            self.catch_up(i);
            self.put(i, self.due_or_later(i));
        }
    }

    pub fn remove(&mut self, i: usize) {
        let s = self.slots.remove(i);
        let p = self.place.remove(i);
        if s.w == 0 {
            self.zero -= 1;
        } else if p != Place::Out {
            self.retotal(0, s.w);
        }
        self.rebuild();
    }

    /// Candidate `i` may have become eligible, or its weight changed (see the module notes).
    pub fn changed<C: Candidate>(&mut self, i: usize, c: &C) {
        if let Some(p) = self.update(i, units(c)) {
            self.put(i, p);
        }
    }

    /// Updates slot `i` for weight `w`, bringing it back if parked; its new place if it moves.
    fn update(&mut self, i: usize, w: u64) -> Option<Place> {
        let s = self.slots[i];
        let scheduled = self.place[i] != Place::Out;
        if w != s.w {
            self.zero = self.zero + (w == 0) as usize - (s.w == 0) as usize;
            // Keep the start (rounded down on the new grid), at the clock at the latest.
            let a = if s.w == 0 { 0 } else { (s.a as u128 * w as u128 / s.w as u128) as u64 };
            self.slots[i] = Slot { w, a };
            self.retotal(w, if scheduled { s.w } else { 0 });
            if w == 0 {
                return Some(Place::Out);
            }
        } else if w == 0 || scheduled {
            return None;
        } else {
            self.retotal(w, 0);
        }
        self.catch_up(i);
        Some(self.due_or_later(i))
    }

    /// Everything may have changed (a configuration update): re-reads every candidate and
    /// brings back the parked ones. O(n).
    pub fn changed_all<C: Candidate>(&mut self, items: &[C]) {
        for (i, c) in items.iter().enumerate() {
            if let Some(p) = self.update(i, units(c)) {
                self.place[i] = p;
            }
        }
        self.rebuild();
    }

    /// Slots of positive weight that are parked.
    #[cfg(debug_assertions)]
    pub fn parked(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.place.len()).filter(|&i| self.slots[i].w > 0 && self.place[i] == Place::Out)
    }

    // ----- picking ----------------------------------------------------------------------------

    fn park(&mut self, i: usize) {
        self.put(i, Place::Out);
        self.retotal(0, self.slots[i].w);
    }

    /// The positive-weight candidates in turn: `(first that is not avoided, first avoided)`.
    /// Due ones first, by finish; then, if only avoided ones were due, the not-yet-due ones by
    /// start (a preferred candidate served a little early rather than an avoided one). The
    /// avoided ones stay in `set_aside` until `serve`.
    pub fn search<C>(&mut self, items: &[C], set_aside: &mut Vec<u32>, eligible: &impl Fn(usize, &C) -> bool, avoid: &impl Fn(usize, &C) -> bool) -> (Option<usize>, Option<usize>) {
        let mut fallback = None;
        for due in [true, false] {
            loop {
                if due {
                    self.advance(set_aside.is_empty());
                }
                let Some(i) = Self::top(if due { &self.due } else { &self.later }) else { break };
                if due && !self.is_due(i) {
                    self.put(i, Place::Later); // ahead of the clock
                } else if !eligible(i, &items[i]) {
                    self.park(i);
                } else if avoid(i, &items[i]) {
                    fallback.get_or_insert(i);
                    set_aside.push(i as u32);
                    self.put(i, Place::Out);
                } else {
                    return (Some(i), fallback);
                }
            }
            if set_aside.is_empty() {
                break;
            }
        }
        (None, fallback)
    }

    /// Serves candidate `i` if any (its start moves to its finish, the clock one step on),
    /// then puts back the avoided candidates the search passed over, caught up to the clock.
    pub fn serve(&mut self, i: Option<usize>, set_aside: &mut Vec<u32>) {
        if let Some(i) = i {
            self.slots[i].a += 1;
            self.vn += 1;
            self.put(i, Place::Due); // ahead or not: found out when it comes up
        }
        for j in set_aside.drain(..) {
            let j = j as usize;
            if Some(j) != i {
                self.catch_up(j);
                self.put(j, self.due_or_later(j));
            }
        }
        if self.vn >= RENORM * self.vd {
            self.shift();
        }
    }

    /// Moves the clock and every start back by whole units: as many as the clock has run,
    /// and no more than the earliest start in the schedule (exact: `a/w − m = (a − m·w)/w`;
    /// candidates just behind the clock stay just behind it). A parked one that was further
    /// behind is clamped at 0, which catching up on return makes no difference to. O(n), once
    /// per `RENORM − 1` or so units of virtual time.
    fn shift(&mut self) {
        let mut m = self.vn / self.vd;
        for (s, p) in self.slots.iter().zip(&self.place) {
            if *p != Place::Out {
                m = m.min(s.a as u128 / s.w as u128);
            }
        }
        let n = self.place.len();
        for s in self.slots[..n].iter_mut() {
            s.a = s.a.saturating_sub((m * s.w as u128) as u64);
        }
        self.vn -= m * self.vd;
    }
}
