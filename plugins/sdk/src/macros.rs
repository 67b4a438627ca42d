//! `format!`-style logging macros over [`crate::log`].

/// Writes an info line to the step's log, `format!`-style.
///
/// ```
/// let arn = "arn:aws:ecs:eu-west-1:1:cluster/web";
/// wharf_plugin_sdk::info!("cluster {arn} already exists; reusing it");
/// ```
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::info(&::std::format!($($arg)*)) };
}

/// Writes a warning line to the step's log, `format!`-style.
///
/// ```
/// wharf_plugin_sdk::warn!("attempt {} of {}", 2, 5);
/// ```
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log::warn(&::std::format!($($arg)*)) };
}

/// Writes a debug line to the step's log, `format!`-style.
///
/// ```
/// wharf_plugin_sdk::debug!("request: {:?}", ("web", 2));
/// ```
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log::debug(&::std::format!($($arg)*)) };
}

/// Writes an error line to the step's log, `format!`-style (return an `Error` to fail the step).
///
/// ```
/// wharf_plugin_sdk::error!("could not delete {}", "sg-123");
/// ```
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::error(&::std::format!($($arg)*)) };
}

/// Reports progress for the live view, `format!`-style.
///
/// ```
/// wharf_plugin_sdk::progress!("{} of {} tasks running", 2, 3);
/// ```
#[macro_export]
macro_rules! progress {
    ($($arg:tt)*) => { $crate::log::progress(&::std::format!($($arg)*)) };
}
