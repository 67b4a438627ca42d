//! `create-cluster`: an ECS cluster, found before created so re-runs never duplicate it.

use serde::{Deserialize, Serialize};
use wharf_plugin_sdk::{Context, Error, Step, ecs, log};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// Cluster name.
    pub name: String,
    /// Turn on CloudWatch Container Insights.
    #[serde(default)]
    pub container_insights: bool,
}

#[derive(Serialize, Debug)]
pub struct Output {
    pub cluster_arn: String,
    pub cluster_name: String,
}

pub struct CreateCluster;

impl Step for CreateCluster {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "create-cluster";
    const DESCRIPTION: &'static str = "Creates an ECS cluster, or adopts the active one of that name.";
    const GRANTS: &'static [&'static str] = &["ecs:DescribeClusters ${with.name}", "ecs:CreateCluster ${with.name}"];

    fn run(_ctx: &Context, input: Input) -> Result<Output, Error> {
        if input.name.is_empty() || input.name.len() > 255 {
            return Err(Error::invalid_input("`name` must be 1 to 255 characters"));
        }
        // Find before create: a resumed or re-run step adopts the cluster it already made.
        let cluster = match ecs::describe_cluster(&input.name)? {
            Some(existing) if existing.container_insights == input.container_insights => {
                log::info(&format!("cluster {} already exists; reusing it", existing.arn));
                existing
            }
            _ => {
                let created = ecs::create_cluster(&ecs::CreateClusterRequest {
                    name: input.name.clone(),
                    container_insights: input.container_insights,
                })?;
                log::info(&format!("cluster {} is {}", created.arn, created.status));
                created
            }
        };
        Ok(Output { cluster_arn: cluster.arn, cluster_name: cluster.name })
    }
}

wharf_plugin_sdk::export_step!(CreateCluster);
