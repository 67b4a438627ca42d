//! Whole-process runs of the ECS example: wharf (run + teardown), the aws CLI script and the
//! boto3 script, against one moto behind the bench proxy. The driver plays the container (moto
//! never runs one) identically for all three: when moto has answered CreateService, it assumes
//! the task role and puts the object `verify` looks for, directly against moto.

use crate::proxy::{Call, Proxy};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// `wharf run --teardown`: one process, like the peers' scripts.
    Wharf,
    /// `wharf run`, then `wharf teardown RUN`: two processes.
    WharfTwoProcesses,
    /// wharf with no record of the layers it pushed before (`<cache>/registry-layers` removed):
    /// every layer is compressed and pushed as in a first build.
    WharfFirstBuild,
    AwsCli,
    Boto3,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::Wharf => "wharf",
            Tool::WharfTwoProcesses => "wharf, run then teardown",
            Tool::WharfFirstBuild => "wharf, first build",
            Tool::AwsCli => "aws CLI script",
            Tool::Boto3 => "boto3 script",
        }
    }
}

pub struct Env {
    pub root: PathBuf,
    pub wharf: PathBuf,
    pub venv_bin: PathBuf,
    pub moto: String,
    /// moto's process, to measure the CPU it spends on each run (`WHARF_BENCH_MOTO_PID`).
    pub moto_pid: Option<u32>,
    /// `--param` values for wharf (the image, or the registry to build and push it to).
    pub wharf_params: Vec<String>,
    /// Extra environment of every tool (IMAGE or IMAGE_DIR + REGISTRY..., registry credentials).
    pub tool_env: Vec<(String, String)>,
    pub state: PathBuf,
}

pub struct RunResult {
    pub wall: Duration,
    /// Largest peak RSS of the tool's processes (KiB), from wait4.
    pub max_rss_kib: i64,
    pub calls: Vec<Call>,
    pub start: Instant,
    /// wharf only: the run id (for its journal).
    pub run_id: Option<String>,
    /// wharf only: wall-clock ms (epoch) at spawn, and (two processes) how long `wharf run` took
    /// before `wharf teardown` started.
    pub started_at_ms: u64,
    pub run_process: Option<Duration>,
    /// CPU time moto's process used during the run (user + system), when its pid is known.
    pub moto_cpu: Option<Duration>,
}

/// Resets moto, creates the bucket the tutorial assumes exists, and warms moto up (all outside
/// any timing).
///
/// After a reset moto rebuilds each service's backend on its first request: the first EC2 call
/// takes about a second (it loads the region's AMIs and instance types), then 15 ms. Real AWS has
/// no such start, and every tool paid it once per run, the same absolute second added to each,
/// which hid the differences between them. So one read-only call per service the deployment uses
/// is made here, for every tool alike.
pub async fn reset(env: &Env, aws: &aws_config::SdkConfig, s3: &aws_sdk_s3::Client) {
    let client = reqwest_free_post(&env.moto, "/moto-api/reset").await;
    assert!(client, "moto reset failed");
    s3.create_bucket().bucket("projectjz").send().await.expect("create bucket");
    let warm = "warm moto up after its reset";
    aws_sdk_ec2::Client::new(aws).describe_vpcs().send().await.expect(warm);
    aws_sdk_ecs::Client::new(aws).list_clusters().send().await.expect(warm);
    aws_sdk_iam::Client::new(aws).list_roles().send().await.expect(warm);
    aws_sdk_secretsmanager::Client::new(aws).list_secrets().send().await.expect(warm);
    aws_sdk_cloudwatchlogs::Client::new(aws).describe_log_groups().send().await.expect(warm);
}

/// POST without a body over a plain TCP connection (moto's reset endpoint).
async fn reqwest_free_post(base: &str, path: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = base.trim_start_matches("http://").trim_end_matches('/');
    let Ok(mut s) = tokio::net::TcpStream::connect(host).await else { return false };
    let req = format!("POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    out.starts_with(b"HTTP/1.1 200") || out.starts_with(b"HTTP/1.0 200")
}

/// Runs one tool to completion with the container stand-in armed.
pub async fn run(env: &Env, tool: Tool, proxy: &Arc<Proxy>, aws: &aws_config::SdkConfig) -> RunResult {
    proxy.take();
    if tool == Tool::WharfFirstBuild {
        // Outside the timing, like moto's reset. The compiled plugins stay cached.
        let _ = std::fs::remove_dir_all(env.state.join("cache/registry-layers"));
    }
    let standin = tokio::spawn(play_container(proxy.clone(), aws.clone(), env.root.clone()));
    let moto_before = env.moto_pid.and_then(process_cpu);
    let start = Instant::now();
    let started_at_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    // Peak RSS, wharf's run id, and (two processes) when `wharf run` exited.
    let (rss, run_id, run_process) = match tool {
        Tool::Wharf | Tool::WharfFirstBuild => {
            let args = wharf_args(env, &["run", "--teardown", "workflows/ecs-example.toml"], true);
            let (stdout, rss) = spawn(env, &env.wharf, &args, proxy);
            last_wharf_output(&stdout);
            let json: serde_json::Value = serde_json::from_slice(&stdout).expect("wharf --output json");
            assert_eq!(json["status"], "succeeded", "wharf run failed: {json:#}");
            assert_eq!(json["teardown"]["status"], "succeeded", "wharf's teardown failed: {json:#}");
            (rss, Some(json["run_id"].as_str().expect("run id").to_string()), None)
        }
        Tool::WharfTwoProcesses => {
            let (stdout, run_rss) =
                spawn(env, &env.wharf, &wharf_args(env, &["run", "workflows/ecs-example.toml"], true), proxy);
            let json: serde_json::Value = serde_json::from_slice(&stdout).expect("wharf --output json");
            let id = json["run_id"].as_str().expect("run id").to_string();
            assert_eq!(json["status"], "succeeded", "wharf run failed: {json:#}");
            let run_process = start.elapsed();
            let (_, teardown_rss) = spawn(env, &env.wharf, &wharf_args(env, &["teardown", &id], false), proxy);
            (run_rss.max(teardown_rss), Some(id), Some(run_process))
        }
        Tool::AwsCli => {
            let script = env.root.join("bench/peers/ecs-example-awscli.sh");
            (spawn(env, Path::new("bash"), &[script.display().to_string()], proxy).1, None, None)
        }
        Tool::Boto3 => {
            let script = env.root.join("bench/peers/ecs_example_boto3.py");
            (spawn(env, &env.venv_bin.join("python"), &[script.display().to_string()], proxy).1, None, None)
        }
    };
    let wall = start.elapsed();
    standin.abort();
    let moto_cpu = match (moto_before, env.moto_pid.and_then(process_cpu)) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before)),
        _ => None,
    };
    RunResult { wall, max_rss_kib: rss, calls: proxy.take(), start, run_id, started_at_ms, run_process, moto_cpu }
}

