//! `create-cluster`: an ECS cluster and the network its Fargate tasks run in, each part found
//! before it is created so re-runs and resumed attempts never duplicate anything.

mod network;

use network::{Network, NetworkPlan};
use serde::{Deserialize, Serialize};
use wharf_plugin_sdk::{Context, Error, Step, ecs, log};

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// Cluster name; also names the network resources (`<name>-vpc`, `<name>-tasks`, ...).
    pub name: String,
    /// Turn on CloudWatch Container Insights.
    #[serde(default)]
    pub container_insights: bool,
    /// `default-vpc` (the default), `new-vpc` or `given`.
    #[serde(default)]
    pub network: Network,
    /// `new-vpc`: the VPC's CIDR block (default `10.0.0.0/16`); subnets are its first two /24s.
    pub vpc_cidr: Option<String>,
    /// `given`: the VPC the subnets are in.
    pub vpc_id: Option<String>,
    /// `given`: subnet ids for the tasks.
    #[serde(default)]
    pub subnets: Vec<String>,
    /// `given`: security group ids for the tasks.
    #[serde(default)]
    pub security_groups: Vec<String>,
    /// `default-vpc` / `new-vpc`: TCP ports the tasks' security group opens to 0.0.0.0/0.
    #[serde(default)]
    pub ingress_ports: Vec<u16>,
    /// `default-vpc` / `new-vpc`: the security group's name (default `<name>-tasks`).
    pub security_group_name: Option<String>,
}

#[derive(Serialize, Debug)]
pub struct Output {
    pub cluster_arn: String,
    pub cluster_name: String,
    pub vpc_id: String,
    pub subnet_ids: Vec<String>,
    /// The tasks' security group (the first one given in `given` mode).
    pub security_group_id: String,
    /// All of the tasks' security groups (more than one only in `given` mode).
    pub security_group_ids: Vec<String>,
}

pub struct CreateCluster;

impl Step for CreateCluster {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "create-cluster";
    const DESCRIPTION: &'static str = "Creates an ECS cluster (or adopts the active one of that name) and its network: \
         the default VPC's subnets, a new VPC with two public subnets, or given subnets, plus a security group.";
    // The VPC id that subnets and security groups are created in is not known when the step
    // starts (the default VPC's id is looked up, a new VPC is created by this very step), so
    // those two grants cannot be scoped tighter than `*`. Names that are known are scoped.
    const GRANTS: &'static [&'static str] = &[
        "ecs:DescribeClusters ${with.name}",
        "ecs:CreateCluster ${with.name}",
        "ec2:DescribeVpcs *",
        "ec2:DescribeSubnets *",
        "ec2:DescribeAvailabilityZones *",
        "ec2:DescribeSecurityGroups *",
        "ec2:CreateVpc ${with.name}-vpc",
        "ec2:CreateInternetGateway ${with.name}-public",
        "ec2:CreateSubnet *",
        "ec2:CreateSecurityGroup *",
    ];

    fn run(_ctx: &Context, input: Input) -> Result<Output, Error> {
        // Validate everything before creating anything; the network goes first because its
        // checks against AWS (given subnets in the given VPC, a default VPC existing) can fail.
        let plan = NetworkPlan::from_input(&input)?;
        let net = network::provision(&input.name, &plan)?;
        let cluster = ensure_cluster(&input)?;
        Ok(Output {
            cluster_arn: cluster.arn,
            cluster_name: cluster.name,
            vpc_id: net.vpc_id,
            subnet_ids: net.subnet_ids,
            security_group_id: net.security_group_ids[0].clone(),
            security_group_ids: net.security_group_ids,
        })
    }
}

/// Find before create: a resumed or re-run step adopts the cluster it already made.
fn ensure_cluster(input: &Input) -> Result<ecs::Cluster, Error> {
    match ecs::describe_cluster(&input.name)? {
        Some(existing) if existing.container_insights == input.container_insights => {
            log::info(&format!("cluster {} already exists; reusing it", existing.arn));
            Ok(existing)
        }
        _ => {
            let created = ecs::create_cluster(&ecs::CreateClusterRequest {
                name: input.name.clone(),
                container_insights: input.container_insights,
            })?;
            log::info(&format!("cluster {} is {}", created.arn, created.status));
            Ok(created)
        }
    }
}

wharf_plugin_sdk::export_step!(CreateCluster);
