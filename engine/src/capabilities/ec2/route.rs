//! `create-internet-route`: an internet gateway attached to a VPC, a route table sending
//! 0.0.0.0/0 to it, and subnets associated with that table.
//!
//! Four kinds of resource in several calls, in three phases: what exists is looked up (this
//! step's gateway and table, found by their tags, so a retry or a re-run of the deployment adopts
//! them instead of duplicating them); every change still to make is authorized at once, naming
//! the VPC and each subnet it touches (`ec2:AttachInternetGateway <vpc>`, `ec2:CreateRouteTable
//! <vpc>`, `ec2:AssociateRouteTable <subnet>`); then the changes are made. A denied call has
//! changed nothing, and a route already in place needs no grant at all.

use super::{Capabilities, PLANNED, created_by_wharf, filter, settle, tag_pairs, tag_spec};
use crate::grants::{self, Need};
use crate::host::bindings::WitError;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{self as model, ResourceType};
use futures_util::future::try_join_all;
use std::collections::BTreeMap;

/// The gateway this step's name found: its id and whether it is attached to the VPC.
struct Gateway {
    id: String,
    attached: bool,
}

pub(super) async fn create(
    caps: &Capabilities,
    vpc_id: &str,
    name: &str,
    subnet_ids: &[String],
) -> Result<String, WitError> {
    // A VPC planned by `wharf plan` does not exist: nothing to look up.
    let (gateway, table) = if vpc_id.starts_with(PLANNED) {
        (None, None)
    } else {
        let ec2 = caps.aws().ec2().await?;
        tokio::try_join!(find_gateway(caps, ec2, vpc_id, name), find_route_table(caps, ec2, vpc_id, name))?
    };
    let unassociated: Vec<&String> = subnet_ids
        .iter()
        .filter(|subnet| !table.iter().flat_map(|t| t.associations()).any(|a| a.subnet_id() == Some(subnet.as_str())))
        .collect();

    let mut needs = Vec::new();
    if gateway.is_none() {
        needs.push(Need::new("ec2:CreateInternetGateway", name));
    }
    if !gateway.as_ref().is_some_and(|g| g.attached) {
        needs.push(Need::new("ec2:AttachInternetGateway", vpc_id));
    }
    if table.is_none() {
        needs.push(Need::new("ec2:CreateRouteTable", vpc_id));
    }
    needs.extend(unassociated.iter().map(|subnet| Need::new("ec2:AssociateRouteTable", subnet)));
    caps.authorize_all(&needs)?;
    if caps.plan("ec2:CreateInternetGateway", name, &format!("for {vpc_id}: {}", grants::describe(&needs))) {
        return Ok(format!("{PLANNED}route-table"));
    }
    let ec2 = caps.aws().ec2().await?;

    // The gateway and the table do not depend on each other; the route and the associations
    // depend on both but not on each other: two rounds of calls made at once, not eight calls.
    let gateway_id = async {
        let gateway = match gateway {
            Some(found) => found,
            None => Gateway { id: create_gateway(caps, ec2, vpc_id, name).await?, attached: false },
        };
        if !gateway.attached {
            let shown = format!("{} to {vpc_id}", gateway.id);
            settle(|| {
                let send = ec2.attach_internet_gateway().internet_gateway_id(&gateway.id).vpc_id(vpc_id).send();
                caps.call("ec2:AttachInternetGateway", &shown, send)
            })
            .await?;
        }
        Ok::<_, WitError>(gateway.id)
    };
    let table = async {
        match table {
            Some(found) => Ok(found),
            None => create_route_table(caps, ec2, vpc_id, name).await,
        }
    };
    let (gateway_id, table) = tokio::try_join!(gateway_id, table)?;
    let table_id =
        table.route_table_id().ok_or_else(|| super::super::incomplete_response("CreateRouteTable", "routeTableId"))?;
    let route = async {
        if table.routes().iter().any(|r| r.destination_cidr_block() == Some("0.0.0.0/0")) {
            return Ok(());
        }
        settle(|| {
            let send =
                ec2.create_route().route_table_id(table_id).destination_cidr_block("0.0.0.0/0").gateway_id(&gateway_id);
            caps.call("ec2:CreateRoute", table_id, send.send())
        })
        .await
        .map(drop)
    };
    let associations = unassociated.into_iter().map(|subnet| {
        settle(move || {
            let send = ec2.associate_route_table().route_table_id(table_id).subnet_id(subnet).send();
            caps.call("ec2:AssociateRouteTable", subnet, send)
        })
    });
    tokio::try_join!(route, try_join_all(associations))?;
    Ok(table_id.to_string())
}

