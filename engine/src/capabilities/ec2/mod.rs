//! `ec2`: the network a Fargate cluster needs (VPC, public subnets, internet route, security
//! group), and its deletion for teardown.
//!
//! Everything the host creates is tagged `Name` + wharf's run and step tags at creation
//! (TagSpecifications), so lookups by those tags find what an earlier attempt of the same step
//! made, and a half-finished create never leaves an untagged resource behind.

mod route;

use super::Capabilities;
use crate::host::bindings::wharf::plugin::ec2::{Host, IngressRule, SecurityGroup, Subnet, Vpc};
use crate::host::bindings::wharf::plugin::ledger::DeleteOutcome;
use crate::host::bindings::{ErrorKind, WitError};
use crate::host::sandbox::SandboxState;
use crate::journal::Resource;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{self as model, AttributeBooleanValue, Filter, ResourceType, Tag, TagSpecification};
use futures_util::future::try_join_all;
use std::collections::BTreeMap;
use std::time::Duration;

/// Ids of plan-mode placeholders start with this: lookups inside them find nothing.
const PLANNED: &str = "planned-";

impl Host for SandboxState {
    async fn default_vpc(&mut self) -> Result<Option<Vpc>, WitError> {
        let caps: &Capabilities = self.caps()?;
        caps.authorize("ec2:DescribeVpcs", "*")?;
        let send = caps.aws().ec2().await?.describe_vpcs().filters(filter("is-default", "true")).send();
        let out = caps.call("ec2:DescribeVpcs", "default", send).await?;
        Ok(out.vpcs().first().map(vpc_to_wit))
    }

    async fn find_vpc(&mut self, name: String) -> Result<Option<Vpc>, WitError> {
        let caps: &Capabilities = self.caps()?;
        caps.authorize("ec2:DescribeVpcs", "*")?;
        let send = caps.aws().ec2().await?.describe_vpcs().set_filters(Some(created_by_wharf(&name))).send();
        let out = caps.call("ec2:DescribeVpcs", &name, send).await?;
        let Some(vpc) = out.vpcs().first() else { return Ok(None) };
        caps.reclaim_if_ours(
            tag_pairs(vpc.tags()),
            "ec2:vpc",
            vpc.vpc_id().unwrap_or_default(),
            Some(&name),
            BTreeMap::new(),
        )?;
        Ok(Some(vpc_to_wit(vpc)))
    }

    async fn subnets(&mut self, vpc_id: String) -> Result<Vec<Subnet>, WitError> {
        let caps: &Capabilities = self.caps()?;
        caps.authorize("ec2:DescribeSubnets", "*")?;
        if vpc_id.starts_with(PLANNED) {
            return Ok(Vec::new());
        }
        let send = caps.aws().ec2().await?.describe_subnets().filters(filter("vpc-id", &vpc_id)).send();
        let out = caps.call("ec2:DescribeSubnets", &vpc_id, send).await?;
        for subnet in out.subnets() {
            let id = subnet.subnet_id().unwrap_or_default();
            caps.reclaim_if_ours(tag_pairs(subnet.tags()), "ec2:subnet", id, None, BTreeMap::new())?;
        }
        let mut subnets: Vec<Subnet> = out.subnets().iter().map(subnet_to_wit).collect();
        subnets.sort_by(|a, b| (&a.availability_zone, &a.cidr_block).cmp(&(&b.availability_zone, &b.cidr_block)));
        Ok(subnets)
    }

    async fn availability_zones(&mut self) -> Result<Vec<String>, WitError> {
        let caps: &Capabilities = self.caps()?;
        caps.authorize("ec2:DescribeAvailabilityZones", "*")?;
        // Filtered here rather than with request filters, which emulators implement unevenly.
        // Local and Wavelength zones cannot hold a normal Fargate subnet, so only real AZs count.
        let send = caps.aws().ec2().await?.describe_availability_zones().send();
        let out = caps.call("ec2:DescribeAvailabilityZones", "*", send).await?;
        let mut zones: Vec<String> = out
            .availability_zones()
            .iter()
            .filter(|z| z.state().is_none_or(|s| *s == model::AvailabilityZoneState::Available))
            .filter(|z| z.zone_type().is_none_or(|t| t == "availability-zone"))
            .filter_map(|z| z.zone_name().map(str::to_string))
            .collect();
        zones.sort();
        Ok(zones)
    }

