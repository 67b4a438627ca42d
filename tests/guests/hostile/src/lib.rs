//! A hostile test plugin, picked by its `mode` input. It exports the raw WIT functions (not the
//! SDK's `Step`) so it can return outputs and errors no SDK plugin would, and it imports every
//! capability interface, so a step using it needs a grant for each service it imports.

use serde::Deserialize;
use serde_json::json;
use std::time::{Duration, Instant};
use wharf_plugin_sdk::bindings::wharf::plugin::types::{Error as WitError, PluginInfo, StepContext};
use wharf_plugin_sdk::{Error, ecs, iam, ledger, log, registry, s3, secrets};

#[derive(Deserialize)]
struct Input {
    mode: String,
    /// Sizes and counts, per mode.
    #[serde(default)]
    n: u64,
    /// Names and paths, per mode.
    #[serde(default)]
    target: String,
    #[serde(default)]
    other: String,
}

struct Hostile;

impl wharf_plugin_sdk::bindings::Guest for Hostile {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "hostile".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Misbehaves on purpose.".into(),
            grants: vec![],
        }
    }

    fn run(ctx: StepContext) -> Result<String, WitError> {
        let input: Input = serde_json::from_str(&ctx.inputs).map_err(|e| wit(Error::invalid_input(e.to_string())))?;
        run(input).map_err(wit)
    }
}

fn wit(e: Error) -> WitError {
    WitError { kind: e.kind(), code: e.code().into(), message: e.message().into(), http_status: None }
}

fn run(input: Input) -> Result<String, Error> {
    let n = input.n;
    let target = input.target.as_str();
    let value = match input.mode.as_str() {
        // Outputs of `n` bytes, built in place (no serde copy): the host must refuse, not journal them.
        "huge-output" => {
            let mut out = String::with_capacity(n as usize);
            out.push_str("{\"blob\":\"");
            while out.len() < n as usize - 2 {
                let chunk = (n as usize - 2 - out.len()).min(1 << 20);
                out.push_str(&"x".repeat(chunk));
            }
            out.push_str("\"}");
            return Ok(out);
        }
        // An error whose message is `n` bytes.
        "huge-error" => return Err(Error::permanent("Huge", "e".repeat(n as usize))),
        "log-flood" => {
            let line = "y".repeat(1000);
            for _ in 0..n {
                log::info(&line);
            }
            json!({ "logged": n })
        }
        "stdout-flood" => {
            let line = "z".repeat(1000);
            for _ in 0..n {
                println!("{line}");
            }
            json!({ "printed": n })
        }
        // `n` host calls as fast as the host answers them; reports how long they took.
        "call-flood" => {
            let started = Instant::now();
            for _ in 0..n {
                ledger::entries()?;
            }
            json!({ "calls": n, "elapsed_ms": started.elapsed().as_millis() as u64 })
        }
        // `n` calls the grants refuse, each of which the host would like to warn about.
        // `n` role creations: under `wharf plan` each is a planned call, costing no AWS round trip.
        "plan-flood" => {
            let trust = json!({ "Statement": [{ "Effect": "Allow", "Action": "sts:AssumeRole",
                "Principal": { "Service": "ecs-tasks.amazonaws.com" } }] })
            .to_string();
            for i in 0..n {
                iam::create_role(&format!("{target}-{i}"), &trust, "")?;
            }
            json!({ "planned": n })
        }
        // Text meant for the terminal (`target`, e.g. an escape sequence): logged, then failed with.
        "terminal-escape" => {
            log::info(target);
            log::progress(target);
            return Err(Error::permanent(target, target));
        }
        "denied-flood" => {
            let mut denied = 0;
            for _ in 0..n {
                if ecs::describe_cluster("not-granted-cluster").is_err() {
                    denied += 1;
                }
            }
            json!({ "denied": denied })
        }
        "grow-memory" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![7u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "recurse" => json!({ "depth": recurse(std::hint::black_box(1)) }),
        "sleep-forever" => {
            std::thread::sleep(Duration::from_secs(3600));
            json!({})
        }
        "exit" => std::process::exit(3),
        "dns" => {
            use std::net::ToSocketAddrs;
            match ("localhost", 80).to_socket_addrs() {
                Ok(addrs) => json!({ "resolved": addrs.count() }),
                Err(e) => return Err(Error::permanent("Sandboxed", format!("name lookup failed: {e}"))),
            }
        }
        "read-path" => match std::fs::read_dir(target) {
            Ok(entries) => json!({ "entries": entries.count() }),
            Err(e) => return Err(Error::permanent("Sandboxed", format!("reading {target} failed: {e}"))),
        },
        "ledger" => {
            let entries = ledger::entries()?;
            let mut steps: Vec<String> = entries.iter().map(|e| e.step_id.clone()).collect();
            steps.dedup();
            json!({ "entries": entries.len(), "steps": steps })
        }
        // Deletes the first ledger entry it can see (`target` = kind, `other` = id when given).
        "ledger-delete" => {
            let options = ledger::DeleteOptions { secret_recovery_days: None };
            ledger::delete(target, &input.other, options)?;
            json!({ "deleted": true })
        }
        "cluster" => json!({ "found": ecs::describe_cluster(target)?.is_some() }),
        "role" => json!({ "found": iam::get_role(target)?.is_some() }),
        "object" => {
            let (bucket, key) = target.split_once('/').unwrap_or((target, ""));
            json!({ "found": s3::get_object_info(bucket, key)?.is_some() })
        }
        // A secret whose value the host would read from the environment variable `other`.
        "secret-from-env" => {
            let value = secrets::SecretValue::Plain(secrets::ValueSource::Env(input.other.clone()));
            let secret = secrets::create_secret(target, "", &value, "0123456789abcdef0123456789abcdef")?;
            json!({ "arn": secret.arn })
        }
        "secret-from-file" => {
            let value = secrets::SecretValue::Plain(secrets::ValueSource::File(input.other.clone()));
            let secret = secrets::create_secret(target, "", &value, "0123456789abcdef0123456789abcdef")?;
            json!({ "arn": secret.arn })
        }
        // Registry access authenticated with a secret (`other`) the step was not granted.
        "registry-secret" => {
            let (host, name) = target.split_once('/').unwrap_or((target, "app"));
            let repo = registry::Repository {
                registry: host.into(),
                name: name.into(),
                auth: registry::Auth::BasicFromSecret(input.other.clone()),
            };
            json!({ "digest": registry::resolve(&repo, "latest")? })
        }
        other => return Err(Error::invalid_input(format!("unknown mode `{other}`"))),
    };
    Ok(value.to_string())
}

// Unbounded on purpose: the stack overflow must trap inside the sandbox.
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let pad = std::hint::black_box([depth; 64]);
    recurse(depth + 1) + pad[3]
}

/// A part misbehaves like a step: its input is a step input (`mode`, ...).
impl wharf_plugin_sdk::bindings::exports::wharf::plugin::parts::Guest for Hostile {
    fn run_part(_ctx: StepContext, _part: String, input: String) -> Result<String, WitError> {
        let input: Input = serde_json::from_str(&input).map_err(|e| wit(Error::invalid_input(e.to_string())))?;
        run(input).map_err(wit)
    }
}

wharf_plugin_sdk::bindings::export!(Hostile);
