//! AWS fault injection: wharf talks to moto through `fault_proxy`, which fails a share of the
//! requests (5xx, throttling, resets, hangs, slow answers; before or after moto applied them).
//! Deploy + teardown must still succeed with no duplicated and no leaked resource, counted
//! through the AWS API against moto directly. Errors that retrying cannot fix (access denied,
//! validation) must fail the step at once, with AWS's message, without any retry.
//!
//! `WHARF_FAULTS_K` deploy+teardown runs (default 3), `WHARF_FAULT_RATE` (default 0.2),
//! `WHARF_FAULTS_SEED` to reproduce. The documented long run: `scripts/faults.sh 50`.

use serde_json::Value;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use wharf_tests::ecs_example::{self, Inventory};
use wharf_tests::fault_proxy::{Fault, FaultConfig, FaultProxy, seed_from_env};
use wharf_tests::{Scratch, aws_config, moto_endpoint, text};

/// The workflow's names are fixed and moto is reset per run: the tests take turns.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A hung request must end well before the step's own timeout; the proxy hangs longer than this.
const ATTEMPT_TIMEOUT_MS: &str = "2000";

fn wharf(s: &Scratch, proxy: &FaultProxy, args: &[&str]) -> Command {
    let mut cmd = s.wharf();
    cmd.args(args)
        .envs(ecs_example::env())
        .env("AWS_ENDPOINT_URL", &proxy.url)
        .env("WHARF_AWS_ATTEMPT_TIMEOUT_MS", ATTEMPT_TIMEOUT_MS);
    cmd
}

fn status(s: &Scratch, run_id: Option<&str>) -> Value {
    let mut args = vec!["--output", "json", "status"];
    args.extend(run_id);
    serde_json::from_slice(&s.wharf().args(&args).output().unwrap().stdout).unwrap_or(Value::Null)
}

fn logs(s: &Scratch, run_id: &str) -> String {
    text(&s.wharf().args(["logs", run_id]).output().unwrap().stdout)
}

fn step<'a>(status: &'a Value, id: &str) -> &'a Value {
    status["steps"].as_array().and_then(|a| a.iter().find(|s| s["step_id"] == id)).unwrap_or(&Value::Null)
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_and_teardown_survive_a_20_percent_fault_rate_without_duplicates_or_leaks() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let k: usize = std::env::var("WHARF_FAULTS_K").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let rate: f64 = std::env::var("WHARF_FAULT_RATE").ok().and_then(|v| v.parse().ok()).unwrap_or(0.2);
    let seed = seed_from_env("WHARF_FAULTS_SEED");
    eprintln!("faults: K={k} rate={rate} WHARF_FAULTS_SEED={seed}");
    let proxy = FaultProxy::start(&moto_endpoint(), FaultConfig::random(rate, seed));
    let started = Instant::now();
    let mut step_retries = 0;

    for i in 1..=k {
        let label = format!("run {i}/{k} (seed {seed})");
        let run_started = Instant::now();
        wharf_tests::reset_moto();
        let config = aws_config().await;
        ecs_example::prepare(&config).await;
        let baseline = Inventory::take(&config).await;
        let s = Scratch::new();
        let args = ecs_example::run_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = wharf(&s, &proxy, &args).output().unwrap();
        let run_id = status(&s, None)["run"]["id"].as_str().map(str::to_string).unwrap_or_default();
        assert!(
            out.status.success(),
            "{label}: deploy failed: {}\n--- logs ---\n{}",
            text(&out.stderr),
            logs(&s, &run_id)
        );
        let st = status(&s, Some(&run_id));
        step_retries +=
            st["steps"].as_array().unwrap().iter().map(|s| s["attempts"].as_u64().unwrap() - 1).sum::<u64>();
        if let Err(e) = ecs_example::check_deployment(&config, &st).await {
            panic!("{label}: wrong deployment: {e}\n--- logs ---\n{}", logs(&s, &run_id));
        }
        let added = Inventory::take(&config).await.added_since(&baseline);
        let mismatches = ecs_example::count_mismatches(&added);
        assert!(mismatches.is_empty(), "{label}: {mismatches:#?}\n--- logs ---\n{}", logs(&s, &run_id));

        let out = wharf(&s, &proxy, &["teardown", &run_id]).output().unwrap();
        assert!(
            out.status.success(),
            "{label}: teardown failed: {}\n--- logs ---\n{}",
            text(&out.stderr),
            logs(&s, &run_id)
        );
        let left = Inventory::take(&config).await.added_since(&baseline);
        assert!(left.is_empty(), "{label}: teardown left {left:#?}\n--- logs ---\n{}", logs(&s, &run_id));
        // Faults cost retries and SDK timeouts, seconds each: a run that took minutes waited for
        // something it should not have; its log says what.
        if run_started.elapsed() > Duration::from_secs(120) {
            eprintln!("faults: {label} took {:?}; its log:\n{}", run_started.elapsed(), logs(&s, &run_id));
        }
        eprintln!("faults: {label}: ok ({:?} so far)", started.elapsed());
    }
    let stats = proxy.stats();
    eprintln!(
        "faults: SUMMARY seed={seed} runs={k} requests={} faults={} {:?} step_retries={step_retries} duplicates=0 \
         leaks=0 wall={:?}",
        stats.requests,
        stats.total_faults(),
        stats.faults,
        started.elapsed()
    );
    assert!(k == 0 || stats.total_faults() > 0, "the proxy injected nothing");
}