    async fn create_vpc(&mut self, name: String, cidr_block: String) -> Result<Vpc, WitError> {
        let caps: &Capabilities = self.caps()?;
        caps.authorize("ec2:CreateVpc", &name)?;
        if caps.plan("ec2:CreateVpc", &name, &cidr_block) {
            return Ok(Vpc { id: format!("{PLANNED}vpc"), cidr_block, is_default: false });
        }
        let ec2 = caps.aws().ec2().await?;
        let tags = tag_spec(caps, ResourceType::Vpc, &name);
        let send = ec2.create_vpc().cidr_block(&cidr_block).tag_specifications(tags).send();
        let out = caps.call("ec2:CreateVpc", &name, send).await?;
        let vpc = out.vpc().map(vpc_to_wit).ok_or_else(|| super::incomplete_response("CreateVpc", "vpc"))?;
        caps.record_created("ec2:vpc", &vpc.id, Some(&name), BTreeMap::new())?;
        // One attribute per ModifyVpcAttribute call. DNS hostnames are needed by Fargate tasks
        // that pull from ECR or resolve AWS endpoints (and by moto's RunTask).
        let id = vpc.id.as_str();
        // Both at once: they are independent, and each is a round trip.
        let dns_support = settle(|| {
            let send = ec2.modify_vpc_attribute().vpc_id(id).enable_dns_support(enabled()).send();
            caps.call("ec2:ModifyVpcAttribute", id, send)
        });
        let dns_hostnames = settle(|| {
            let send = ec2.modify_vpc_attribute().vpc_id(id).enable_dns_hostnames(enabled()).send();
            caps.call("ec2:ModifyVpcAttribute", id, send)
        });
        tokio::try_join!(dns_support, dns_hostnames)?;
        Ok(vpc)
    }

    async fn create_public_subnet(
        &mut self,
        vpc_id: String,
        name: String,
        cidr_block: String,
        availability_zone: String,
    ) -> Result<Subnet, WitError> {
        let caps: &Capabilities = self.caps()?;
        caps.authorize("ec2:CreateSubnet", &vpc_id)?;
        if caps.plan("ec2:CreateSubnet", &vpc_id, &format!("{name} {cidr_block} in {availability_zone}")) {
            let id = format!("{PLANNED}subnet-{name}");
            return Ok(Subnet { id, vpc_id, availability_zone, cidr_block, map_public_ip_on_launch: true });
        }
        let ec2 = caps.aws().ec2().await?;
        let send = ec2
            .create_subnet()
            .vpc_id(&vpc_id)
            .cidr_block(&cidr_block)
            .availability_zone(&availability_zone)
            .tag_specifications(tag_spec(caps, ResourceType::Subnet, &name))
            .send();
        let out = caps.call("ec2:CreateSubnet", &vpc_id, send).await?;
        let mut subnet =
            out.subnet().map(subnet_to_wit).ok_or_else(|| super::incomplete_response("CreateSubnet", "subnet"))?;
        caps.record_created("ec2:subnet", &subnet.id, Some(&name), BTreeMap::new())?;
        let id = subnet.id.as_str();
        settle(|| {
            let send = ec2.modify_subnet_attribute().subnet_id(id).map_public_ip_on_launch(enabled()).send();
            caps.call("ec2:ModifySubnetAttribute", id, send)
        })
        .await?;
        subnet.map_public_ip_on_launch = true;
        Ok(subnet)
    }

    async fn create_internet_route(
        &mut self,
        vpc_id: String,
        name: String,
        subnet_ids: Vec<String>,
    ) -> Result<String, WitError> {
        route::create(self.caps()?, &vpc_id, &name, &subnet_ids).await
    }

