//! `create-cluster`: an ECS cluster and the network its Fargate tasks run in, each part found
//! before it is created so re-runs and resumed attempts never duplicate anything.

mod network;
mod parts;

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
        // Subnets only in the VPC this run made; routes only for what this run made.
        "ec2:CreateSubnet @created",
        "ec2:CreateSecurityGroup *",
        "ec2:AttachInternetGateway @created",
        "ec2:CreateRouteTable @created",
        "ec2:AssociateRouteTable @created",
    ];

    fn run(_ctx: &Context, input: Input) -> Result<Output, Error> {
        // Validate everything before creating anything.
        let plan = NetworkPlan::from_input(&input)?;
        let (net, cluster_arn, cluster_name) = match &plan {
            // A new VPC is created anyway, so the cluster is made at the same time (parts.rs).
            NetworkPlan::NewVpc { cidr, subnet_cidrs, security_group } => {
                let (net, cluster) = parts::new_vpc_and_cluster(&input, cidr, subnet_cidrs, security_group)?;
                (net, cluster.arn, cluster.name)
            }
            // The network goes first: its checks against AWS (given subnets in the given VPC, a
            // default VPC existing) can fail, and then no cluster is made.
            _ => {
                let net = network::provision(&input.name, &plan)?;
                let cluster = ensure_cluster(&input.name, input.container_insights)?;
                (net, cluster.arn, cluster.name)
            }
        };
        Ok(Output {
            cluster_arn,
            cluster_name,
            vpc_id: net.vpc_id,
            subnet_ids: net.subnet_ids,
            security_group_id: net.security_group_ids[0].clone(),
            security_group_ids: net.security_group_ids,
        })
    }

    fn run_part(_ctx: &Context, part: &str, input: &str) -> Result<String, Error> {
        parts::run_part(part, input)
    }
}

/// Find before create: a resumed or re-run step adopts the cluster it already made.
fn ensure_cluster(name: &str, container_insights: bool) -> Result<ecs::Cluster, Error> {
    match ecs::describe_cluster(name)? {
        Some(existing) if existing.container_insights == container_insights => {
            log::info(&format!("cluster {} already exists; reusing it", existing.arn));
            Ok(existing)
        }
        _ => {
            let created =
                ecs::create_cluster(&ecs::CreateClusterRequest { name: name.to_string(), container_insights })?;
            log::info(&format!("cluster {} is {}", created.arn, created.status));
            Ok(created)
        }
    }
}

wharf_plugin_sdk::export_step!(CreateCluster);

