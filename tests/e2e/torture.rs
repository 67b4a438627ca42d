//! Crash-resume torture: `workflows/ecs-example.toml` against moto, its `wharf` process killed
//! with SIGKILL at N points spread over the run, then resumed until the run finishes. After
//! each run the deployment must be correct with every resource existing exactly once (counted
//! through the AWS API), and after teardown nothing from the run may remain.
//!
//! Kill points, in turn: just before the k-th AWS call, just after it (the `fault-injection`
//! feature's `WHARF_CRASH_AT=before:#k|after:#k`, k covering every call of a calibration run),
//! and at a seeded random delay (a real SIGKILL from outside). Every fourth run also has its
//! teardown killed at a random delay.
//!
//! `WHARF_TORTURE_N` (default 6) runs, `WHARF_TORTURE_SEED` to reproduce (the seed is printed).
//! The documented long run: `scripts/torture.sh 200`.

use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use wharf_tests::ecs_example::{self, Inventory};
use wharf_tests::fault_proxy::{SplitMix, seed_from_env};
use wharf_tests::{Scratch, aws_config, text};

const MAX_RESUMES: usize = 3;

#[derive(Debug, Clone, Copy)]
enum KillPoint {
    BeforeCall(u32),
    AfterCall(u32),
    Delay(Duration),
}

#[derive(Default, Debug)]
struct Tally {
    runs: usize,
    kills: BTreeMap<&'static str, usize>,
    /// Kill points the process never reached (it finished first).
    missed: usize,
    resumes: usize,
    teardown_kills: usize,
    teardown_reruns: usize,
}

struct Deployment {
    scratch: Scratch,
}

impl Deployment {
    fn wharf(&self, args: &[&str]) -> Command {
        let mut cmd = self.scratch.wharf();
        cmd.args(args).envs(ecs_example::env());
        cmd
    }

