//! wharf-bench: run by bench/run.sh (which builds in release mode, starts moto and installs the
//! peers' tools). Measures and prints; it asserts no time. See BENCHMARKS.md.
//!
//! Usage: wharf-bench [--runs N] [--cli-runs N] [--latency-runs N] [--samples N] [--skip-e2e]

mod e2e;
mod engine;
mod proxy;
mod registry;
mod stats;

use e2e::{Env, RunResult, Tool};
use stats::{median, ms};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The same allocator as the `wharf` binary, so the in-process numbers are the binary's.
#[global_allocator]
static ALLOCATOR: wharf::alloc::LargeBlocksMapped = wharf::alloc::LargeBlocksMapped;

struct Opts {
    runs: usize,
    cli_runs: usize,
    latency_runs: usize,
    samples: usize,
    skip_e2e: bool,
}

fn opts() -> Opts {
    let mut o = Opts { runs: 5, cli_runs: 3, latency_runs: 3, samples: 200, skip_e2e: false };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let num = || args.get(i + 1).and_then(|v| v.parse().ok()).expect("a number after the option");
        match args[i].as_str() {
            "--runs" => o.runs = num(),
            "--cli-runs" => o.cli_runs = num(),
            "--latency-runs" => o.latency_runs = num(),
            "--samples" => o.samples = num(),
            "--skip-e2e" => {
                o.skip_e2e = true;
                i -= 1;
            }
            other => panic!("unknown option {other}"),
        }
        i += 2;
    }
    o
}

