//! A slab that never grows past the capacity it was made with.
//!
//! The driver's connection table is one: its keys index the worker's slot
//! table too, whose slots hold memory the kernel reads (the timer's
//! timespecs) while an SQE that points into them waits in the ring. Were
//! the keys to pass `max_connections`, that table would have to grow and
//! move every slot under those pointers, so the bound is checked here on
//! every insert, not assumed: a full slab gives no [`VacantEntry`] and the
//! connection is refused. The server-wide cap (`ConnCap`) is claimed
//! first and keeps each worker below the capacity, so a refusal here means
//! the two disagree, not that a client got lucky.

use std::ops::{Index, IndexMut};

use slab::{Slab, VacantEntry};

/// INVARIANT: `slots.len() <= capacity` and `slots` was allocated with
/// room for `capacity`, so no insert reallocates and a slot's address
/// is fixed from insert to remove.
pub(crate) struct FixedSlab<T> {
    slots: Slab<T>,
    capacity: usize,
}

impl<T> FixedSlab<T> {
    /// Allocates every slot now, so none ever moves.
    pub fn with_capacity(capacity: usize) -> FixedSlab<T> {
        FixedSlab {
            slots: Slab::with_capacity(capacity),
            capacity,
        }
    }

    /// The next free slot, or `None` when all `capacity` are taken.
    pub fn vacant_entry(&mut self) -> Option<VacantEntry<'_, T>> {
        // `Slab::capacity` may exceed what was asked for; the bound is ours.
        (self.slots.len() < self.capacity).then(|| self.slots.vacant_entry())
    }

    pub fn get(&self, key: usize) -> Option<&T> {
        self.slots.get(key)
    }

    pub fn get_mut(&mut self, key: usize) -> Option<&mut T> {
        self.slots.get_mut(key)
    }

    /// Takes the value out of slot `key`, if it is occupied.
    pub fn try_remove(&mut self, key: usize) -> Option<T> {
        self.slots.try_remove(key)
    }

    pub fn contains(&self, key: usize) -> bool {
        self.slots.contains(key)
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn iter(&self) -> slab::Iter<'_, T> {
        self.slots.iter()
    }
}

impl<T> Index<usize> for FixedSlab<T> {
    type Output = T;

    fn index(&self, key: usize) -> &T {
        &self.slots[key]
    }
}

impl<T> IndexMut<usize> for FixedSlab<T> {
    fn index_mut(&mut self, key: usize) -> &mut T {
        &mut self.slots[key]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inserts `value` and returns its key, or `None` when full.
    fn put<T>(slab: &mut FixedSlab<T>, value: T) -> Option<usize> {
        let entry = slab.vacant_entry()?;
        let key = entry.key();
        entry.insert(value);
        Some(key)
    }

    #[test]
    fn a_full_slab_refuses_and_a_freed_slot_is_reused() {
        let mut slab = FixedSlab::with_capacity(2);
        let a = put(&mut slab, 'a').expect("room");
        let b = put(&mut slab, 'b').expect("room");
        assert_eq!(put(&mut slab, 'x'), None, "a third slot past capacity 2");
        assert_eq!(slab.try_remove(a), Some('a'));
        let c = put(&mut slab, 'c').expect("room after a remove");
        assert_eq!(c, a);
        assert_eq!((slab[b], slab[c]), ('b', 'c'));
        assert_eq!(put(&mut slab, 'x'), None);
    }

    #[test]
    fn filling_to_capacity_never_reallocates() {
        let mut slab = FixedSlab::with_capacity(1000);
        // The address alone could survive a realloc that grew in place;
        // the storage's own capacity says whether one happened.
        let reserved = slab.slots.capacity();
        assert!(reserved >= 1000, "room for every slot from the start");
        let first = put(&mut slab, [0u64; 4]).unwrap();
        let address = std::ptr::from_ref(&slab[first]);
        for _ in 1..1000 {
            put(&mut slab, [1; 4]).expect("room below capacity");
        }
        assert_eq!(slab.slots.capacity(), reserved);
        assert_eq!(std::ptr::from_ref(&slab[first]), address);
        assert_eq!(put(&mut slab, [2; 4]), None);
    }
}