/// The gateway wharf made under `name`, if any (put back in the ledger when this very step made
/// it in an attempt that died before its ledger write).
async fn find_gateway(
    caps: &Capabilities,
    ec2: &Client,
    vpc_id: &str,
    name: &str,
) -> Result<Option<Gateway>, WitError> {
    let send = ec2.describe_internet_gateways().set_filters(Some(created_by_wharf(name))).send();
    let found = caps.call("ec2:DescribeInternetGateways", name, send).await?;
    let Some(igw) = found.internet_gateways().first() else { return Ok(None) };
    let id = igw.internet_gateway_id().unwrap_or_default();
    let attributes = BTreeMap::from([("vpc_id".to_string(), vpc_id.to_string())]);
    caps.reclaim_if_ours(tag_pairs(igw.tags()), "ec2:internet-gateway", id, Some(name), attributes)?;
    let attached = igw.attachments().iter().any(|a| a.vpc_id() == Some(vpc_id));
    Ok(Some(Gateway { id: id.to_string(), attached }))
}

async fn create_gateway(caps: &Capabilities, ec2: &Client, vpc_id: &str, name: &str) -> Result<String, WitError> {
    let tags = tag_spec(caps, ResourceType::InternetGateway, name);
    let send = ec2.create_internet_gateway().tag_specifications(tags).send();
    let out = caps.call("ec2:CreateInternetGateway", name, send).await?;
    let incomplete = |field| super::super::incomplete_response("CreateInternetGateway", field);
    let id = out.internet_gateway().and_then(|g| g.internet_gateway_id()).ok_or_else(|| incomplete("id"))?;
    let attributes = BTreeMap::from([("vpc_id".to_string(), vpc_id.to_string())]);
    caps.record_created("ec2:internet-gateway", id, Some(name), attributes)?;
    Ok(id.to_string())
}

/// The route table wharf made under `name` in the VPC, if any, with its routes and associations.
async fn find_route_table(
    caps: &Capabilities,
    ec2: &Client,
    vpc_id: &str,
    name: &str,
) -> Result<Option<model::RouteTable>, WitError> {
    let mut filters = created_by_wharf(name);
    filters.push(filter("vpc-id", vpc_id));
    let send = ec2.describe_route_tables().set_filters(Some(filters)).send();
    let found = caps.call("ec2:DescribeRouteTables", name, send).await?;
    let Some(table) = found.route_tables().first() else { return Ok(None) };
    let id = table.route_table_id().unwrap_or_default();
    caps.reclaim_if_ours(tag_pairs(table.tags()), "ec2:route-table", id, Some(name), BTreeMap::new())?;
    Ok(Some(table.clone()))
}

async fn create_route_table(
    caps: &Capabilities,
    ec2: &Client,
    vpc_id: &str,
    name: &str,
) -> Result<model::RouteTable, WitError> {
    let tags = tag_spec(caps, ResourceType::RouteTable, name);
    // The VPC may be seconds old: wait out its "not found" like the follow-up calls do.
    let out = settle(|| {
        let send = ec2.create_route_table().vpc_id(vpc_id).tag_specifications(tags.clone()).send();
        caps.call("ec2:CreateRouteTable", vpc_id, send)
    })
    .await?;
    let incomplete = |field| super::super::incomplete_response("CreateRouteTable", field);
    let table = out.route_table.ok_or_else(|| incomplete("routeTable"))?;
    let id = table.route_table_id().ok_or_else(|| incomplete("routeTableId"))?;
    caps.record_created("ec2:route-table", id, Some(name), BTreeMap::new())?;
    Ok(table)
}
