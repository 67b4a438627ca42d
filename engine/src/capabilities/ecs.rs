//! `ecs`: Amazon ECS operations for the step plugins.

use crate::host::bindings::wharf::plugin::ecs::{Cluster, CreateClusterRequest, Host};
use crate::host::bindings::{ErrorKind, WitError};
use crate::host::sandbox::SandboxState;
use aws_sdk_ecs::types::{self as ecs, ClusterSetting, ClusterSettingName, Tag};
use std::collections::BTreeMap;

impl Host for SandboxState {
    async fn create_cluster(&mut self, request: CreateClusterRequest) -> Result<Cluster, WitError> {
        let caps = self.caps()?;
        caps.authorize("ecs:CreateCluster", &request.name)?;
        let insights = if request.container_insights { "enabled" } else { "disabled" };
        let setting = ClusterSetting::builder().name(ClusterSettingName::ContainerInsights).value(insights).build();
        let tags = caps.tags().into_iter().map(|(k, v)| Tag::builder().key(k).value(v).build());
        let send = caps
            .aws()
            .ecs()
            .await?
            .create_cluster()
            .cluster_name(&request.name)
            .settings(setting)
            .set_tags(Some(tags.collect()))
            .send();
        let out = caps.call("ecs:CreateCluster", &request.name, send).await?;
        let cluster = out.cluster.ok_or_else(|| missing("CreateCluster", "cluster"))?;
        let cluster = to_wit(&cluster);
        caps.record_created("ecs:cluster", &cluster.arn, Some(&cluster.name), BTreeMap::new())?;
        Ok(cluster)
    }

    async fn describe_cluster(&mut self, name: String) -> Result<Option<Cluster>, WitError> {
        let caps = self.caps()?;
        caps.authorize("ecs:DescribeClusters", &name)?;
        let send =
            caps.aws().ecs().await?.describe_clusters().clusters(&name).include(ecs::ClusterField::Settings).send();
        let out = caps.call("ecs:DescribeClusters", &name, send).await?;
        Ok(out.clusters().iter().find(|c| c.status() == Some("ACTIVE")).map(to_wit))
    }
}

fn to_wit(c: &ecs::Cluster) -> Cluster {
    let insights = c
        .settings()
        .iter()
        .any(|s| s.name() == Some(&ClusterSettingName::ContainerInsights) && s.value() == Some("enabled"));
    Cluster {
        arn: c.cluster_arn().unwrap_or_default().to_string(),
        name: c.cluster_name().unwrap_or_default().to_string(),
        status: c.status().unwrap_or_default().to_string(),
        container_insights: insights,
        active_services: c.active_services_count().max(0) as u32,
        running_tasks: c.running_tasks_count().max(0) as u32,
    }
}

fn missing(operation: &str, field: &str) -> WitError {
    WitError::new(ErrorKind::Retryable, "IncompleteResponse", format!("{operation} returned no `{field}`"))
}
