//! A tournament tree over candidate slots: the best present slot in O(1), a slot's key change
//! or presence change in O(log n), the best slot at or after a position in O(log n).
//!
//! Slots are candidate positions `0..len`. The order is supplied by the caller as `less(a, b)`
//! ("slot `a` comes before slot `b`"); it must be a strict total order, so callers break key
//! ties by position. That makes every answer deterministic and independent of the order in
//! which the tree was updated. `less` must also accept `NONE` (an empty subtree) and put it
//! after every slot: then choosing between two subtrees is one comparison and a select, with
//! no branch on data (whose outcome would be mispredicted half the time).

/// An empty leaf or subtree.
pub(super) const NONE: u32 = u32::MAX;

#[derive(Debug, Default, Clone)]
pub(super) struct MinTree {
    /// Slots `0..len` exist; leaves `len..size` are always empty.
    len: usize,
    /// Leaves, a power of two (0 before the first build).
    size: usize,
    /// `nodes[size + i]` is `i` when slot `i` is present, else `NONE`; `nodes[k]` (k ≥ 1) is
    /// the best present slot below node `k`. `nodes[0]` is unused.
    nodes: Vec<u32>,
}

#[inline(always)]
pub(super) fn better(a: u32, b: u32, less: &impl Fn(u32, u32) -> bool) -> u32 {
    if less(b, a) {
        b
    } else {
        a
    }
}

impl MinTree {
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Rebuilds for `len` slots; `present(i)` says which take part. O(len).
    pub fn rebuild(&mut self, len: usize, present: impl Fn(usize) -> bool, less: impl Fn(u32, u32) -> bool) {
        assert!(len < NONE as usize, "too many candidates");
        self.len = len;
        self.size = len.next_power_of_two();
        self.nodes.clear();
        self.nodes.resize(2 * self.size, NONE);
        for i in 0..len {
            if present(i) {
                self.nodes[self.size + i] = i as u32;
            }
        }
        self.recompute(&less);
    }

    fn recompute(&mut self, less: &impl Fn(u32, u32) -> bool) {
        for k in (1..self.size).rev() {
            self.nodes[k] = better(self.nodes[2 * k], self.nodes[2 * k + 1], less);
        }
    }

    /// The best present slot.
    #[inline]
    pub fn top(&self) -> Option<usize> {
        // With one leaf the root is the leaf itself (size 1: nodes[1]).
        match self.nodes.get(1) {
            Some(&w) if w != NONE => Some(w as usize),
            _ => None,
        }
    }

    #[inline]
    pub fn contains(&self, i: usize) -> bool {
        self.nodes[self.size + i] != NONE
    }

    /// Puts slot `i` in or takes it out, or re-sorts it after its key changed. O(log n): one
    /// comparison per level, against the sibling subtree's best.
    #[inline]
    pub fn set(&mut self, i: usize, present: bool, less: impl Fn(u32, u32) -> bool) {
        debug_assert!(i < self.len);
        let mut k = self.size + i;
        let mut w = if present { i as u32 } else { NONE };
        self.nodes[k] = w;
        while k > 1 {
            w = better(w, self.nodes[k ^ 1], &less);
            k >>= 1;
            self.nodes[k] = w;
        }
    }

    /// Appends slot `len`. O(log n), or O(n) when the leaves double.
    pub fn push(&mut self, present: bool, less: impl Fn(u32, u32) -> bool) {
        if self.len == self.size {
            let was: Vec<bool> = (0..self.len).map(|i| self.contains(i)).collect();
            let len = self.len + 1;
            self.rebuild(len, |i| i < was.len() && was[i], &less);
            if present {
                self.set(len - 1, true, less);
            }
        } else {
            self.len += 1;
            self.set(self.len - 1, present, less);
        }
    }

    /// Removes slot `i`; later slots move down one position (as in `Vec::remove`). O(n).
    pub fn remove(&mut self, i: usize, less: impl Fn(u32, u32) -> bool) {
        debug_assert!(i < self.len);
        for j in i..self.len - 1 {
            let next = self.nodes[self.size + j + 1];
            self.nodes[self.size + j] = if next == NONE { NONE } else { j as u32 };
        }
        self.nodes[self.size + self.len - 1] = NONE;
        self.len -= 1;
        self.recompute(&less);
    }

