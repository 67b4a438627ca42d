//! A plugin built against `wharf:plugin@1.0.0`: wharf must refuse it, saying which versions it
//! supports, instead of failing to link with a missing-import error.

wit_bindgen::generate!({ path: "wit", world: "step" });

use wharf::plugin::log;

struct WrongVersion;

impl Guest for WrongVersion {
    fn describe() -> PluginInfo {
        PluginInfo { name: "wrong-version".into(), version: "1.0.0".into(), description: String::new(), grants: vec![] }
    }
    fn run(_ctx: StepContext) -> Result<String, Error> {
        log::write(log::Level::Info, "running");
        Ok("{}".into())
    }
}

export!(WrongVersion);
