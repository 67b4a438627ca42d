//! A test plugin that imports `ecs` and describes whatever cluster it is told to. It declares no
//! grants, so it only runs when the workflow grants it `ecs` access, and each call is checked.

use serde::Deserialize;
use serde_json::{Value, json};
use wharf_plugin_sdk::{Context, Error, Step, ecs};

#[derive(Deserialize)]
struct Input {
    cluster: String,
}

struct EcsCaller;

impl Step for EcsCaller {
    type Input = Input;
    type Output = Value;
    const NAME: &'static str = "ecs-caller";
    const DESCRIPTION: &'static str = "Describes the cluster it is given.";
    const GRANTS: &'static [&'static str] = &[];

    fn run(_ctx: &Context, input: Input) -> Result<Value, Error> {
        let found = ecs::describe_cluster(&input.cluster)?;
        Ok(json!({ "found": found.is_some() }))
    }
}

wharf_plugin_sdk::export_step!(EcsCaller);
