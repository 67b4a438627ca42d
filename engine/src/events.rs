//! Run events: journaled first, then shown to whoever watches (the CLI's progress view).

use crate::journal::{Event, EventKind, NewEvent, RunJournal};
use std::sync::Arc;

/// Something that watches a run's events as they happen.
pub trait Observer: Send + Sync {
    fn on_event(&self, event: &Event);
}

/// An observer that ignores everything.
pub struct Quiet;
impl Observer for Quiet {
    fn on_event(&self, _event: &Event) {}
}

/// Where a run's events go: the journal (durable at the next flush), then the observer.
#[derive(Clone)]
pub struct EventSink {
    journal: Arc<dyn RunJournal>,
    observer: Arc<dyn Observer>,
}

/// Longest message kept per event; longer ones are cut (log floods cannot bloat the journal).
pub const MAX_EVENT_MESSAGE: usize = 4096;

impl EventSink {
    pub fn new(journal: Arc<dyn RunJournal>, observer: Arc<dyn Observer>) -> Self {
        EventSink { journal, observer }
    }

    pub fn journal(&self) -> &Arc<dyn RunJournal> {
        &self.journal
    }

    /// Records an event. A journal write failure is returned so callers can fail the step.
    pub fn emit(
        &self,
        step_id: Option<&str>,
        kind: EventKind,
        message: impl Into<String>,
    ) -> Result<(), crate::journal::JournalError> {
        let mut message = message.into();
        if message.len() > MAX_EVENT_MESSAGE {
            let mut cut = MAX_EVENT_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str(" …[truncated]");
        }
        let new = NewEvent { step_id: step_id.map(str::to_string), kind: kind.clone(), message: message.clone() };
        let seq = self.journal.append_event(new)?;
        let event = Event { seq, at_ms: crate::now_ms(), step_id: step_id.map(str::to_string), kind, message };
        self.observer.on_event(&event);
        Ok(())
    }
}
