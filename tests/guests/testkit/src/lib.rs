//! A test plugin whose behaviour is picked by its `mode` input. It imports only `log` (and WASI),
//! so it needs no grant: everything hostile it does must be stopped by the sandbox itself.

use serde::Deserialize;
use serde_json::{Value, json};
use wharf_plugin_sdk::parallel::{self, Part};
use wharf_plugin_sdk::{Context, Error, Step, log};

#[derive(Deserialize)]
struct Input {
    mode: String,
    /// Echoed back by `echo`.
    #[serde(default)]
    value: Value,
    /// For `fail-then-succeed`: how many attempts fail first.
    #[serde(default)]
    failures: u32,
    /// For `sleep`: milliseconds to sleep.
    #[serde(default)]
    millis: u64,
    /// For `parts`: the parts to start, by name (see `run_part`).
    #[serde(default)]
    parts: Vec<String>,
    /// For `parts`: MiB the step allocates and holds while its parts run.
    #[serde(default)]
    hold_mib: usize,
}

struct Testkit;

impl Step for Testkit {
    type Input = Input;
    type Output = Value;
    const NAME: &'static str = "testkit";
    const DESCRIPTION: &'static str = "Test behaviours: echo, fail, sleep and hostile ones.";
    const GRANTS: &'static [&'static str] = &[];

    fn run(ctx: &Context, input: Input) -> Result<Value, Error> {
        match input.mode.as_str() {
            "echo" => {
                log::info("echoing");
                Ok(json!({ "value": input.value, "attempt": ctx.attempt, "key": ctx.idempotency_key }))
            }
            "fail-then-succeed" => {
                if ctx.attempt <= input.failures {
                    Err(Error::retryable("Flaky", format!("attempt {} fails on purpose", ctx.attempt)))
                } else {
                    Ok(json!({ "attempt": ctx.attempt }))
                }
            }
            "fail-permanent" => Err(Error::permanent("Broken", "this step always fails")),
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_millis(input.millis));
                Ok(json!({ "slept_ms": input.millis, "in_doubt": ctx.in_doubt }))
            }
            "infinite-loop" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "allocate-1gib" => {
                let v = vec![1u8; 1 << 30];
                Ok(json!({ "len": std::hint::black_box(v).len() }))
            }
            "read-passwd" => match std::fs::read_to_string("/etc/passwd") {
                Ok(s) => Ok(json!({ "leaked": s })),
                Err(e) => Err(Error::permanent("Sandboxed", format!("reading /etc/passwd failed: {e}"))),
            },
            "open-socket" => match std::net::TcpStream::connect("127.0.0.1:22") {
                Ok(_) => Ok(json!({ "connected": true })),
                Err(e) => Err(Error::permanent("Sandboxed", format!("connecting failed: {e}"))),
            },
            "read-env" => Ok(json!({ "vars": std::env::vars().count() })),
            "panic" => panic!("testkit panics on purpose"),
            // Starts the named parts at once; reports each one's output or error, in order.
            "parts" => {
                let held = vec![1u8; input.hold_mib << 20];
                let parts: Vec<Part> = input
                    .parts
                    .iter()
                    .enumerate()
                    .map(|(i, name)| Part::new(name, &json!({ "index": i, "value": input.value })))
                    .collect::<Result<_, _>>()?;
                let results = parallel::run_all(&parts)
                    .into_iter()
                    .map(|r| match parallel::output::<Value>(r) {
                        Ok(out) => json!({ "ok": out }),
                        Err(e) => json!({ "error": e.code(), "message": e.message() }),
                    })
                    .collect::<Vec<_>>();
                Ok(json!({ "parts": results, "held": std::hint::black_box(held).len() }))
            }
            other => Err(Error::invalid_input(format!("unknown mode `{other}`"))),
        }
    }

    fn run_part(ctx: &Context, part: &str, input: &str) -> Result<String, Error> {
        let input: Value = parallel::input(part, input)?;
        match part {
            "echo" => {
                log::info(&format!("part {} echoing", input["index"]));
                parallel::encode(
                    part,
                    &json!({ "index": input["index"], "value": input["value"], "attempt": ctx.attempt }),
                )
            }
            // Allocates `value` MiB (the step's memory budget is shared with its parts).
            "allocate" => {
                let bytes = vec![1u8; input["value"].as_u64().unwrap_or(0) as usize * (1 << 20)];
                parallel::encode(part, &json!({ "allocated": std::hint::black_box(bytes).len() }))
            }
            "fail" => Err(Error::permanent("PartBroken", format!("part {} fails on purpose", input["index"]))),
            "panic" => panic!("testkit part panics on purpose"),
            "nested" => {
                let results = parallel::run_all(&[Part::new("echo", &input)?]);
                results.into_iter().next().expect("one result").map(|_| "\"nested ran\"".to_string())
            }
            other => Err(Error::invalid_input(format!("unknown part `{other}`"))),
        }
    }
}

wharf_plugin_sdk::export_step!(Testkit);