fn main() {
    let o = opts();
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let root = root.canonicalize().unwrap();
    let bench_dir = PathBuf::from(std::env::var("WHARF_BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into()));
    let scratch = tempfile::tempdir_in(&bench_dir).expect("scratch dir");

    println!("## Engine overhead (in-process, no-op plugin, sled journal in {})\n", bench_dir.display());
    let (parallel, per_run) = (64, 10);
    let e = engine::run(scratch.path(), o.samples, parallel, per_run);
    println!("| measurement | p50 | p99 | n | target |\n|---|---|---|---|---|");
    println!(
        "| per-step overhead (gap between steps of a 20-step chain) | {} | {} | {} | |",
        ms(e.per_step.p50),
        ms(e.per_step.p99),
        e.per_step.n
    );
    println!(
        "| 3-step workflow, end to end (create run .. finished) | {} | {} | {} | p50 <= 1 ms |",
        ms(e.three_step.p50),
        ms(e.three_step.p99),
        e.three_step.n
    );
    println!(
        "| the disk alone: 4 KiB write + `sync_file_range` (one durability point), around the 3-step runs | {} | {} | {} | |",
        ms(e.disk_sync.p50),
        ms(e.disk_sync.p99),
        e.disk_sync.n
    );
    println!(
        "| sustained: {} runs in parallel x {}-step chains | {:.0} steps/s | | {} steps | >= 5000 steps/s |\n",
        e.parallel_runs,
        e.steps_per_run,
        e.steps_per_sec,
        e.parallel_runs * e.steps_per_run * 3
    );
    if o.skip_e2e {
        return;
    }

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async_main(o, root, scratch.path()));
}

async fn async_main(o: Opts, root: PathBuf, scratch: &Path) {
    let moto = std::env::var("WHARF_TEST_MOTO").expect("bench/run.sh exports WHARF_TEST_MOTO (the moto endpoint)");
    let exe = std::env::current_exe().unwrap();
    // The workflow either names a prebuilt image (`image`) or builds and pushes it (`build-push`
    // step, `registry`/`repository`/`tag`): then it goes to the emulators' basic-auth registry.
    let source = std::fs::read_to_string(root.join("workflows/ecs-example.toml")).unwrap();
    let builds_image = source.contains("[params.repository]");
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("bench/run.sh exports {k}"));
    let (user, password) = (var("WHARF_TEST_REGISTRY_USER"), var("WHARF_TEST_REGISTRY_PASSWORD"));
    let registry = var("WHARF_TEST_REGISTRY_AUTH");
    let (repository, tag) = ("bench/ecs-example", "v1");
    let mut tool_env =
        vec![("REGISTRY_USERNAME".to_string(), user.clone()), ("REGISTRY_PASSWORD".into(), password.clone())];
    let wharf_params = if builds_image {
        vec![format!("registry={registry}"), format!("repository={repository}"), format!("tag={tag}")]
    } else {
        tool_env.push(("IMAGE".into(), "docker.io/example/ecs-example:v1".into()));
        vec!["image=docker.io/example/ecs-example:v1".to_string()]
    };
    let mut env = Env {
        wharf: std::env::var("WHARF_BIN").map(PathBuf::from).unwrap_or_else(|_| exe.with_file_name("wharf")),
        venv_bin: PathBuf::from(var("WHARF_BENCH_VENV")).join("bin"),
        moto: moto.clone(),
        moto_pid: std::env::var("WHARF_BENCH_MOTO_PID").ok().and_then(|p| p.parse().ok()),
        wharf_params,
        tool_env,
        state: scratch.join("wharf-state"),
        root,
    };
    let upstream = moto.trim_start_matches("http://").trim_end_matches('/').parse().expect("moto host:port");
    let proxy = proxy::Proxy::start(upstream).await;
    let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&moto)
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&aws).force_path_style(true).build());

    // Warm-up (discarded): moto imports each service's backend on first use; wharf fills its cache.
    e2e::reset(&env, &aws, &s3).await;
    e2e::run(&env, Tool::Wharf, &proxy, &aws).await;
    if builds_image {
        // The peers push the very image wharf built (same bytes, same digest).
        let image = e2e::last_wharf_run()["outputs"]["image"]["image"].as_str().expect("image output").to_string();
        let dir = scratch.join("image");
        registry::export(&image, &user, &password, &dir);
        println!("image: {image} (wharf builds it; the peers push the same blobs, see BENCHMARKS.md)\n");
        env.tool_env.extend([
            ("IMAGE_DIR".to_string(), dir.display().to_string()),
            ("REGISTRY".into(), registry.clone()),
            ("REPOSITORY".into(), repository.into()),
            ("TAG".into(), tag.into()),
        ]);
    }
    e2e::reset(&env, &aws, &s3).await;
    e2e::run(&env, Tool::Boto3, &proxy, &aws).await;

    // Cold start: process start -> first AWS request arriving at the proxy.
    let mut warm = Vec::new();
    let mut empty = Vec::new();
    for i in 0..o.runs {
        warm.push(cold_start(&env, &proxy, None).await);
        let dir = scratch.join(format!("empty-cache-{i}"));
        empty.push(cold_start(&env, &proxy, Some(dir.as_path())).await);
    }
    println!("## Cold start (process start to first AWS request, {} runs each)\n", o.runs);
    println!("| cache | median | min | target |\n|---|---|---|---|");
    println!(
        "| compiled-component cache warm | {} | {} | <= 25 ms |",
        ms(median(&warm)),
        ms(*warm.iter().min().unwrap())
    );
    println!(
        "| cache empty (all plugins compiled) | {} | {} | |",
        ms(median(&empty)),
        ms(*empty.iter().min().unwrap())
    );
    println!();
    e2e::reset(&env, &aws, &s3).await;

    // End to end, then through the 100 ms proxy; alternating tools, moto reset before each run.
    for (label, delay, runs, cli_runs) in
        [("against moto", 0u64, o.runs, o.cli_runs), ("through the 100 ms latency proxy", 100, o.latency_runs, 0)]
    {
        proxy.set_delay(Duration::from_millis(delay));
        let mut results: BTreeMap<&str, Vec<RunResult>> = BTreeMap::new();
        for round in 0..runs {
            let mut tools = vec![Tool::Wharf, Tool::Boto3];
            if delay == 0 {
                tools.extend([Tool::WharfTwoProcesses, Tool::WharfFirstBuild]);
            }
            if round < cli_runs {
                tools.push(Tool::AwsCli);
            }
            for tool in tools {
                e2e::reset(&env, &aws, &s3).await;
                let r = e2e::run(&env, tool, &proxy, &aws).await;
                eprintln!("  {label}: {} {}", tool.name(), ms(r.wall));
                results.entry(tool.name()).or_default().push(r);
            }
        }
        report(&env, label, delay, &results);
    }
    proxy.set_delay(Duration::ZERO);
}

