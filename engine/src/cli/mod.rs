//! The `wharf` command line. Exit codes are documented in [`exit`] and the README.

mod exit;
mod inspect;
mod plan;
mod plugin_cmds;
mod progress;
mod run;
mod state;
mod terminal;
mod workflow_cmds;

pub use exit::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "wharf",
    version,
    about = "Runs deployment workflows whose steps are sandboxed WebAssembly components."
)]
pub struct Cli {
    /// Where runs are journaled (one sled database per run) and compiled plugins are cached.
    #[arg(long, global = true, env = "WHARF_STATE_DIR", default_value = ".wharf")]
    pub state_dir: PathBuf,
    /// Where runs are journaled: `sled` (the state dir, default), `sled:DIR` or
    /// `s3://BUCKET/PREFIX[?region=R&endpoint=URL]` (shared by a team; see docs/state.md).
    #[arg(long, global = true, env = "WHARF_STATE", value_name = "STATE")]
    pub state: Option<String>,
    /// Where compiled plugins, and the record of registry layers pushed, are cached (default:
    /// `<state-dir>/cache`). Deleting it only costs recompiling and recompressing.
    #[arg(long, global = true, env = "WHARF_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Output format for commands that report results.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Runs a workflow file.
    Run {
        file: PathBuf,
        /// A workflow parameter, `NAME=VALUE`; repeat for more.
        #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// Then delete everything the run created, in the same process, whatever the run's
        /// outcome (an ephemeral deployment, e.g. a CI smoke test). The exit code is 0 only if
        /// both succeeded; an unfinished teardown is continued with `wharf teardown RUN`.
        #[arg(long)]
        teardown: bool,
        #[command(flatten)]
        teardown_options: TeardownArgs,
    },
    /// Resumes a failed or interrupted run: finished steps keep their outputs, the rest run again.
    Resume {
        run_id: String,
        /// Proceed although the workflow file changed since the run started; changed steps and
        /// the steps after them run again with the new definition.
        #[arg(long)]
        accept_changes: bool,
    },
    /// Deletes everything a run created (its resource ledger), in reverse dependency order.
    /// Resumable: run it again to continue an interrupted or incomplete teardown.
    Teardown {
        run_id: String,
        #[command(flatten)]
        options: TeardownArgs,
        /// How long to wait for slow deletions, e.g. `10m`.
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Shows what a run of the workflow would do: read-only AWS calls are made for real, every
    /// mutating call is recorded instead of sent. Prints each step's calls and the grants they use.
    Plan {
        file: PathBuf,
        #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
        params: Vec<String>,
    },
    /// Shows a run's steps (the latest run when none is given).
    Status { run_id: Option<String> },
    /// Lists runs, newest first.
    Runs,
    /// Shows a run's event log.
    Logs {
        run_id: String,
        /// Only this step's events.
        #[arg(long)]
        step: Option<String>,
    },
    /// Checks a workflow file and reports every problem with file:line:col.
    Validate { file: PathBuf },
    /// Prints a workflow's step graph.
    Graph {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
        format: GraphFormat,
    },
    /// Run state: copy runs between backends, print the IAM policy the S3 backend needs.
    State {
        #[command(subcommand)]
        command: state::StateCommand,
    },
    /// Prints the JSON Schema of the workflow file format (for editor completion).
    Schema,
    /// Prints a shell completion script.
    Completions { shell: clap_complete::Shell },
    /// Writing custom step plugins: `new`, `build`, `inspect`.
    Plugin {
        #[command(subcommand)]
        command: plugin_cmds::PluginCommand,
    },
}

/// What a teardown keeps or deletes (`wharf teardown`, and `wharf run --teardown`).
#[derive(clap::Args, Debug)]
pub struct TeardownArgs {
    /// Keep deleted secrets recoverable for this many days (7-30) instead of deleting at once.
    #[arg(long, value_name = "DAYS")]
    secret_recovery_days: Option<u32>,
    /// Keep CloudWatch log groups.
    #[arg(long)]
    keep_log_groups: bool,
    /// Also delete the images the run pushed to registries (by digest, with their tags).
    #[arg(long)]
    delete_images: bool,
}

impl TeardownArgs {
    fn given(&self) -> Option<&'static str> {
        if self.secret_recovery_days.is_some() {
            Some("--secret-recovery-days")
        } else if self.keep_log_groups {
            Some("--keep-log-groups")
        } else if self.delete_images {
            Some("--delete-images")
        } else {
            None
        }
    }