    /// The best present slot among `from..len`. O(log n).
    pub fn best_from(&self, from: usize, less: impl Fn(u32, u32) -> bool) -> Option<usize> {
        let (mut l, mut r) = (self.size + from, self.size + self.len);
        let mut best = NONE;
        while l < r {
            if l & 1 == 1 {
                best = better(best, self.nodes[l], &less);
                l += 1;
            }
            if r & 1 == 1 {
                r -= 1;
                best = better(best, self.nodes[r], &less);
            }
            l >>= 1;
            r >>= 1;
        }
        (best != NONE).then_some(best as usize)
    }
}

/// Walks the present slots best-first (`next` names the current best) to find a pick:
/// ineligible slots are taken out of the tree for good ("parked", until the owner puts them
/// back when they may have become eligible), avoided ones are taken out and listed in
/// `set_aside`, for the caller to put back once it has made its pick. Returns the first
/// eligible slot that is not avoided, and the first eligible avoided one (the pick when there
/// is no other). Cost: O((1 + skipped) log n).
#[allow(clippy::too_many_arguments)]
pub(super) fn search<C>(
    tree: &mut MinTree,
    set_aside: &mut Vec<u32>,
    items: &[C],
    next: impl Fn(&MinTree) -> Option<usize>,
    less: impl Fn(u32, u32) -> bool,
    eligible: &impl Fn(usize, &C) -> bool,
    avoid: &impl Fn(usize, &C) -> bool,
) -> (Option<usize>, Option<usize>) {
    let mut fallback = None;
    let mut found = None;
    while let Some(i) = next(tree) {
        if !eligible(i, &items[i]) {
            tree.set(i, false, &less); // parked
            continue;
        }
        if avoid(i, &items[i]) {
            fallback.get_or_insert(i);
            set_aside.push(i as u32);
            tree.set(i, false, &less);
            continue;
        }
        found = Some(i);
        break;
    }
    (found, fallback)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_agrees_with_a_scan() {
        let mut rng = fastrand::Rng::with_seed(3);
        let mut keys: Vec<u32> = Vec::new();
        let mut present: Vec<bool> = Vec::new();
        let mut t = MinTree::default();
        for _ in 0..5000 {
            match rng.u32(..10) {
                0..=2 => {
                    keys.push(rng.u32(..8));
                    present.push(rng.bool());
                    let k = keys.clone();
                    t.push(*present.last().unwrap(), |a, b| (k.get(a as usize).copied().unwrap_or(u32::MAX), a) < (k.get(b as usize).copied().unwrap_or(u32::MAX), b));
                }
                3 if !keys.is_empty() => {
                    let i = rng.usize(..keys.len());
                    keys.remove(i);
                    present.remove(i);
                    let k = keys.clone();
                    t.remove(i, |a, b| (k.get(a as usize).copied().unwrap_or(u32::MAX), a) < (k.get(b as usize).copied().unwrap_or(u32::MAX), b));
                }
                _ if !keys.is_empty() => {
                    let i = rng.usize(..keys.len());
                    keys[i] = rng.u32(..8);
                    present[i] = rng.bool();
                    let k = keys.clone();
                    t.set(i, present[i], |a, b| (k.get(a as usize).copied().unwrap_or(u32::MAX), a) < (k.get(b as usize).copied().unwrap_or(u32::MAX), b));
                }
                _ => {}
            }
            assert_eq!(t.len(), keys.len());
            let scan = |from: usize| (from..keys.len()).filter(|&i| present[i]).min_by_key(|&i| (keys[i], i));
            assert_eq!(t.top(), scan(0));
            let from = rng.usize(..=keys.len());
            let k = keys.clone();
            assert_eq!(t.best_from(from, |a, b| (k.get(a as usize).copied().unwrap_or(u32::MAX), a) < (k.get(b as usize).copied().unwrap_or(u32::MAX), b)), scan(from));
        }
    }
}
