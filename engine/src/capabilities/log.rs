//! `log`: step logging. Needs no grant; messages are length-capped by the event sink.

use crate::host::bindings::wharf::plugin::log::{Host, Level};
use crate::host::sandbox::SandboxState;
use crate::journal::{EventKind, LogLevel};

impl Host for SandboxState {
    async fn write(&mut self, level: Level, message: String) {
        let level = match level {
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        if let Ok(caps) = self.caps() {
            caps.event(EventKind::Log(level), message);
        }
    }

    async fn progress(&mut self, message: String) {
        if let Ok(caps) = self.caps() {
            caps.event(EventKind::Progress, message);
        }
    }
}

impl crate::host::bindings::wharf::plugin::types::Host for SandboxState {}