    fn options(&self, timeout: std::time::Duration) -> crate::scheduler::TeardownOptions {
        crate::scheduler::TeardownOptions {
            secret_recovery_days: self.secret_recovery_days,
            keep_log_groups: self.keep_log_groups,
            delete_images: self.delete_images,
            timeout,
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    Mermaid,
    Dot,
}

/// Parses arguments, runs the command, returns the process exit code.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let code = match dispatch(cli) {
        Ok(code) => code,
        Err(failure) => {
            // Workflow diagnostics are already formatted rustc-style, `error:` included.
            // They may quote a plugin (its error, its stderr): shown, never obeyed.
            let message = terminal::block(&failure.message);
            if message.starts_with("error") {
                eprintln!("{message}");
            } else {
                eprintln!("error: {message}");
            }
            failure.code
        }
    };
    std::process::ExitCode::from(code as u8)
}

/// A command that could not do its job: what to tell the user and which exit code.
pub struct Failure {
    pub code: ExitCode,
    pub message: String,
}

impl Failure {
    pub fn new(code: ExitCode, message: impl std::fmt::Display) -> Self {
        Failure { code, message: message.to_string() }
    }
}

impl Cli {
    pub fn cache_dir(&self) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(|| self.state_dir.join("cache"))
    }

    /// The compiled-plugin cache; when its directory cannot be trusted, a warning that says
    /// how to fix it (plugins are then compiled in memory).
    pub fn component_cache(&self) -> crate::host::cache::ComponentCache {
        let cache = crate::host::cache::ComponentCache::new(self.cache_dir());
        if let Some(warning) = cache.warning() {
            eprintln!("warning: {}", terminal::line(warning));
        }
        cache
    }
}

fn dispatch(cli: Cli) -> Result<ExitCode, Failure> {
    match &cli.command {
        Command::Run { file, params, teardown, teardown_options } => {
            let then_teardown = match (teardown, teardown_options.given()) {
                (true, _) => Some(teardown_options.options(crate::scheduler::TeardownOptions::default().timeout)),
                (false, None) => None,
                (false, Some(flag)) => {
                    let msg =
                        format!("{flag} applies to the teardown: add --teardown, or pass it to `wharf teardown RUN`");
                    return Err(Failure::new(ExitCode::InvalidInput, msg));
                }
            };
            run::run(&cli, file, params, then_teardown)
        }
        Command::Resume { run_id, accept_changes } => run::resume(&cli, run_id, *accept_changes),
        Command::Teardown { run_id, options, timeout } => run::teardown(&cli, run_id, options.options(*timeout)),
        Command::Plan { file, params } => plan::plan(&cli, file, params),
        Command::Status { run_id } => inspect::status(&cli, run_id.as_deref()),
        Command::Runs => inspect::runs(&cli),
        Command::Logs { run_id, step } => inspect::logs(&cli, run_id, step.as_deref()),
        Command::Validate { file } => workflow_cmds::validate(&cli, file),
        Command::Graph { file, format } => workflow_cmds::graph(file, *format),
        Command::State { command } => state::command(&cli, command),
        Command::Schema => workflow_cmds::schema(),
        Command::Plugin { command } => plugin_cmds::dispatch(&cli, command),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(*shell, &mut Cli::command(), "wharf", &mut std::io::stdout());
            Ok(ExitCode::Success)
        }
    }
}