    async fn find_security_group(&mut self, vpc_id: String, name: String) -> Result<Option<SecurityGroup>, WitError> {
        let caps: &Capabilities = self.caps()?;
        caps.authorize("ec2:DescribeSecurityGroups", "*")?;
        if vpc_id.starts_with(PLANNED) {
            return Ok(None);
        }
        let send = caps
            .aws()
            .ec2()
            .await?
            .describe_security_groups()
            .filters(filter("vpc-id", &vpc_id))
            .filters(filter("group-name", &name))
            .send();
        let out = caps.call("ec2:DescribeSecurityGroups", &name, send).await?;
        let Some(group) = out.security_groups().first() else { return Ok(None) };
        let id = group.group_id().unwrap_or_default();
        caps.reclaim_if_ours(tag_pairs(group.tags()), "ec2:security-group", id, Some(&name), BTreeMap::new())?;
        Ok(Some(group_to_wit(group)))
    }

    async fn create_security_group(
        &mut self,
        vpc_id: String,
        name: String,
        description: String,
        ingress: Vec<IngressRule>,
    ) -> Result<SecurityGroup, WitError> {
        let caps: &Capabilities = self.caps()?;
        caps.authorize("ec2:CreateSecurityGroup", &vpc_id)?;
        let rules: Vec<String> = ingress.iter().map(|r| format!("tcp/{} from {}", r.port, r.cidr)).collect();
        if caps.plan("ec2:CreateSecurityGroup", &vpc_id, &format!("{name} ingress [{}]", rules.join(", "))) {
            return Ok(SecurityGroup { id: format!("{PLANNED}sg-{name}"), name, vpc_id });
        }
        let ec2 = caps.aws().ec2().await?;
        let send = ec2
            .create_security_group()
            .vpc_id(&vpc_id)
            .group_name(&name)
            .description(&description)
            .tag_specifications(tag_spec(caps, ResourceType::SecurityGroup, &name))
            .send();
        let out = caps.call("ec2:CreateSecurityGroup", &vpc_id, send).await?;
        let id = out.group_id().ok_or_else(|| super::incomplete_response("CreateSecurityGroup", "groupId"))?;
        caps.record_created("ec2:security-group", id, Some(&name), BTreeMap::new())?;
        // A new group already allows all egress; only the ingress rules are added.
        if !ingress.is_empty() {
            let permissions: Vec<model::IpPermission> = ingress
                .iter()
                .map(|r| {
                    model::IpPermission::builder()
                        .ip_protocol("tcp")
                        .from_port(r.port.into())
                        .to_port(r.port.into())
                        .ip_ranges(model::IpRange::builder().cidr_ip(&r.cidr).build())
                        .build()
                })
                .collect();
            settle(|| {
                let send =
                    ec2.authorize_security_group_ingress().group_id(id).set_ip_permissions(Some(permissions.clone()));
                caps.call("ec2:AuthorizeSecurityGroupIngress", id, send.send())
            })
            .await?;
        }
        Ok(SecurityGroup { id: id.to_string(), name, vpc_id })
    }
}

/// Deletes one ledger resource of an `ec2:*` kind. Not-found counts as gone; a resource something
/// still depends on (tasks' network interfaces, a VPC's subnets) is `Pending`, and teardown
/// calls again after deleting the rest.
pub(crate) async fn delete(
    caps: &Capabilities,
    resource: &Resource,
    _secret_recovery_days: Option<u32>,
) -> Result<DeleteOutcome, WitError> {
    let ec2 = caps.aws().ec2().await?;
    let id = resource.id.as_str();
    let result = match resource.kind.as_str() {
        "ec2:security-group" => {
            caps.call("ec2:DeleteSecurityGroup", id, ec2.delete_security_group().group_id(id).send()).await.map(drop)
        }
        "ec2:subnet" => caps.call("ec2:DeleteSubnet", id, ec2.delete_subnet().subnet_id(id).send()).await.map(drop),
        "ec2:route-table" => delete_route_table(caps, ec2, id).await,
        "ec2:internet-gateway" => delete_gateway(caps, ec2, id, resource.attributes.get("vpc_id")).await,
        "ec2:vpc" => caps.call("ec2:DeleteVpc", id, ec2.delete_vpc().vpc_id(id).send()).await.map(drop),
        other => {
            let message = format!("the ec2 capability does not delete resources of kind `{other}`");
            return Err(WitError::new(ErrorKind::Permanent, "UnknownResourceKind", message));
        }
    };
    match result {
        Ok(()) => Ok(DeleteOutcome::Deleted),
        Err(e) if e.code.ends_with(".NotFound") => Ok(DeleteOutcome::AlreadyGone),
        Err(e) if e.code == "DependencyViolation" => Ok(DeleteOutcome::Pending(dependents(caps, ec2, resource).await)),
        Err(e) => Err(e),
    }
}

