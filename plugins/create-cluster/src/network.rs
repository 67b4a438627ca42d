//! The cluster's network: input validation and CIDR arithmetic (pure, unit-tested), and the
//! find-before-create provisioning of each network mode.

use crate::Input;
use serde::Deserialize;
use wharf_plugin_sdk::{Error, ec2, log};

#[derive(Deserialize, Debug, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Network {
    /// The region's default VPC and all its (public) subnets, plus a security group.
    #[default]
    DefaultVpc,
    /// A dedicated VPC: two public subnets in two AZs, internet gateway, route table, security group.
    NewVpc,
    /// Existing subnets and security groups, used as they are.
    Given,
}

/// What the validated inputs ask for.
#[derive(Debug, PartialEq, Eq)]
pub enum NetworkPlan {
    DefaultVpc { security_group: GroupSpec },
    NewVpc { cidr: String, subnet_cidrs: [String; 2], security_group: GroupSpec },
    Given { vpc_id: String, subnets: Vec<String>, security_groups: Vec<String> },
}

/// The security group the step creates (or finds) for the tasks.
#[derive(Debug, PartialEq, Eq)]
pub struct GroupSpec {
    pub name: String,
    pub ingress_ports: Vec<u16>,
}

/// The network the step's outputs describe.
pub struct Provisioned {
    pub vpc_id: String,
    pub subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
}

const DEFAULT_CIDR: &str = "10.0.0.0/16";

impl NetworkPlan {
    /// Checks the inputs and says exactly what to fix; nothing is created before this passes.
    pub fn from_input(input: &Input) -> Result<NetworkPlan, Error> {
        let name_ok = input.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if input.name.is_empty() || input.name.len() > 255 || !name_ok {
            return Err(Error::invalid_input("`name` must be 1 to 255 letters, digits, `-` or `_`"));
        }
        let mode = match input.network {
            Network::DefaultVpc => "default-vpc",
            Network::NewVpc => "new-vpc",
            Network::Given => "given",
        };
        let only = |set: bool, field: &str, modes: &str| {
            if set {
                Err(Error::invalid_input(format!("`{field}` applies only to network = {modes}, not \"{mode}\"")))
            } else {
                Ok(())
            }
        };
        only(input.vpc_cidr.is_some() && input.network != Network::NewVpc, "vpc_cidr", "\"new-vpc\"")?;
        let given = input.network == Network::Given;
        only(input.vpc_id.is_some() && !given, "vpc_id", "\"given\"")?;
        only(!input.subnets.is_empty() && !given, "subnets", "\"given\"")?;
        only(!input.security_groups.is_empty() && !given, "security_groups", "\"given\"")?;
        let creates_group = "\"default-vpc\" or \"new-vpc\"";
        only(!input.ingress_ports.is_empty() && given, "ingress_ports", creates_group)?;
        only(input.security_group_name.is_some() && given, "security_group_name", creates_group)?;
        match input.network {
            Network::DefaultVpc => Ok(NetworkPlan::DefaultVpc { security_group: group_spec(input)? }),
            Network::NewVpc => {
                let cidr = input.vpc_cidr.clone().unwrap_or_else(|| DEFAULT_CIDR.to_string());
                let subnet_cidrs = public_subnet_cidrs(&cidr).map_err(Error::invalid_input)?;
                Ok(NetworkPlan::NewVpc { cidr, subnet_cidrs, security_group: group_spec(input)? })
            }
            Network::Given => {
                let vpc_id = input.vpc_id.clone().unwrap_or_default();
                ids("vpc_id", "vpc-", std::slice::from_ref(&vpc_id))?;
                ids("subnets", "subnet-", &input.subnets)?;
                ids("security_groups", "sg-", &input.security_groups)?;
                Ok(NetworkPlan::Given {
                    vpc_id,
                    subnets: input.subnets.clone(),
                    security_groups: input.security_groups.clone(),
                })
            }
        }
    }
}

fn group_spec(input: &Input) -> Result<GroupSpec, Error> {
    let name = input.security_group_name.clone().unwrap_or_else(|| format!("{}-tasks", input.name));
    // AWS reserves the `sg-` prefix for group ids.
    if name.is_empty() || name.len() > 255 || name.starts_with("sg-") {
        return Err(Error::invalid_input("`security_group_name` must be 1 to 255 characters and not start with `sg-`"));
    }
    if input.ingress_ports.contains(&0) {
        return Err(Error::invalid_input("`ingress_ports` must be TCP ports from 1 to 65535"));
    }
    let mut ingress_ports = input.ingress_ports.clone();
    ingress_ports.sort_unstable();
    ingress_ports.dedup();
    Ok(GroupSpec { name, ingress_ports })
}