/// The whole step against a fake host: what it calls, in which order, and what it leaves alone.
#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wharf_plugin_sdk::ec2;
    use wharf_plugin_sdk::testing::FakeHost;

    fn cluster(insights: bool) -> ecs::Cluster {
        ecs::Cluster {
            arn: "arn:aws:ecs:eu-west-1:1:cluster/web".into(),
            name: "web".into(),
            status: "ACTIVE".into(),
            container_insights: insights,
            active_services: 0,
            running_tasks: 0,
        }
    }

    /// A default VPC with one public and one private subnet, and the tasks' group already there.
    fn default_network(host: &FakeHost) {
        host.on_default_vpc(|| {
            Ok(Some(ec2::Vpc { id: "vpc-1".into(), cidr_block: "172.31.0.0/16".into(), is_default: true }))
        });
        host.on_subnets(|vpc| {
            let subnet = |id: &str, public| ec2::Subnet {
                id: id.into(),
                vpc_id: vpc.into(),
                availability_zone: "eu-west-1a".into(),
                cidr_block: "172.31.0.0/20".into(),
                map_public_ip_on_launch: public,
            };
            Ok(vec![subnet("subnet-public", true), subnet("subnet-private", false)])
        });
        host.on_find_security_group(|vpc, name| {
            Ok(Some(ec2::SecurityGroup { id: "sg-1".into(), name: name.into(), vpc_id: vpc.into() }))
        });
    }

    #[test]
    fn a_resumed_attempt_adopts_the_existing_cluster_and_network_without_creating() {
        let host = FakeHost::new();
        default_network(&host);
        host.on_describe_cluster(|_| Ok(Some(cluster(false))));
        // No on_create_cluster / on_create_security_group: a create call would panic the test.
        let out = host.run::<CreateCluster>(json!({ "name": "web" })).unwrap();
        assert_eq!(out["cluster_arn"], "arn:aws:ecs:eu-west-1:1:cluster/web");
        assert_eq!(out["subnet_ids"], json!(["subnet-public"]));
        assert_eq!(out["security_group_id"], "sg-1");
        let calls: Vec<String> = host.calls().iter().map(|c| c.function.to_string()).collect();
        assert_eq!(calls, ["ec2::default_vpc", "ec2::subnets", "ec2::find_security_group", "ecs::describe_cluster"]);
    }

    #[test]
    fn a_cluster_with_other_settings_is_created_again_with_the_requested_ones() {
        let host = FakeHost::new();
        default_network(&host);
        host.on_describe_cluster(|_| Ok(Some(cluster(false))));
        host.on_create_cluster(|request| {
            assert!(request.container_insights);
            Ok(cluster(true))
        });
        host.run::<CreateCluster>(json!({ "name": "web", "container_insights": true })).unwrap();
        assert_eq!(host.calls_to("ecs::create_cluster").len(), 1);
    }

    #[test]
    fn a_region_without_default_vpc_fails_before_any_cluster_call() {
        let host = FakeHost::new();
        host.on_default_vpc(|| Ok(None));
        let err = host.run::<CreateCluster>(json!({ "name": "web" })).unwrap_err();
        assert!(err.message().contains("no default VPC"), "{err}");
        assert!(host.calls_to("ecs::describe_cluster").is_empty());
    }

    /// A new VPC: the VPC, zones and cluster are one round of parts, the subnets and the group
    /// the next, then the route; a subnet that already exists is adopted, not made again.
    #[test]
    fn a_new_vpc_is_built_in_rounds_of_parts_and_existing_subnets_are_adopted() {
        let host = FakeHost::new();
        host.on_find_vpc(|_| Ok(None));
        host.on_create_vpc(|name, cidr| {
            assert_eq!((name, cidr), ("web-vpc", "10.0.0.0/16"));
            Ok(ec2::Vpc { id: "vpc-9".into(), cidr_block: cidr.into(), is_default: false })
        });
        host.on_availability_zones(|| Ok(vec!["eu-west-1a".into(), "eu-west-1b".into()]));
        host.on_describe_cluster(|_| Ok(None));
        host.on_create_cluster(|_| Ok(cluster(true)));
        host.on_subnets(|vpc| {
            Ok(vec![ec2::Subnet {
                id: "subnet-old".into(),
                vpc_id: vpc.into(),
                availability_zone: "eu-west-1a".into(),
                cidr_block: "10.0.0.0/24".into(),
                map_public_ip_on_launch: true,
            }])
        });
        host.on_find_security_group(|_, _| Ok(None));
        host.on_create_security_group(|vpc, name, _, _| {
            Ok(ec2::SecurityGroup { id: "sg-9".into(), name: name.into(), vpc_id: vpc.into() })
        });
        host.on_create_public_subnet(|vpc, name, cidr, zone| {
            assert_eq!((name, cidr, zone), ("web-public-2", "10.0.1.0/24", "eu-west-1b"));
            Ok(ec2::Subnet {
                id: "subnet-new".into(),
                vpc_id: vpc.into(),
                availability_zone: zone.into(),
                cidr_block: cidr.into(),
                map_public_ip_on_launch: true,
            })
        });
        host.on_create_internet_route(|_, _, subnets| {
            assert_eq!(subnets, ["subnet-old", "subnet-new"]);
            Ok("rtb-9".into())
        });
        let out = host
            .run::<CreateCluster>(json!({ "name": "web", "network": "new-vpc", "container_insights": true }))
            .unwrap();
        assert_eq!(out["subnet_ids"], json!(["subnet-old", "subnet-new"]), "the CIDRs' order, old or new");
        assert_eq!((out["vpc_id"].as_str(), out["security_group_id"].as_str()), (Some("vpc-9"), Some("sg-9")));
        assert_eq!(out["cluster_arn"], "arn:aws:ecs:eu-west-1:1:cluster/web");
        let calls: Vec<String> = host.calls().iter().map(|c| c.function.to_string()).collect();
        assert_eq!(
            calls,
            [
                "ec2::find_vpc",
                "ec2::create_vpc",
                "ec2::availability_zones",
                "ecs::describe_cluster",
                "ecs::create_cluster",
                "ec2::subnets",
                "ec2::find_security_group",
                "ec2::create_security_group",
                "ec2::create_public_subnet",
                "ec2::create_internet_route",
            ]
        );
    }
}
