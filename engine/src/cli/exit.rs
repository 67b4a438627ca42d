//! Process exit codes. Stable: scripts and CI depend on them.

/// What `wharf` exits with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// The command did what was asked (a run: every step succeeded).
    Success = 0,
    /// A run ended `failed`: some step failed. It can be resumed.
    RunFailed = 1,
    /// Bad input: the workflow file, parameters or command line. Nothing was changed.
    InvalidInput = 2,
    /// The state directory: the run is locked by another process, unknown, or unreadable.
    State = 3,
    /// `resume` refused: the workflow changed since the run started (see `--accept-changes`).
    WorkflowChanged = 4,
    /// A plugin could not be loaded (not a component, or not linkable).
    Plugin = 5,
}