/// Spawns `wharf run`, waits for its first AWS request, then kills it (moto is reset after).
async fn cold_start(env: &Env, proxy: &Arc<proxy::Proxy>, cache: Option<&Path>) -> Duration {
    proxy.take();
    let mut args: Vec<String> =
        ["--state-dir", &env.state.display().to_string()].iter().map(|s| s.to_string()).collect();
    if let Some(c) = cache {
        args.extend(["--cache-dir".into(), c.display().to_string()]);
    }
    args.extend(["run", "workflows/ecs-example.toml"].iter().map(|s| s.to_string()));
    for p in &env.wharf_params {
        args.extend(["--param".to_string(), p.clone()]);
    }
    let mut cmd = e2e::command(env, &env.wharf, &args, proxy);
    cmd.stdout(std::process::Stdio::null());
    let spawned = Instant::now();
    let child = cmd.spawn().expect("spawn wharf");
    let deadline = Instant::now() + Duration::from_secs(60);
    let first = loop {
        let calls = proxy.take();
        if let Some(c) = calls.first() {
            break c.at;
        }
        assert!(Instant::now() < deadline, "wharf made no AWS request within 60 s");
        tokio::time::sleep(Duration::from_micros(200)).await;
    };
    // SAFETY: signalling our own child by pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    e2e::wait_rusage(child, false);
    proxy.take();
    first.duration_since(spawned)
}

fn report(env: &Env, label: &str, delay: u64, results: &BTreeMap<&str, Vec<RunResult>>) {
    let med = |t: Tool| results.get(t.name()).map(|v| median(&v.iter().map(|r| r.wall).collect::<Vec<_>>()));
    let wharf = med(Tool::Wharf).unwrap();
    println!("## End to end {label} (deploy + verify + teardown, whole processes, medians)\n");
    println!(
        "| tool | runs | median | wharf is faster by | moto's CPU (median) | AWS calls | each run, in order |\n|---|---|---|---|---|---|---|"
    );
    for tool in [Tool::Wharf, Tool::Boto3, Tool::AwsCli, Tool::WharfTwoProcesses, Tool::WharfFirstBuild] {
        let Some(v) = results.get(tool.name()) else { continue };
        let m = med(tool).unwrap();
        let calls: Vec<usize> = v.iter().map(|r| r.calls.len()).collect();
        let moto_cpu: Vec<Duration> = v.iter().filter_map(|r| r.moto_cpu).collect();
        println!(
            "| {} | {} | {} | {:.1}x | {} | {} | {} |",
            tool.name(),
            v.len(),
            ms(m),
            m.as_secs_f64() / wharf.as_secs_f64(),
            if moto_cpu.is_empty() { "?".to_string() } else { ms(median(&moto_cpu)) },
            calls.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", "),
            v.iter().map(|r| ms(r.wall)).collect::<Vec<_>>().join(", ")
        );
    }
    // The other wharf rows' "faster by" compare them with `wharf`; against the boto3 script:
    for (tool, what) in [
        (Tool::WharfTwoProcesses, "`wharf run`, then `wharf teardown RUN`: two processes"),
        (
            Tool::WharfFirstBuild,
            "the host has no record of the image's layers, so build-push compresses them and the host \
             unpacks them to check",
        ),
    ] {
        if let (Some(m), Some(boto3)) = (med(tool), med(Tool::Boto3)) {
            println!(
                "\n{} ({what}): median {}, the boto3 script takes {:.1}x as long",
                tool.name(),
                ms(m),
                boto3.as_secs_f64() / m.as_secs_f64()
            );
        }
    }
    let w = &results[Tool::Wharf.name()];
    let rss: Vec<i64> = w.iter().map(|r| r.max_rss_kib).collect();
    println!(
        "\nwharf peak RSS (`run --teardown`, VmHWM): median {:.1} MiB, max {:.1} MiB (target <= 64 MiB)",
        median_i(&rss) as f64 / 1024.0,
        *rss.iter().max().unwrap() as f64 / 1024.0
    );
    let mut by_wall: Vec<&RunResult> = w.iter().collect();
    by_wall.sort_by_key(|r| r.wall);
    let median_run = by_wall[by_wall.len() / 2];
    timeline(env, median_run, "a median run");
    if delay == 0 {
        moto_idle(median_run);
    }
    let slowest = by_wall[by_wall.len() - 1];
    if slowest.wall.as_secs_f64() > 1.2 * median_run.wall.as_secs_f64() {
        timeline(env, slowest, "the slowest run, more than 1.2x the median");
    }
    if delay > 0 {
        critical_path(env, median_run, delay);
    }
    counts_table(results);
}

