//! The bounded wait queue: highest priority first, FIFO within a priority. Every operation is
//! O(log n), including removing an entry from the middle (a cancelled or timed-out waiter).

use std::cmp::Reverse;
use std::collections::BTreeMap;

use super::priority::Priority;

/// Identifies one queued entry, for removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueKey(Reverse<u64>, u64);

pub struct WaitQueue<T> {
    entries: BTreeMap<QueueKey, T>,
    next_seq: u64,
}

impl<T> Default for WaitQueue<T> {
    fn default() -> Self {
        WaitQueue { entries: BTreeMap::new(), next_seq: 0 }
    }
}

impl<T> WaitQueue<T> {
    pub fn push(&mut self, priority: Priority, item: T) -> QueueKey {
        let key = QueueKey(Reverse(priority.order_key()), self.next_seq);
        self.next_seq += 1;
        self.entries.insert(key, item);
        key
    }

    /// The entry that must run next.
    pub fn pop(&mut self) -> Option<T> {
        self.entries.pop_first().map(|(_, v)| v)
    }

    /// The same, with the key it was queued under.
    pub fn pop_entry(&mut self) -> Option<(QueueKey, T)> {
        self.entries.pop_first()
    }

    pub fn remove(&mut self, key: QueueKey) -> Option<T> {
        self.entries.remove(&key)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Empties the queue, handing every entry out in run order.
    pub fn drain(&mut self) -> impl Iterator<Item = T> {
        std::mem::take(&mut self.entries).into_values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_order_then_fifo() {
        let mut q = WaitQueue::default();
        q.push(Priority::LOW, "low-1");
        q.push(Priority::HIGH, "high-1");
        q.push(Priority::MEDIUM, "medium-1");
        q.push(Priority::HIGH, "high-2");
        q.push(Priority(1000.0), "numeric-1000");
        q.push(Priority::LOW, "low-2");
        q.push(Priority(-5.0), "negative");
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, ["numeric-1000", "high-1", "high-2", "medium-1", "low-1", "low-2", "negative"]);
    }

    #[test]
    fn removal_from_the_middle() {
        let mut q = WaitQueue::default();
        let keys: Vec<_> = (0..100).map(|i| q.push(Priority((i % 4) as f64), i)).collect();
        for k in keys.iter().step_by(3) {
            assert!(q.remove(*k).is_some());
        }
        assert!(q.remove(keys[0]).is_none(), "already removed");
        assert_eq!(q.len(), 66);
        let mut last: Option<(i32, i32)> = None;
        while let Some(i) = q.pop() {
            assert!(i % 3 != 0, "removed entry {i} came back");
            let cur = (-(i % 4), i);
            if let Some(prev) = last {
                assert!(prev < cur, "order broken: {prev:?} then {cur:?}");
            }
            last = Some(cur);
        }
    }
}