/// An error retrying cannot fix fails its step on the first attempt, with AWS's message, and the
/// request is sent exactly once (no SDK retry either).
#[tokio::test(flavor = "multi_thread")]
async fn access_denied_and_validation_errors_fail_fast_with_their_message() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // (operation, fault, step, code, requests: one per resource the step makes at once; the
    // roles step creates its two roles at the same time, as parts)
    for (operation, fault, step_id, code, sends) in [
        ("CreateRole", Fault::AccessDenied, "roles", "AccessDenied", 2),
        ("RegisterTaskDefinition", Fault::Validation, "taskdef", "ValidationException", 1),
        ("CreateSecret", Fault::AccessDenied, "registry-secret", "AccessDeniedException", 1),
        ("CreateVpc", Fault::AccessDenied, "cluster", "UnauthorizedOperation", 1),
    ] {
        wharf_tests::reset_moto();
        let config = aws_config().await;
        ecs_example::prepare(&config).await;
        let mut faults = FaultConfig::random(0.0, 1);
        faults.rules.push((operation.to_string(), fault));
        let proxy = FaultProxy::start(&moto_endpoint(), faults);
        let s = Scratch::new();
        let args = ecs_example::run_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let started = Instant::now();
        let out = wharf(&s, &proxy, &args).output().unwrap();
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{operation}: the run succeeded despite {fault:?}");
        let st = status(&s, None);
        let failed = step(&st, step_id);
        assert_eq!(failed["attempts"], 1, "{operation}: {fault:?} must not be retried: {st:#}");
        assert_eq!(failed["last"]["error"]["code"], code, "{st:#}");
        let message = failed["last"]["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("injected by the fault proxy"), "{operation}: AWS's message is kept: {message}");
        assert!(stderr.contains("injected by the fault proxy"), "{operation}: the CLI shows it: {stderr}");
        assert_eq!(proxy.stats().operations.get(operation), Some(&sends), "{operation}: sent once each, not retried");
        eprintln!("faults: {operation} {fault:?}: failed fast in {:?}", started.elapsed());
    }
}

/// A create without an idempotency token whose answer is lost is not resent by the SDK (that
/// would make a second, unrecorded VPC): the step's next attempt, which finds before it creates,
/// is its retry. The first `CreateVpc` fails with a 500 after moto applied it (the answer is
/// lost): one request, a second attempt that adopts the VPC, and exactly one VPC.
#[tokio::test(flavor = "multi_thread")]
async fn a_create_whose_answer_is_lost_is_retried_by_the_step_not_resent_by_the_sdk() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    wharf_tests::reset_moto();
    let config = aws_config().await;
    ecs_example::prepare(&config).await;
    let baseline = Inventory::take(&config).await;
    let mut faults = FaultConfig::random(0.0, 1);
    faults.rules.push(("CreateVpc".to_string(), Fault::Status500));
    faults.rule_times = Some(1);
    faults.rule_after = true;
    let proxy = FaultProxy::start(&moto_endpoint(), faults);
    let s = Scratch::new();
    let args = ecs_example::run_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = wharf(&s, &proxy, &args).output().unwrap();
    let st = status(&s, None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(step(&st, "cluster")["attempts"], 2, "{st:#}");
    assert_eq!(proxy.stats().operations.get("CreateVpc"), Some(&1), "sent once, then found");
    let added = Inventory::take(&config).await.added_since(&baseline);
    assert_eq!(ecs_example::count_mismatches(&added), Vec::<String>::new());
}