fn median_i(v: &[i64]) -> i64 {
    let mut s = v.to_vec();
    s.sort();
    s[s.len() / 2]
}

/// Calls per action for each tool (first run of each), side by side.
fn counts_table(results: &BTreeMap<&str, Vec<RunResult>>) {
    let tools: Vec<&str> = results.keys().copied().collect();
    let counts: Vec<BTreeMap<String, usize>> = tools.iter().map(|t| proxy::counts(&results[t][0].calls)).collect();
    let mut actions: Vec<&String> = counts.iter().flat_map(|c| c.keys()).collect();
    actions.sort();
    actions.dedup();
    println!("\nAWS calls per action (first run of each, counted by the proxy):\n");
    println!("| action | {} |\n|---|{}", tools.join(" | "), "---|".repeat(tools.len()));
    for a in actions {
        let row: Vec<String> = counts.iter().map(|c| c.get(a).copied().unwrap_or(0).to_string()).collect();
        println!("| {a} | {} |", row.join(" | "));
    }
    println!();
}

/// Where one wharf run's time went, from its journal: each step's span in ms after the process
/// was spawned (same wall clock), and how long `wharf run` and `wharf teardown` took as processes.
fn timeline(env: &Env, run: &RunResult, which: &str) {
    use wharf::journal::{EventKind, SledBackend, StateBackend};
    let backend = SledBackend::new(&env.state).unwrap();
    let events = backend.read_events(run.run_id.as_deref().unwrap(), None).unwrap();
    let mut spans: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for e in &events {
        let at = e.at_ms.saturating_sub(run.started_at_ms);
        let id = match (&e.kind, &e.step_id) {
            (EventKind::RunStarted | EventKind::RunResumed | EventKind::RunFinished, _) => "(run)".to_string(),
            (_, Some(id)) => id.clone(),
            _ => continue,
        };
        let span = spans.entry(id).or_insert((at, at));
        span.1 = span.1.max(at);
    }
    let mut spans: Vec<_> = spans.into_iter().collect();
    spans.sort_by_key(|(_, (start, _))| *start);
    let list: Vec<String> = spans.iter().map(|(id, (a, b))| format!("{id} {a}..{b}")).collect();
    let exits = match run.run_process {
        Some(run_process) => format!("`run` exited at {}, `teardown` at {}", ms(run_process), ms(run.wall)),
        None => format!("exited at {}", ms(run.wall)),
    };
    println!("\nwharf timeline ({which}; ms after spawn): {exits}; {}", list.join(", "));
}

/// When moto had no request of the run in flight (from the proxy's log): the time a faster
/// emulator cannot give back, so the time to look at when wharf's run is longer than moto's CPU.
fn moto_idle(run: &RunResult) {
    let at = |t: Instant| t.saturating_duration_since(run.start).as_secs_f64() * 1000.0;
    let mut calls: Vec<(f64, f64, &str)> =
        run.calls.iter().filter_map(|c| Some((at(c.at), at(c.done?), c.action.as_str()))).collect();
    calls.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut busy_until, mut last, mut gaps, mut idle) = (0.0_f64, "spawn", Vec::new(), 0.0);
    for &(start, end, action) in &calls {
        if start > busy_until {
            idle += start - busy_until;
            if start - busy_until >= 3.0 {
                gaps.push(format!("{busy_until:.0}..{start:.0} ({last} -> {action})"));
            }
        }
        if end > busy_until {
            (busy_until, last) = (end, action);
        }
    }
    let wall = run.wall.as_secs_f64() * 1000.0;
    idle += (wall - busy_until).max(0.0);
    gaps.push(format!("{busy_until:.0}..{wall:.0} ({last} -> exit)"));
    println!(
        "\nmoto idle in that run (no request in flight): {idle:.0} of {wall:.0} ms; gaps of 3 ms or more: {}",
        gaps.join(", ")
    );
}