/// A route table cannot be deleted while subnets are associated with it.
async fn delete_route_table(caps: &Capabilities, ec2: &Client, id: &str) -> Result<(), WitError> {
    let out = caps.call("ec2:DescribeRouteTables", id, ec2.describe_route_tables().route_table_ids(id).send()).await?;
    let associations = out.route_tables().iter().flat_map(|t| t.associations());
    // All at once: each is a round trip, and they do not depend on each other.
    let disassociations = associations
        .filter(|a| a.main() != Some(true))
        .filter_map(|a| a.route_table_association_id())
        .map(|assoc_id| async move {
            let send = ec2.disassociate_route_table().association_id(assoc_id).send();
            match caps.call("ec2:DisassociateRouteTable", assoc_id, send).await {
                Err(e) if e.code == "InvalidAssociationID.NotFound" => Ok(()),
                other => other.map(drop),
            }
        });
    try_join_all(disassociations).await?;
    caps.call("ec2:DeleteRouteTable", id, ec2.delete_route_table().route_table_id(id).send()).await.map(drop)
}

/// An internet gateway must be detached from its VPC before it can be deleted.
async fn delete_gateway(caps: &Capabilities, ec2: &Client, id: &str, vpc_id: Option<&String>) -> Result<(), WitError> {
    if let Some(vpc_id) = vpc_id {
        let send = ec2.detach_internet_gateway().internet_gateway_id(id).vpc_id(vpc_id).send();
        match caps.call("ec2:DetachInternetGateway", id, send).await {
            // Detached already, or its VPC is gone (which detaches it): go on to delete it.
            Err(e) if e.code == "Gateway.NotAttached" || e.code == "InvalidVpcID.NotFound" => {}
            other => other.map(drop)?,
        }
    }
    caps.call("ec2:DeleteInternetGateway", id, ec2.delete_internet_gateway().internet_gateway_id(id).send())
        .await
        .map(drop)
}

/// What still holds `resource`, for the `Pending` message: the network interfaces in a subnet or
/// group (usually tasks still stopping), or what is left inside a VPC. Best effort: a failed
/// lookup only makes the message vaguer.
async fn dependents(caps: &Capabilities, ec2: &Client, resource: &Resource) -> String {
    let id = resource.id.as_str();
    let eni_filter = match resource.kind.as_str() {
        "ec2:subnet" => "subnet-id",
        "ec2:security-group" => "group-id",
        "ec2:vpc" => "vpc-id",
        "ec2:internet-gateway" => return format!("{id}: its VPC still has public addresses mapped (running tasks)"),
        _ => return format!("{id} is still in use"),
    };
    let mut held_by = Vec::new();
    if resource.kind == "ec2:vpc" {
        let send = ec2.describe_subnets().filters(filter("vpc-id", id)).send();
        if let Ok(out) = caps.call("ec2:DescribeSubnets", id, send).await {
            held_by.extend(out.subnets().iter().filter_map(|s| s.subnet_id().map(str::to_string)));
        }
        let send = ec2.describe_security_groups().filters(filter("vpc-id", id)).send();
        if let Ok(out) = caps.call("ec2:DescribeSecurityGroups", id, send).await {
            let custom = out.security_groups().iter().filter(|g| g.group_name() != Some("default"));
            held_by.extend(custom.filter_map(|g| g.group_id().map(str::to_string)));
        }
        let send = ec2.describe_internet_gateways().filters(filter("attachment.vpc-id", id)).send();
        if let Ok(out) = caps.call("ec2:DescribeInternetGateways", id, send).await {
            held_by.extend(out.internet_gateways().iter().filter_map(|g| g.internet_gateway_id().map(str::to_string)));
        }
    }
    let send = ec2.describe_network_interfaces().filters(filter(eni_filter, id)).send();
    if let Ok(out) = caps.call("ec2:DescribeNetworkInterfaces", id, send).await {
        held_by.extend(out.network_interfaces().iter().map(|n| {
            let eni = n.network_interface_id().unwrap_or("?");
            match n.description() {
                Some(d) if !d.is_empty() => format!("{eni} ({d})"),
                _ => eni.to_string(),
            }
        }));
    }
    if held_by.is_empty() {
        format!("{id} is still in use")
    } else {
        format!("{id} is still in use by {}", held_by.join(", "))
    }
}

