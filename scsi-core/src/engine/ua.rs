//! Unit attention conditions (SAM-5 §5.14, SPC-4 §5.14).
//!
//! Each logical unit keeps one queue per I_T nexus. A nexus the logical
//! unit has not seen yet implicitly has POWER ON, RESET, OR BUS DEVICE RESET
//! OCCURRED pending, which is what its first command reports. Conditions are
//! reported oldest first; a condition already queued is not queued twice; a
//! reset condition replaces everything queued before it (SAM-5 §5.14: the
//! reset clears the other conditions it supersedes).

use std::collections::VecDeque;

use crate::sense::Asc;

/// Most conditions kept per nexus; beyond this the oldest are dropped and
/// the queue still ends with the newest (SPC-4 allows reporting only some).
const MAX_PENDING: usize = 16;

/// Pending unit attention conditions of one nexus on one logical unit.
#[derive(Debug, Clone, Default)]
pub(crate) struct UaQueue {
    pending: VecDeque<Asc>,
}

impl UaQueue {
    /// A queue holding the power-on condition.
    pub(crate) fn power_on() -> Self {
        let mut q = Self::default();
        q.push(Asc::POWER_ON_RESET);
        q
    }

    /// Queue `asc`.
    pub(crate) fn push(&mut self, asc: Asc) {
        if asc.asc() == 0x29 {
            // A reset-class condition supersedes earlier conditions.
            self.pending.clear();
        }
        if self.pending.contains(&asc) {
            return;
        }
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back(asc);
    }

    /// The oldest condition, removed.
    pub(crate) fn pop(&mut self) -> Option<Asc> {
        self.pending.pop_front()
    }

    /// Remove one specific condition (REPORT LUNS clears REPORTED LUNS DATA
    /// HAS CHANGED).
    pub(crate) fn remove(&mut self, asc: Asc) {
        self.pending.retain(|&a| a != asc);
    }

    /// Whether anything is pending.
    pub(crate) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_oldest_first_without_duplicates() {
        let mut q = UaQueue::default();
        q.push(Asc::CAPACITY_DATA_HAS_CHANGED);
        q.push(Asc::MODE_PARAMETERS_CHANGED);
        q.push(Asc::CAPACITY_DATA_HAS_CHANGED);
        assert_eq!(q.pop(), Some(Asc::CAPACITY_DATA_HAS_CHANGED));
        assert_eq!(q.pop(), Some(Asc::MODE_PARAMETERS_CHANGED));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn reset_supersedes_older_conditions() {
        let mut q = UaQueue::default();
        q.push(Asc::MODE_PARAMETERS_CHANGED);
        q.push(Asc::BUS_DEVICE_RESET_FUNCTION_OCCURRED);
        assert_eq!(q.pop(), Some(Asc::BUS_DEVICE_RESET_FUNCTION_OCCURRED));
        assert!(q.is_empty());
    }
}
