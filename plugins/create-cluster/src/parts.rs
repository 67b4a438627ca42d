//! A new VPC and the cluster, built in three rounds of calls made at once (`parallel` parts)
//! instead of one chain: each AWS call is a round trip, and most of these do not depend on
//! each other.
//!
//! 1. the VPC, the region's zones and the ECS cluster;
//! 2. (after one look at the VPC's subnets) each missing subnet, and the security group;
//! 3. the internet gateway and route table (one host call, which overlaps its own calls).

use crate::network::{self, GroupSpec, Provisioned};
use crate::{Input, ensure_cluster};
use serde::{Deserialize, Serialize};
use wharf_plugin_sdk::parallel::{self, Part};
use wharf_plugin_sdk::{Error, ec2, ecs, log};

#[derive(Serialize, Deserialize)]
struct VpcIn {
    name: String,
    cidr: String,
}

#[derive(Serialize, Deserialize)]
struct ClusterIn {
    name: String,
    container_insights: bool,
}

#[derive(Serialize, Deserialize)]
struct SubnetIn {
    vpc_id: String,
    name: String,
    cidr: String,
    zone: String,
}

#[derive(Serialize, Deserialize)]
struct GroupIn {
    vpc_id: String,
    cluster: String,
    name: String,
    ingress_ports: Vec<u16>,
}

#[derive(Serialize, Deserialize)]
struct Id {
    id: String,
}

#[derive(Serialize, Deserialize)]
pub struct ClusterOut {
    pub arn: String,
    pub name: String,
}

/// The network of `network = "new-vpc"` and the cluster.
pub fn new_vpc_and_cluster(
    input: &Input,
    cidr: &str,
    subnet_cidrs: &[String; 2],
    group: &GroupSpec,
) -> Result<(Provisioned, ClusterOut), Error> {
    let name = &input.name;
    let [vpc, zones, cluster] = parallel::run_each([
        Part::new("vpc", &VpcIn { name: format!("{name}-vpc"), cidr: cidr.to_string() })?,
        Part::new("zones", &())?,
        Part::new("cluster", &ClusterIn { name: name.clone(), container_insights: input.container_insights })?,
    ]);
    let (vpc, zones, cluster): (Id, Vec<String>, ClusterOut) =
        (parallel::output(vpc)?, parallel::output(zones)?, parallel::output(cluster)?);
    if zones.len() < 2 {
        let message = format!("the region has {} availability zone(s); a new VPC needs two", zones.len());
        return Err(Error::permanent("TooFewZones", message));
    }

    let existing = ec2::subnets(&vpc.id)?;
    let mut subnet_ids: Vec<Option<String>> = Vec::new();
    let mut parts = vec![Part::new(
        "security-group",
        &GroupIn {
            vpc_id: vpc.id.clone(),
            cluster: name.clone(),
            name: group.name.clone(),
            ingress_ports: group.ingress_ports.clone(),
        },
    )?];
    for (i, block) in subnet_cidrs.iter().enumerate() {
        match existing.iter().find(|s| &s.cidr_block == block) {
            Some(found) => subnet_ids.push(Some(found.id.clone())),
            None => {
                let subnet = SubnetIn {
                    vpc_id: vpc.id.clone(),
                    name: format!("{name}-public-{}", i + 1),
                    cidr: block.clone(),
                    zone: zones[i].clone(),
                };
                parts.push(Part::new("subnet", &subnet)?);
                subnet_ids.push(None);
            }
        }
    }
    // One result per part: the group's first, then the new subnets' in order.
    let mut second = parallel::run_all(&parts).into_iter();
    let mut next = || second.next().expect("run_all returns one result per part");
    let group: Id = parallel::output(next())?;
    let subnet_ids = subnet_ids
        .into_iter()
        .map(|found| match found {
            Some(id) => Ok(id),
            None => parallel::output::<Id>(next()).map(|s| s.id),
        })
        .collect::<Result<Vec<_>, Error>>()?;

    let table = ec2::create_internet_route(&vpc.id, &format!("{name}-public"), &subnet_ids)?;
    log::info(&format!("VPC {} routes {} to the internet through {table}", vpc.id, subnet_ids.join(", ")));
    Ok((Provisioned { vpc_id: vpc.id, subnet_ids, security_group_ids: vec![group.id] }, cluster))
}

/// One part (`Step::run_part`).
pub fn run_part(part: &str, input: &str) -> Result<String, Error> {
    match part {
        "vpc" => {
            let i: VpcIn = parallel::input(part, input)?;
            let vpc = match ec2::find_vpc(&i.name)? {
                Some(vpc) => {
                    log::info(&format!("VPC {} ({}) already exists; reusing it", vpc.id, i.name));
                    vpc
                }
                None => ec2::create_vpc(&i.name, &i.cidr)?,
            };
            parallel::encode(part, &Id { id: vpc.id })
        }
        "zones" => parallel::encode(part, &ec2::availability_zones()?),
        "cluster" => {
            let i: ClusterIn = parallel::input(part, input)?;
            let ecs::Cluster { arn, name, .. } = ensure_cluster(&i.name, i.container_insights)?;
            parallel::encode(part, &ClusterOut { arn, name })
        }
        "subnet" => {
            let i: SubnetIn = parallel::input(part, input)?;
            let subnet = ec2::create_public_subnet(&i.vpc_id, &i.name, &i.cidr, &i.zone)?;
            parallel::encode(part, &Id { id: subnet.id })
        }
        "security-group" => {
            let i: GroupIn = parallel::input(part, input)?;
            let spec = GroupSpec { name: i.name, ingress_ports: i.ingress_ports };
            let id = network::ensure_security_group(&i.vpc_id, &i.cluster, &spec)?;
            parallel::encode(part, &Id { id })
        }
        other => Err(parallel::unknown(<crate::CreateCluster as wharf_plugin_sdk::Step>::NAME, other)),
    }
}
