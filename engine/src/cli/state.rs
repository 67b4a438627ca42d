//! Which state backend a command uses, and `wharf state migrate` / `wharf state iam-policy`.
//!
//! The state is chosen by `--state` (env `WHARF_STATE`): `sled` (the default: one sled database per run
//! under `--state-dir`), `sled:DIR`, or `s3://BUCKET/PREFIX[?region=R&endpoint=URL]`. `wharf run` also
//! honours a `[state]` table in the workflow file when neither is set; every other command finds runs
//! through the flag or env only (it has no workflow file to look at before it finds the run).

use std::path::PathBuf;
use std::sync::Arc;

use clap::Subcommand;

use super::run::journal_failure;
use super::{Cli, ExitCode, Failure, Output};
use crate::journal::{JournalError, S3Backend, S3Location, SledBackend, StateBackend};
use crate::workflow::{StateSettings, Workflow};

#[derive(Subcommand, Debug)]
pub enum StateCommand {
    /// Copies every run (or the given ones) from one state to another, losslessly: run records,
    /// attempts, outputs, events (same seqs and times) and resource ledgers. Runs already in the
    /// destination are skipped; the source is left as it is. A run being driven is refused.
    Migrate {
        /// `sled` (the --state-dir), `sled:DIR`, `s3` (the --state / WHARF_STATE URL) or an s3:// URL.
        #[arg(long)]
        from: String,
        /// Same forms as --from.
        #[arg(long)]
        to: String,
        /// Only this run; repeat for more.
        #[arg(long = "run", value_name = "RUN")]
        runs: Vec<String>,
    },
    /// Prints the least-privilege IAM policy the S3 backend needs for an s3:// state URL.
    IamPolicy { url: String },
}

/// A parsed state selection.
#[derive(Debug, Clone)]
pub(super) enum Spec {
    Sled(PathBuf),
    S3(S3Location),
}

impl std::fmt::Display for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Spec::Sled(dir) => write!(f, "{}", dir.display()),
            Spec::S3(loc) => write!(f, "{loc}"),
        }
    }
}

fn parse(cli: &Cli, value: &str) -> Result<Spec, Failure> {
    let bad = |msg: String| Failure::new(ExitCode::InvalidInput, msg);
    match value {
        "sled" => Ok(Spec::Sled(cli.state_dir.clone())),
        "s3" => match cli.state.as_deref() {
            Some(url) if url.starts_with("s3://") => parse(cli, url),
            _ => Err(bad("`s3` means the --state / WHARF_STATE URL, which is not an s3:// URL; give the URL".into())),
        },
        v if v.starts_with("sled:") => Ok(Spec::Sled(PathBuf::from(&v["sled:".len()..]))),
        v if v.starts_with("s3://") => S3Location::parse(v).map(Spec::S3).map_err(bad),
        v => Err(bad(format!("state `{v}`: use `sled`, `sled:DIR` or `s3://BUCKET/PREFIX` (see docs/state.md)"))),
    }
}

/// The state for commands that find an existing run: `--state` / `WHARF_STATE`, else sled.
pub(super) fn spec(cli: &Cli) -> Result<Spec, Failure> {
    parse(cli, cli.state.as_deref().unwrap_or("sled"))
}

/// The state for `wharf run`: `--state` / `WHARF_STATE`, else the workflow's `[state]`, else sled.
pub(super) fn spec_for(cli: &Cli, workflow: &Workflow) -> Result<Spec, Failure> {
    match (&cli.state, &workflow.state) {
        (None, Some(StateSettings::S3 { bucket, prefix, region, endpoint })) => Ok(Spec::S3(S3Location {
            bucket: bucket.clone(),
            prefix: prefix.trim_matches('/').to_string(),
            region: region.clone(),
            endpoint: endpoint.clone(),
        })),
        _ => spec(cli),
    }
}

pub(super) fn open(cli: &Cli, spec: &Spec) -> Result<Arc<dyn StateBackend>, Failure> {
    Ok(match spec {
        Spec::Sled(dir) => Arc::new(SledBackend::new(dir).map_err(journal_failure)?),
        // The S3 backend's read cache lives in the local state dir.
        Spec::S3(loc) => Arc::new(S3Backend::new(loc.clone(), &cli.state_dir).map_err(journal_failure)?),
    })
}