/// Non-empty list of ids that all start with `prefix` (catches names passed where ids belong).
fn ids(field: &str, prefix: &str, values: &[String]) -> Result<(), Error> {
    if values.is_empty() || values.iter().any(|v| v.is_empty()) {
        return Err(Error::invalid_input(format!("network = \"given\" needs `{field}` ({prefix}... ids)")));
    }
    match values.iter().find(|v| !v.starts_with(prefix)) {
        Some(bad) => Err(Error::invalid_input(format!("`{field}`: `{bad}` is not an id starting with `{prefix}`"))),
        None => Ok(()),
    }
}

/// The first two /24 blocks of an IPv4 VPC CIDR (a /16 to /23, as AWS allows down to /16 and
/// two /24s need at least a /23), e.g. `10.0.0.0/16` gives `10.0.0.0/24` and `10.0.1.0/24`.
pub fn public_subnet_cidrs(vpc_cidr: &str) -> Result<[String; 2], String> {
    let bad = |why: &str| format!("`vpc_cidr` `{vpc_cidr}` {why}");
    let (addr, prefix) = vpc_cidr.split_once('/').ok_or_else(|| bad("is not a CIDR block like 10.0.0.0/16"))?;
    let addr: std::net::Ipv4Addr = addr.parse().map_err(|_| bad("does not start with an IPv4 address"))?;
    let prefix: u32 = prefix.parse().map_err(|_| bad("has no prefix length after `/`"))?;
    if !(16..=23).contains(&prefix) {
        return Err(bad("must be a /16 to /23 (two /24 subnets must fit in it)"));
    }
    let base = u32::from(addr);
    let mask = u32::MAX << (32 - prefix);
    if base & !mask != 0 {
        let network = std::net::Ipv4Addr::from(base & mask);
        return Err(bad(&format!("has host bits set; did you mean {network}/{prefix}?")));
    }
    let block = |n: u32| format!("{}/24", std::net::Ipv4Addr::from(base + (n << 8)));
    Ok([block(0), block(1)])
}

/// Creates or finds the planned network of `network = "default-vpc"` or `"given"`.
pub fn provision(name: &str, plan: &NetworkPlan) -> Result<Provisioned, Error> {
    match plan {
        NetworkPlan::DefaultVpc { security_group } => {
            let vpc = ec2::default_vpc()?.ok_or_else(|| {
                Error::invalid_input("this region has no default VPC; set `network = \"new-vpc\"` or \"given\"")
            })?;
            let all = ec2::subnets(&vpc.id)?;
            // Tasks need public IPs to pull images without a NAT; fall back to every subnet if the
            // default VPC has been changed to have none that hand them out.
            let public: Vec<String> = all.iter().filter(|s| s.map_public_ip_on_launch).map(|s| s.id.clone()).collect();
            let subnet_ids = if public.is_empty() { all.iter().map(|s| s.id.clone()).collect() } else { public };
            if subnet_ids.is_empty() {
                return Err(Error::permanent("NoSubnets", format!("the default VPC {} has no subnets", vpc.id)));
            }
            let group = ensure_security_group(&vpc.id, name, security_group)?;
            Ok(Provisioned { vpc_id: vpc.id, subnet_ids, security_group_ids: vec![group] })
        }
        NetworkPlan::NewVpc { .. } => unreachable!("a new VPC is built with the cluster, in parts (parts.rs)"),
        NetworkPlan::Given { vpc_id, subnets, security_groups } => {
            let in_vpc = ec2::subnets(vpc_id)?;
            if let Some(missing) = subnets.iter().find(|s| !in_vpc.iter().any(|v| &v.id == *s)) {
                return Err(Error::invalid_input(format!("subnet `{missing}` is not in VPC `{vpc_id}`")));
            }
            Ok(Provisioned {
                vpc_id: vpc_id.clone(),
                subnet_ids: subnets.clone(),
                security_group_ids: security_groups.clone(),
            })
        }
    }
}