    fn status(&self, run_id: Option<&str>) -> Value {
        let mut args = vec!["--output", "json", "status"];
        args.extend(run_id);
        let out = self.wharf(&args).output().unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    fn logs(&self, run_id: &str) -> String {
        text(&self.wharf(&["logs", run_id]).output().unwrap().stdout)
    }

    /// Runs `cmd`, killing it at `point`; returns its output and whether the kill happened.
    fn run_killed(&self, mut cmd: Command, point: Option<KillPoint>) -> (Output, bool) {
        match point {
            Some(KillPoint::BeforeCall(k)) => cmd.env("WHARF_CRASH_AT", format!("before:#{k}")),
            Some(KillPoint::AfterCall(k)) => cmd.env("WHARF_CRASH_AT", format!("after:#{k}")),
            _ => &mut cmd,
        };
        let mut child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
        if let Some(KillPoint::Delay(delay)) = point {
            let deadline = Instant::now() + delay;
            while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = child.kill(); // SIGKILL
        }
        let out = child.wait_with_output().unwrap();
        let killed = out.status.signal() == Some(libc_sigkill());
        (out, killed)
    }
}

fn libc_sigkill() -> i32 {
    9
}

/// The `i`-th of `n` kill points: two thirds just before/after a call (spread evenly over the
/// `calls` of a run, every one of them when `n` is large enough), one third at a random delay.
fn kill_point(i: usize, n: usize, calls: u32, run_time: Duration, rng: &mut SplitMix) -> KillPoint {
    if i % 3 == 2 {
        return KillPoint::Delay(run_time.mul_f64(rng.unit()));
    }
    let deterministic = n - n / 3;
    let j = i - i / 3; // index among deterministic points
    let slots = 2 * calls as usize;
    // Enough points: every (call, before/after) slot in turn. Fewer: calls spread evenly over
    // the run, alternating before and after.
    let (k, before) = if deterministic >= slots {
        (j % slots / 2, j % slots % 2 == 0)
    } else {
        (j * calls as usize / deterministic, j % 2 == 0)
    };
    let k = k as u32 + 1;
    if before { KillPoint::BeforeCall(k) } else { KillPoint::AfterCall(k) }
}

/// One deployment: killed at `point`, resumed to the end, checked, torn down (killed too when
/// `teardown_kill` is set), checked again. Returns the number of AWS calls of the first process.
async fn one_run(
    label: &str,
    point: Option<KillPoint>,
    teardown_kill: Option<Duration>,
    tally: &mut Tally,
) -> (u32, Duration, Duration) {
    wharf_tests::reset_moto();
    let config = aws_config().await;
    ecs_example::prepare(&config).await;
    let baseline = Inventory::take(&config).await;
    let d = Deployment { scratch: Scratch::new() };
    let args = ecs_example::run_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let started = Instant::now();
    let (out, killed) = d.run_killed(d.wharf(&args), point);
    if killed {
        let kind = match point {
            Some(KillPoint::BeforeCall(_)) => "before call",
            Some(KillPoint::AfterCall(_)) => "after call",
            _ => "random delay",
        };
        *tally.kills.entry(kind).or_default() += 1;
    } else if point.is_some() {
        tally.missed += 1;
    }
    let mut run_id = d.status(None)["run"]["id"].as_str().map(str::to_string);
    if run_id.is_none() {
        // Killed before the run was even journaled: nothing to resume, start it again.
        assert!(killed, "{label}: no run recorded: {}{}", text(&out.stdout), text(&out.stderr));
        let out = d.wharf(&args).output().unwrap();
        assert!(out.status.success(), "{label}: rerun failed: {}{}", text(&out.stdout), text(&out.stderr));
        run_id = d.status(None)["run"]["id"].as_str().map(str::to_string);
    } else if !killed {
        assert!(out.status.success(), "{label}: run failed: {}{}", text(&out.stdout), text(&out.stderr));
    }
    let run_id = run_id.unwrap();
    let calls = d.logs(&run_id).lines().filter(|l| l.contains(" call ")).count() as u32;

    let mut resumes = 0;
    while d.status(Some(&run_id))["run"]["status"] != "succeeded" {
        resumes += 1;
        assert!(resumes <= MAX_RESUMES, "{label}: still not finished after {MAX_RESUMES} resumes");
        let out = d.wharf(&["resume", &run_id]).output().unwrap();
        assert!(
            out.status.success(),
            "{label}: resume {resumes} failed: {}{}\n--- logs ---\n{}",
            text(&out.stdout),
            text(&out.stderr),
            d.logs(&run_id)
        );
    }
    let run_time = started.elapsed();
    tally.resumes += resumes;

    let status = d.status(Some(&run_id));
    if let Err(e) = ecs_example::check_deployment(&config, &status).await {
        panic!("{label}: wrong deployment: {e}\n--- logs ---\n{}", d.logs(&run_id));
    }
    let added = Inventory::take(&config).await.added_since(&baseline);
    let mismatches = ecs_example::count_mismatches(&added);
    assert!(
        mismatches.is_empty(),
        "{label}: not exactly one of everything: {mismatches:#?}\n--- logs ---\n{}",
        d.logs(&run_id)
    );

    let teardown_started = Instant::now();
    let (out, killed) = d.run_killed(d.wharf(&["teardown", &run_id]), teardown_kill.map(KillPoint::Delay));
    tally.teardown_kills += killed as usize;
    if killed || !out.status.success() {
        tally.teardown_reruns += 1;
        let out = d.wharf(&["teardown", &run_id]).output().unwrap();
        assert!(
            out.status.success(),
            "{label}: teardown failed: {}{}\n--- logs ---\n{}",
            text(&out.stdout),
            text(&out.stderr),
            d.logs(&run_id)
        );
    }
    let teardown_time = teardown_started.elapsed();
    let left = Inventory::take(&config).await.added_since(&baseline);
    assert!(left.is_empty(), "{label}: teardown left {left:#?}\n--- logs ---\n{}", d.logs(&run_id));
    tally.runs += 1;
    (calls, run_time, teardown_time)
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_anywhere_then_resumed_deploys_exactly_once_and_tears_down_clean() {
    let n: usize = std::env::var("WHARF_TORTURE_N").ok().and_then(|v| v.parse().ok()).unwrap_or(6);
    let seed = seed_from_env("WHARF_TORTURE_SEED");
    eprintln!("torture: N={n} WHARF_TORTURE_SEED={seed}");
    let mut rng = SplitMix(seed);
    let mut tally = Tally::default();
    let started = Instant::now();

    // Calibration: an undisturbed run says how many calls and how much time there are to hit.
    let (calls, run_time, teardown_time) = one_run("calibration", None, None, &mut tally).await;
    eprintln!("torture: calibration run: {calls} AWS calls, {run_time:?}, teardown {teardown_time:?}");

    for i in 0..n {
        let point = kill_point(i, n, calls, run_time, &mut rng);
        let teardown_kill = (i % 4 == 3).then(|| teardown_time.mul_f64(rng.unit()));
        let label = format!("run {}/{n} killed at {point:?} (seed {seed})", i + 1);
        one_run(&label, Some(point), teardown_kill, &mut tally).await;
        eprintln!("torture: {label}: ok");
    }
    let kills: usize = tally.kills.values().sum();
    eprintln!(
        "torture: SUMMARY seed={seed} runs={} kills={kills} {:?} missed={} resumes={} teardown_kills={} \
         teardown_reruns={} duplicates=0 leaks=0 wall={:?}",
        tally.runs,
        tally.kills,
        tally.missed,
        tally.resumes,
        tally.teardown_kills,
        tally.teardown_reruns,
        started.elapsed()
    );
    assert!(kills * 2 >= n, "most kill points must be reached: {tally:?}");
}
