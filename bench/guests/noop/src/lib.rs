//! A step that does nothing and returns `{}`: no capability calls, no logs. Whatever a run of it
//! costs is the engine's overhead (instantiate, grant rendering, journal).

use serde::Deserialize;
use serde_json::{Value, json};
use wharf_plugin_sdk::{Context, Error, Step};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {}

struct Noop;

impl Step for Noop {
    type Input = Input;
    type Output = Value;
    const NAME: &'static str = "noop";
    const DESCRIPTION: &'static str = "Does nothing (benchmarks).";
    const GRANTS: &'static [&'static str] = &[];

    fn run(_ctx: &Context, _input: Input) -> Result<Value, Error> {
        Ok(json!({}))
    }
}

wharf_plugin_sdk::export_step!(Noop);
