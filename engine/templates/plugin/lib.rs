//! `{{name}}`: a wharf step plugin.
//!
//! As generated, it checks an ECS cluster: it outputs whether the cluster exists, its ARN and
//! status and what it runs, and with `require_active = true` fails the step unless it is ACTIVE.
//! Make it your own: change `Input`, `Output`, `GRANTS` and `run`, and the tests below.

use serde::{Deserialize, Serialize};
use wharf_plugin_sdk::{Context, Error, Step, ecs, info};

/// The step's `with` inputs. Unknown keys are refused, so typos in a workflow fail loudly.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// The ECS cluster to look at.
    pub cluster: String,
    /// Fail the step unless the cluster exists and is ACTIVE.
    #[serde(default)]
    pub require_active: bool,
}

/// The step's outputs: later steps read them as `${steps.<id>.outputs.<field>}`.
#[derive(Serialize, Debug)]
pub struct Output {
    pub exists: bool,
    pub arn: String,
    pub status: String,
    pub active_services: u32,
    pub running_tasks: u32,
}

pub struct {{type_name}};

impl Step for {{type_name}} {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "{{name}}";
    const DESCRIPTION: &'static str = "Reports an ECS cluster's status; optionally requires it to be ACTIVE.";
    /// What the plugin needs (`wharf plugin inspect` shows it). A workflow step using this
    /// plugin must grant it, e.g. `grants = ["ecs:DescribeClusters my-cluster"]`.
    const GRANTS: &'static [&'static str] = &["ecs:DescribeClusters ${with.cluster}"];

    fn run(_ctx: &Context, input: Input) -> Result<Output, Error> {
        if input.cluster.trim().is_empty() {
            return Err(Error::invalid_input("`cluster` must name an ECS cluster"));
        }
        // `?` turns the host's error (throttling, missing grant, ...) into the step's error,
        // keeping whether it is worth retrying.
        let Some(cluster) = ecs::describe_cluster(&input.cluster)? else {
            if input.require_active {
                return Err(Error::permanent("ClusterNotFound", format!("cluster `{}` does not exist", input.cluster)));
            }
            info!("cluster {} does not exist", input.cluster);
            return Ok(Output { exists: false, arn: String::new(), status: "MISSING".into(), active_services: 0, running_tasks: 0 });
        };
        if input.require_active && cluster.status != "ACTIVE" {
            // PROVISIONING becomes ACTIVE on its own: let the scheduler retry with backoff.
            return Err(Error::retryable("ClusterNotActive", format!("cluster `{}` is {}", cluster.name, cluster.status)));
        }
        info!("cluster {} is {} with {} services", cluster.arn, cluster.status, cluster.active_services);
        Ok(Output {
            exists: true,
            arn: cluster.arn,
            status: cluster.status,
            active_services: cluster.active_services,
            running_tasks: cluster.running_tasks,
        })
    }
}

wharf_plugin_sdk::export_step!({{type_name}});

/// Unit tests run natively with `cargo test`: the host's capabilities are answered by a
/// `FakeHost` each test configures (canned answers, injected errors) and asserts on.
#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wharf_plugin_sdk::testing::FakeHost;

    fn cluster(name: &str, status: &str) -> ecs::Cluster {
        ecs::Cluster {
            arn: format!("arn:aws:ecs:eu-west-1:123456789012:cluster/{name}"),
            name: name.into(),
            status: status.into(),
            container_insights: false,
            active_services: 2,
            running_tasks: 3,
        }
    }

    #[test]
    fn reports_an_active_cluster() {
        let host = FakeHost::new();
        host.on_describe_cluster(|name| Ok(Some(cluster(name, "ACTIVE"))));
        let out = host.run::<{{type_name}}>(json!({ "cluster": "web", "require_active": true })).unwrap();
        assert_eq!(out["exists"], true);
        assert_eq!(out["running_tasks"], 3);
        assert_eq!(host.calls()[0].to_string(), r#"ecs::describe_cluster("web")"#);
    }

    #[test]
    fn a_missing_cluster_is_reported_or_fails_when_required() {
        let host = FakeHost::new();
        host.on_describe_cluster(|_| Ok(None));
        let out = host.run::<{{type_name}}>(json!({ "cluster": "web" })).unwrap();
        assert_eq!(out["exists"], false);
        let err = host.run::<{{type_name}}>(json!({ "cluster": "web", "require_active": true })).unwrap_err();
        assert_eq!(err.code(), "ClusterNotFound");
        assert!(!err.is_retryable());
    }

    #[test]
    fn host_errors_and_bad_inputs_fail_the_step() {
        let host = FakeHost::new();
        host.on_describe_cluster(|_| Err(Error::retryable("ThrottlingException", "rate exceeded")));
        assert!(host.run::<{{type_name}}>(json!({ "cluster": "web" })).unwrap_err().is_retryable());
        let err = host.run::<{{type_name}}>(json!({ "cluster": "web", "colour": "blue" })).unwrap_err();
        assert!(err.message().contains("colour"), "{err}");
    }
}
