//! What a USB core has to say for its PD's log (an enumeration that
//! failed, a device bound, a reset recovery), kept until the PD's loop
//! prints it. The core must not block on its log: when the PD falls
//! behind, the oldest note goes.

use heapless::Deque;

/// The latest `N` notes, oldest first.
pub struct Notes<T, const N: usize>(Deque<T, N>);

impl<T, const N: usize> Notes<T, N> {
    pub const fn new() -> Self {
        Notes(Deque::new())
    }

    /// Keeps `n`, dropping the oldest note if all `N` are taken.
    pub fn push(&mut self, n: T) {
        if self.0.is_full() {
            self.0.pop_front();
        }
        let _ = self.0.push_back(n);
    }

    /// The oldest note not yet taken.
    pub fn take(&mut self) -> Option<T> {
        self.0.pop_front()
    }
}

impl<T, const N: usize> Default for Notes<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_note_goes_when_the_log_is_full() {
        let mut n: Notes<u32, 3> = Notes::new();
        for i in 0..5 {
            n.push(i);
        }
        assert_eq!(
            std::iter::from_fn(|| n.take()).collect::<Vec<_>>(),
            [2, 3, 4]
        );
        assert_eq!(n.take(), None);
    }
}