pub(crate) fn ensure_security_group(vpc_id: &str, cluster: &str, spec: &GroupSpec) -> Result<String, Error> {
    if let Some(found) = ec2::find_security_group(vpc_id, &spec.name)? {
        // Its rules are not compared or changed: a group found here may be shared with others.
        log::info(&format!("security group {} ({}) already exists; reusing it as it is", found.id, spec.name));
        return Ok(found.id);
    }
    let ingress: Vec<ec2::IngressRule> =
        spec.ingress_ports.iter().map(|&port| ec2::IngressRule { port, cidr: "0.0.0.0/0".to_string() }).collect();
    let description = format!("wharf: tasks of ECS cluster {cluster}");
    let created = ec2::create_security_group(vpc_id, &spec.name, &description, &ingress)?;
    log::info(&format!("security group {} ({}) created in {vpc_id}", created.id, spec.name));
    Ok(created.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(network: Network) -> Input {
        Input { name: "demo".into(), network, ..Default::default() }
    }

    fn err(input: &Input) -> String {
        NetworkPlan::from_input(input).unwrap_err().message().to_string()
    }

    #[test]
    fn derives_the_first_two_24s() {
        assert_eq!(public_subnet_cidrs("10.0.0.0/16").unwrap(), ["10.0.0.0/24", "10.0.1.0/24"]);
        assert_eq!(public_subnet_cidrs("172.31.64.0/23").unwrap(), ["172.31.64.0/24", "172.31.65.0/24"]);
        assert_eq!(public_subnet_cidrs("192.168.16.0/20").unwrap(), ["192.168.16.0/24", "192.168.17.0/24"]);
    }

    #[test]
    fn rejects_unusable_vpc_cidrs() {
        assert!(public_subnet_cidrs("10.0.0.0/24").unwrap_err().contains("/16 to /23"));
        assert!(public_subnet_cidrs("10.0.0.0/8").unwrap_err().contains("/16 to /23"));
        assert!(public_subnet_cidrs("10.0.1.0/16").unwrap_err().contains("did you mean 10.0.0.0/16"));
        assert!(public_subnet_cidrs("10.0.0/16").unwrap_err().contains("IPv4"));
        assert!(public_subnet_cidrs("10.0.0.0").unwrap_err().contains("CIDR"));
        assert!(public_subnet_cidrs("10.0.0.0/x").unwrap_err().contains("prefix"));
    }

    #[test]
    fn defaults_to_the_default_vpc_with_a_tasks_group() {
        let plan = NetworkPlan::from_input(&input(Network::DefaultVpc)).unwrap();
        let group = GroupSpec { name: "demo-tasks".into(), ingress_ports: vec![] };
        assert_eq!(plan, NetworkPlan::DefaultVpc { security_group: group });
    }

    #[test]
    fn new_vpc_uses_the_default_cidr_and_dedups_ports() {
        let mut i = input(Network::NewVpc);
        i.ingress_ports = vec![443, 80, 443];
        i.security_group_name = Some("web".into());
        let NetworkPlan::NewVpc { cidr, subnet_cidrs, security_group } = NetworkPlan::from_input(&i).unwrap() else {
            panic!("not a new-vpc plan");
        };
        assert_eq!(cidr, "10.0.0.0/16");
        assert_eq!(subnet_cidrs, ["10.0.0.0/24", "10.0.1.0/24"]);
        assert_eq!(security_group, GroupSpec { name: "web".into(), ingress_ports: vec![80, 443] });
    }

    #[test]
    fn given_needs_vpc_subnets_and_groups_as_ids() {
        let mut i = input(Network::Given);
        assert!(err(&i).contains("`vpc_id`"));
        i.vpc_id = Some("vpc-1".into());
        assert!(err(&i).contains("`subnets`"));
        i.subnets = vec!["subnet-1".into(), "public-a".into()];
        assert!(err(&i).contains("`public-a` is not an id starting with `subnet-`"));
        i.subnets = vec!["subnet-1".into()];
        assert!(err(&i).contains("`security_groups`"));
        i.security_groups = vec!["sg-1".into()];
        assert!(NetworkPlan::from_input(&i).is_ok());
        i.ingress_ports = vec![80];
        assert!(err(&i).contains("`ingress_ports` applies only to network = \"default-vpc\" or \"new-vpc\""));
    }

    #[test]
    fn rejects_inputs_of_another_mode() {
        let mut i = input(Network::DefaultVpc);
        i.vpc_cidr = Some("10.1.0.0/16".into());
        assert!(err(&i).contains("`vpc_cidr` applies only to network = \"new-vpc\", not \"default-vpc\""));
        let mut i = input(Network::NewVpc);
        i.subnets = vec!["subnet-1".into()];
        assert!(err(&i).contains("`subnets` applies only to network = \"given\""));
    }

    #[test]
    fn validates_names_and_ports() {
        let mut i = input(Network::DefaultVpc);
        i.name = "my cluster".into();
        assert!(err(&i).contains("`name`"));
        let mut i = input(Network::DefaultVpc);
        i.security_group_name = Some("sg-web".into());
        assert!(err(&i).contains("`sg-`"));
        let mut i = input(Network::DefaultVpc);
        i.ingress_ports = vec![0];
        assert!(err(&i).contains("1 to 65535"));
    }

    #[test]
    fn parses_network_modes_from_json() {
        let i: Input = serde_json::from_str(r#"{"name":"x","network":"new-vpc","vpc_cidr":"10.9.0.0/16"}"#).unwrap();
        assert_eq!(i.network, Network::NewVpc);
        assert!(serde_json::from_str::<Input>(r#"{"name":"x","network":"vpc"}"#).is_err());
        assert!(serde_json::from_str::<Input>(r#"{"name":"x","subnet":["a"]}"#).is_err());
    }
}
