//! Shows a run as it happens: a live per-step view on a terminal, plain lines otherwise.
//! Both go to stderr so stdout carries only results (`--output json` stays parseable).

use super::terminal::line;
use crate::events::Observer;
use crate::journal::{Event, EventKind, LogLevel};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

pub struct Progress {
    live: Option<Live>,
}

struct Live {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Progress {
    /// Live when stderr is a terminal and output is for humans.
    pub fn new(json_output: bool) -> Self {
        let live = (!json_output && std::io::stderr().is_terminal()).then(|| Live {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(HashMap::new()),
        });
        Progress { live }
    }

    pub fn finish(&self) {
        if let Some(live) = &self.live {
            for bar in live.bars.lock().unwrap().values() {
                if !bar.is_finished() {
                    bar.abandon();
                }
            }
        }
    }
}

impl Observer for Progress {
    fn on_event(&self, event: &Event) {
        match &self.live {
            Some(live) => live.update(event),
            None => print_line(event),
        }
    }
}

impl Live {
    fn update(&self, event: &Event) {
        let Some(step) = &event.step_id else {
            let _ = self.multi.println(line(&event.message));
            return;
        };
        let mut bars = self.bars.lock().unwrap();
        let bar = bars.entry(step.clone()).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new_spinner());
            bar.set_style(ProgressStyle::with_template("{spinner} {prefix:<20} {elapsed:>5} {wide_msg}").unwrap());
            bar.set_prefix(step.clone());
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        let message = line(&event.message).into_owned();
        let done = |symbol: &str, msg: &str| {
            bar.set_style(ProgressStyle::with_template("{prefix:<22} {elapsed:>5} {wide_msg}").unwrap());
            bar.set_prefix(format!("{symbol} {step}"));
            bar.finish_with_message(msg.to_string());
        };
        match event.kind {
            EventKind::StepSucceeded => done("✔", &message),
            EventKind::StepSkipped => done("-", &message),
            EventKind::Log(LogLevel::Debug) => {}
            EventKind::StepFailed | EventKind::StepRetrying => {
                let _ = self.multi.println(format!("{step}: {message}"));
                bar.set_message(message);
            }
            _ => bar.set_message(message),
        }
    }
}

fn print_line(event: &Event) {
    if matches!(event.kind, EventKind::Log(LogLevel::Debug)) {
        return;
    }
    let secs = (event.at_ms / 1000) % 86_400;
    let time = format!("{:02}:{:02}:{:02}", secs / 3600, (secs / 60) % 60, secs % 60);
    let step = event.step_id.as_deref().unwrap_or("run");
    eprintln!("{time} {step:<18} {:<10} {}", kind_label(&event.kind), line(&event.message));
}

/// A short label for an event kind, as shown in plain output and `wharf logs`.
pub fn kind_label(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::RunStarted => "started",
        EventKind::RunResumed => "resumed",
        EventKind::RunFinished => "finished",
        EventKind::StepStarted => "start",
        EventKind::StepSucceeded => "ok",
        EventKind::StepFailed => "FAILED",
        EventKind::StepRetrying => "retry",
        EventKind::StepSkipped => "skipped",
        EventKind::Log(LogLevel::Debug) => "debug",
        EventKind::Log(LogLevel::Info) => "info",
        EventKind::Log(LogLevel::Warn) => "warn",
        EventKind::Log(LogLevel::Error) => "error",
        EventKind::Progress => "progress",
        EventKind::Call => "call",
    }
}