/// User + system CPU time of a process, all its threads (including finished ones: moto serves
/// each request on a new thread), from `/proc/PID/stat`. Its unit is the clock tick (10 ms here).
pub fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start at field 3; utime and
    // stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Some(Duration::from_millis(ticks * 1000 / hz.max(1)))
}

fn wharf_args(env: &Env, args: &[&str], image: bool) -> Vec<String> {
    let mut v: Vec<String> =
        ["--state-dir", &env.state.display().to_string(), "--output", "json"].iter().map(|s| s.to_string()).collect();
    v.extend(args.iter().map(|s| s.to_string()));
    if image {
        for p in &env.wharf_params {
            v.extend(["--param".to_string(), p.clone()]);
        }
    }
    v
}

/// The last `wharf run --output json` of this process (the bench reads the pushed image from it).
static LAST_OUTPUT: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

fn last_wharf_output(out: &[u8]) {
    *LAST_OUTPUT.lock().unwrap() = out.to_vec();
}

pub fn last_wharf_run() -> serde_json::Value {
    serde_json::from_slice(&LAST_OUTPUT.lock().unwrap()).unwrap_or_default()
}

/// Spawns, waits, returns stdout and the peak RSS in KiB (see `wait_rusage`).
fn spawn(env: &Env, program: &Path, args: &[String], proxy: &Proxy) -> (Vec<u8>, i64) {
    let child = command(env, program, args, proxy).stdout(Stdio::piped()).spawn().expect("spawn");
    wait_rusage(child, true)
}

pub fn command(env: &Env, program: &Path, args: &[String], proxy: &Proxy) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(&env.root)
        .env("AWS_ENDPOINT_URL", proxy.url())
        .envs(env.tool_env.iter().map(|(k, v)| (k, v)))
        .env("PATH", format!("{}:{}", env.venv_bin.display(), std::env::var("PATH").unwrap_or_default()))
        .stderr(Stdio::null());
    cmd
}

/// Reads the child's stdout to its end, then reaps it with wait4; returns its peak RSS (KiB).
///
/// The peak is the child's `VmHWM` (/proc/PID/status), sampled every 5 ms while it runs, not wait4's
/// `ru_maxrss`: at exec the kernel folds the pre-exec address space into `ru_maxrss`, and that is a
/// copy of (or, with vfork, the very) address space of this driver, several hundred MiB after the
/// in-process engine benchmarks. `/bin/true` spawned from here reported 413 MiB that way.
pub fn wait_rusage(mut child: std::process::Child, check: bool) -> (Vec<u8>, i64) {
    use std::io::Read;
    let pid = child.id();
    let sampler = std::thread::spawn(move || {
        let mut peak = 0;
        // Stops when the process is gone or a zombie (no Vm* lines left).
        while let Some(hwm) = vm_hwm_kib(pid) {
            peak = peak.max(hwm);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        peak
    });
    let mut out = Vec::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = stdout.read_to_end(&mut out);
    }
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child; `usage` is a valid rusage to fill.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert!(pid > 0, "wait4 failed");
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    if check {
        assert!(ok, "{:?} failed (status {status}): {}", child, String::from_utf8_lossy(&out));
    }
    std::mem::forget(child); // reaped above
    (out, sampler.join().expect("RSS sampler"))
}

/// `VmHWM` of a live process in KiB; None once it has exited.
fn vm_hwm_kib(pid: u32) -> Option<i64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The container's part: once CreateService succeeded, assume the task role and upload the file.
async fn play_container(proxy: Arc<Proxy>, aws: aws_config::SdkConfig, root: PathBuf) {
    proxy.service_created.notified().await;
    let creds = aws_sdk_sts::Client::new(&aws)
        .assume_role()
        .role_arn("arn:aws:iam::123456789012:role/ECSs3AccessTaskRole")
        .role_session_name("ecs-task")
        .send()
        .await
        .expect("assume the task role")
        .credentials
        .expect("credentials");
    let provider = aws_sdk_s3::config::Credentials::new(
        creds.access_key_id(),
        creds.secret_access_key(),
        Some(creds.session_token().to_string()),
        None,
        "task-role",
    );
    let config = aws_sdk_s3::config::Builder::from(&aws).credentials_provider(provider).force_path_style(true).build();
    let body = std::fs::read(root.join("workflows/app/model/sample.txt")).expect("sample file");
    aws_sdk_s3::Client::from_conf(config)
        .put_object()
        .bucket("projectjz")
        .key("ecs-example/sample.txt")
        .body(body.into())
        .send()
        .await
        .expect("put the container's object");
}
