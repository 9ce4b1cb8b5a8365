//! Task management functions (SAM-5 §7).

/// A task management function request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TmFunction {
    /// ABORT TASK: abort the task with `tag` from this nexus.
    AbortTask {
        /// The task tag.
        tag: u64,
    },
    /// ABORT TASK SET: abort every task of this nexus on the LU.
    AbortTaskSet,
    /// CLEAR TASK SET: abort every task of every nexus on the LU.
    ClearTaskSet,
    /// LOGICAL UNIT RESET.
    LogicalUnitReset,
    /// I_T NEXUS RESET.
    ITNexusReset,
    /// Target reset (iSCSI TARGET WARM/COLD RESET).
    TargetReset,
    /// QUERY TASK: is the task with `tag` in the task set?
    QueryTask {
        /// The task tag.
        tag: u64,
    },
    /// QUERY TASK SET: has this nexus any task in the task set?
    QueryTaskSet,
    /// QUERY ASYNCHRONOUS EVENT: has this nexus a unit attention pending?
    QueryAsyncEvent,
    /// CLEAR ACA.
    ClearAca,
}

/// The service response of a task management function (SAM-5 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TmfResponse {
    /// FUNCTION COMPLETE.
    Complete,
    /// FUNCTION SUCCEEDED (QUERY functions: the condition holds).
    Succeeded,
    /// FUNCTION REJECTED.
    Rejected,
    /// The function is not supported.
    NotSupported,
    /// INCORRECT LOGICAL UNIT NUMBER.
    IncorrectLun,
    /// The referenced task does not exist (iSCSI "task does not exist").
    TaskNotFound,
}