/// EC2 is eventually consistent: a resource created a moment ago can be "not found" by the next
/// call on it for a few seconds. Follow-up calls on fresh resources wait that out (about 7 s)
/// instead of failing the step after the resource is already made.
async fn settle<T, F: Future<Output = Result<T, WitError>>>(mut call: impl FnMut() -> F) -> Result<T, WitError> {
    let mut wait = Duration::from_millis(500);
    for _ in 0..4 {
        match call().await {
            Err(e) if e.code.ends_with(".NotFound") => tokio::time::sleep(wait).await,
            other => return other,
        }
        wait *= 2;
    }
    call().await
}

/// EC2 tags as (key, value) pairs.
fn tag_pairs(tags: &[Tag]) -> impl Iterator<Item = (&str, &str)> {
    tags.iter().filter_map(|t| Some((t.key()?, t.value()?)))
}

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// Filters matching what wharf created under `name` in any run, so a re-run of a deployment
/// adopts its network instead of building a second one.
fn created_by_wharf(name: &str) -> Vec<Filter> {
    vec![filter("tag-key", "wharf:run"), filter("tag:Name", name)]
}

/// `Name` plus wharf's tags, applied atomically at creation.
fn tag_spec(caps: &Capabilities, kind: ResourceType, name: &str) -> TagSpecification {
    let wharf = caps.tags().into_iter().map(|(k, v)| Tag::builder().key(k).value(v).build());
    let tags = std::iter::once(Tag::builder().key("Name").value(name).build()).chain(wharf);
    TagSpecification::builder().resource_type(kind).set_tags(Some(tags.collect())).build()
}

fn enabled() -> AttributeBooleanValue {
    AttributeBooleanValue::builder().value(true).build()
}

fn vpc_to_wit(v: &model::Vpc) -> Vpc {
    Vpc {
        id: v.vpc_id().unwrap_or_default().to_string(),
        cidr_block: v.cidr_block().unwrap_or_default().to_string(),
        is_default: v.is_default().unwrap_or(false),
    }
}

fn subnet_to_wit(s: &model::Subnet) -> Subnet {
    Subnet {
        id: s.subnet_id().unwrap_or_default().to_string(),
        vpc_id: s.vpc_id().unwrap_or_default().to_string(),
        availability_zone: s.availability_zone().unwrap_or_default().to_string(),
        cidr_block: s.cidr_block().unwrap_or_default().to_string(),
        map_public_ip_on_launch: s.map_public_ip_on_launch().unwrap_or(false),
    }
}

fn group_to_wit(g: &model::SecurityGroup) -> SecurityGroup {
    SecurityGroup {
        id: g.group_id().unwrap_or_default().to_string(),
        name: g.group_name().unwrap_or_default().to_string(),
        vpc_id: g.vpc_id().unwrap_or_default().to_string(),
    }
}
