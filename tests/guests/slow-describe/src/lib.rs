//! A plugin whose `describe` sleeps for an hour: `std::thread::sleep` is a `wasi:clocks`
//! subscription polled through `wasi:io/poll`, a host call that never returns by itself. The
//! host must stop it at describe's deadline, like a spinning one.

use std::time::Duration;
use wharf_plugin_sdk::bindings::wharf::plugin::types::{Error as WitError, PluginInfo, StepContext};

struct SlowDescribe;

impl wharf_plugin_sdk::bindings::Guest for SlowDescribe {
    fn describe() -> PluginInfo {
        std::thread::sleep(Duration::from_secs(3600));
        PluginInfo { name: "slow-describe".into(), version: "0".into(), description: String::new(), grants: vec![] }
    }

    fn run(_ctx: StepContext) -> Result<String, WitError> {
        Ok("{}".into())
    }
}

impl wharf_plugin_sdk::bindings::exports::wharf::plugin::parts::Guest for SlowDescribe {
    fn run_part(_ctx: StepContext, _part: String, _input: String) -> Result<String, WitError> {
        Ok("{}".into())
    }
}

wharf_plugin_sdk::bindings::export!(SlowDescribe);