pub(super) fn backend(cli: &Cli) -> Result<(Arc<dyn StateBackend>, Spec), Failure> {
    let spec = spec(cli)?;
    Ok((open(cli, &spec)?, spec))
}

pub fn command(cli: &Cli, cmd: &StateCommand) -> Result<ExitCode, Failure> {
    match cmd {
        StateCommand::IamPolicy { url } => {
            let loc = S3Location::parse(url).map_err(|e| Failure::new(ExitCode::InvalidInput, e))?;
            println!("{}", serde_json::to_string_pretty(&iam_policy(&loc)).expect("JSON values serialize"));
            Ok(ExitCode::Success)
        }
        StateCommand::Migrate { from, to, runs } => migrate(cli, &parse(cli, from)?, &parse(cli, to)?, runs),
    }
}

/// Exactly what the backend does: list the runs prefix, get and (conditionally) put objects under it.
/// No DeleteObject: a lock is released by rewriting it, never by deleting it.
fn iam_policy(loc: &S3Location) -> serde_json::Value {
    let runs = loc.key("runs/");
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "WharfStateListRuns",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": format!("arn:aws:s3:::{}", loc.bucket),
                "Condition": {"StringLike": {"s3:prefix": [format!("{runs}*")]}}
            },
            {
                "Sid": "WharfStateReadWriteRuns",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject"],
                "Resource": format!("arn:aws:s3:::{}/{runs}*", loc.bucket)
            }
        ]
    })
}

fn migrate(cli: &Cli, from: &Spec, to: &Spec, only: &[String]) -> Result<ExitCode, Failure> {
    let source = open(cli, from)?;
    let dest = open(cli, to)?;
    let (found, broken) = source.scan_runs().map_err(journal_failure)?;
    let mut ids: Vec<String> = found.iter().rev().map(|s| s.run.id.clone()).collect(); // oldest first
    if !only.is_empty() {
        if let Some(missing) = only.iter().find(|id| !ids.contains(id)) {
            return Err(journal_failure(
                source
                    .read_run(missing)
                    .err()
                    .unwrap_or(JournalError::NotFound { run_id: missing.clone(), known: Vec::new() }),
            ));
        }
        ids.retain(|id| only.contains(id));
    }
    let mut results = Vec::new();
    let mut failed = broken.len();
    for e in &broken {
        results.push(("?".to_string(), "unreadable".to_string(), e.to_string()));
    }
    for id in ids {
        let (outcome, detail) = match copy_run(source.as_ref(), dest.as_ref(), &id) {
            Ok(true) => ("copied", String::new()),
            Ok(false) => ("skipped", "already in the destination".to_string()),
            Err(e) => {
                failed += 1;
                ("failed", e.to_string())
            }
        };
        results.push((id, outcome.to_string(), detail));
    }
    if cli.output == Output::Json {
        let list: Vec<_> = results
            .iter()
            .map(|(id, outcome, detail)| serde_json::json!({"run": id, "result": outcome, "detail": detail}))
            .collect();
        println!("{}", serde_json::json!({"from": from.to_string(), "to": to.to_string(), "runs": list}));
    } else {
        for (id, outcome, detail) in &results {
            let sep = if detail.is_empty() { "" } else { ": " };
            println!("{outcome:<8} {id}{sep}{detail}");
        }
        let copied = results.iter().filter(|r| r.1 == "copied").count();
        println!("{copied} run(s) copied from {from} to {to}; the source is unchanged");
    }
    Ok(if failed == 0 { ExitCode::Success } else { ExitCode::State })
}

/// Copies one run and checks the copy reads back the same. Ok(false): already there.
fn copy_run(source: &dyn StateBackend, dest: &dyn StateBackend, id: &str) -> Result<bool, JournalError> {
    match dest.read_run(id) {
        Ok(_) => return Ok(false),
        Err(JournalError::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    let dump = source.export_run(id)?;
    let events = dump.events.len();
    dest.import_run(dump)?;
    let (a, b) = (source.read_run(id)?, dest.read_run(id)?);
    if (a.run, a.steps, a.resources, a.last_event_seq) != (b.run, b.steps, b.resources, b.last_event_seq) {
        return Err(JournalError::S3 {
            location: "migration".into(),
            detail: format!("run {id} reads back differently after the copy ({events} events); please report this"),
        });
    }
    Ok(true)
}

/// Where "no runs in ..." messages point.
pub(super) fn describe(spec: &Spec) -> String {
    spec.to_string()
}