/// The critical-path bound from wharf's own journal: within a step, the longest chain of calls
/// that ran one after the other (a step's parts and some host calls overlap theirs); steps
/// overlap only as the DAG allows; teardown runs after the run.
fn critical_path(env: &Env, run: &RunResult, delay: u64) {
    use wharf::journal::{EventKind, SledBackend, StateBackend};
    let backend = SledBackend::new(&env.state).unwrap();
    let id = run.run_id.as_deref().unwrap();
    let events = backend.read_events(id, None).unwrap();
    let mut spans: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    for e in events.iter().filter(|e| e.kind == EventKind::Call && !e.message.starts_with("PLAN")) {
        // A call event is written when the call returns, and ends with its duration: "(12 ms)".
        let took = e.message.rsplit_once('(').and_then(|(_, d)| d.strip_suffix(" ms)")?.parse::<u64>().ok());
        let end = e.at_ms;
        spans.entry(e.step_id.clone().unwrap_or_default()).or_default().push((end - took.unwrap_or(0).min(end), end));
    }
    let total: BTreeMap<&String, usize> = spans.iter().map(|(id, s)| (id, s.len())).collect();
    let per_step: BTreeMap<String, u64> = spans.iter().map(|(id, s)| (id.clone(), longest_sequence(s))).collect();
    let wf = wharf::workflow::Workflow::load(&env.root.join("workflows/ecs-example.toml"), &wharf::builtin::names())
        .unwrap();
    let mut longest: BTreeMap<String, (u64, Vec<String>)> = BTreeMap::new();
    for id in wf.topo_order() {
        let step = wf.step(id).unwrap();
        let (before, mut path) =
            step.needs.iter().map(|n| longest[n].clone()).max_by_key(|(c, _)| *c).unwrap_or((0, Vec::new()));
        let own = per_step.get(id).copied().unwrap_or(0);
        path.push(format!("{id} ({own})"));
        longest.insert(id.to_string(), (before + own, path));
    }
    let (chain, path) = longest.values().max_by_key(|(c, _)| *c).unwrap().clone();
    // The teardown's steps: services first, then its other groups at once, then the sweep.
    let calls = |id: &str| per_step.get(id).copied().unwrap_or(0);
    let groups = per_step.iter().filter(|(id, _)| {
        wharf::scheduler::is_teardown_step(id) && !matches!(id.as_str(), "_teardown" | "_teardown-services")
    });
    let teardown = calls("_teardown-services")
        + groups.map(|(_, c)| *c).max().unwrap_or(0)
        + calls(wharf::scheduler::TEARDOWN_STEP);
    let bound = Duration::from_millis((chain + teardown) * delay);
    let journaled: usize = total.values().sum();
    println!(
        "\ncritical path: {} -> teardown ({teardown}) = {} calls x {delay} ms = {} (wharf journaled {journaled} calls, the proxy saw {})",
        path.join(" -> "),
        chain + teardown,
        ms(bound),
        run.calls.len()
    );
    println!(
        "wharf vs bound: {:.2}x  (calls in sequence per step: {per_step:?}; all calls per step: {total:?})",
        run_wall_ratio(run, bound)
    );
    waiting_calls(run);
}

/// The most calls of `spans` (start, end in ms) that ran one after the other: the largest set
/// of non-overlapping spans (taken by earliest end, which is optimal).
fn longest_sequence(spans: &[(u64, u64)]) -> u64 {
    let mut by_end = spans.to_vec();
    by_end.sort_by_key(|&(_, end)| end);
    let (mut count, mut free_at) = (0, 0);
    for (start, end) in by_end {
        if start >= free_at {
            count += 1;
            free_at = end;
        }
    }
    count
}

fn run_wall_ratio(run: &RunResult, bound: Duration) -> f64 {
    run.wall.as_secs_f64() / bound.as_secs_f64()
}

/// Calls made while waiting for the service: DescribeServices after CreateService, and repeated
/// HeadObject polls, with the gaps between them (they must grow: backoff, no busy polling).
fn waiting_calls(run: &RunResult) {
    let created = run.calls.iter().position(|c| c.action == "ecs:CreateService");
    let Some(created) = created else { return };
    let deploy_end = run.calls.iter().position(|c| c.action == "s3:GetObject").unwrap_or(run.calls.len());
    let waits: Vec<&proxy::Call> = run.calls[created + 1..deploy_end]
        .iter()
        .filter(|c| c.action == "ecs:DescribeServices" || c.action == "s3:HeadObject")
        .collect();
    let at: Vec<String> = waits.iter().map(|c| format!("{} +{}", c.action, ms(c.at - run.start))).collect();
    println!("calls while waiting for the service and the object: {} [{}]", waits.len(), at.join(", "));
}
