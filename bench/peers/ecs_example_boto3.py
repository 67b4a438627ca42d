#!/usr/bin/env python3
"""workflows/ecs-example.toml as one sequential boto3 script: deploy, verify, teardown.

The same AWS calls, names and settings as wharf's built-in plugins make for that workflow (the
find-before-create lookups included, in the order wharf makes them within each step); see
BENCHMARKS.md for how this was checked. Settings come from the environment:
IMAGE (the container image) or, when the workflow builds and pushes its image, IMAGE_DIR (the
image wharf built: manifest.json + blobs/, pushed here the same way), REGISTRY, REPOSITORY, TAG;
REGISTRY_USERNAME / REGISTRY_PASSWORD, AWS_* (endpoint, region).
"""
import base64
import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid

import boto3
from botocore.config import Config

REGION = os.environ.get("AWS_REGION", "us-east-1")
CLUSTER, SERVICE, FAMILY = "ecs-example-cluster", "ecs-example-service", "ecs-example"
BUCKET, KEY = "projectjz", "ecs-example/sample.txt"
SECRET = "ecs-example/registry-credentials"
TASK_ROLE, EXEC_ROLE = "ECSs3AccessTaskRole", "ecsTaskExecutionRole"
LOG_GROUP = "/ecs/ecs-example"
EXPECT = os.path.join(os.path.dirname(__file__), "../../workflows/app/model/sample.txt")
RUN = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]  # like a wharf run id, for the tags
TRUST = {"Statement": [{"Action": "sts:AssumeRole", "Effect": "Allow",
                        "Principal": {"Service": "ecs-tasks.amazonaws.com"}}], "Version": "2012-10-17"}

cfg = Config(region_name=REGION, retries={"max_attempts": 3, "mode": "standard"}, s3={"addressing_style": "path"})
ec2, ecs, iam = (boto3.client(s, config=cfg) for s in ("ec2", "ecs", "iam"))
sm, logs, s3 = (boto3.client(s, config=cfg) for s in ("secretsmanager", "logs", "s3"))


def tags(step, name=None):
    t = [{"Key": "Name", "Value": name}] if name else []
    return t + [{"Key": "wharf:run", "Value": RUN}, {"Key": "wharf:step", "Value": step}]


def spec(kind, name):
    return [{"ResourceType": kind, "Tags": tags("cluster", name)}]


def ecs_tags(step):
    return [{"key": "wharf:run", "value": RUN}, {"key": "wharf:step", "value": step}]


def backoff(attempt):
    """Waits like wharf's plugins: doubling from 100 ms, capped at 15 s."""
    time.sleep(min(0.1 * 2 ** attempt, 15))


def missing(call, code, **kw):
    try:
        call(**kw)
        return False
    except Exception as e:  # botocore ClientError
        if getattr(e, "response", {}).get("Error", {}).get("Code") == code:
            return True
        raise


# --- registry-secret
missing(sm.describe_secret, "ResourceNotFoundException", SecretId=SECRET)
secret_arn = sm.create_secret(
    Name=SECRET, ClientRequestToken=uuid.uuid4().hex, Description="Registry credentials for the ecs-example image",
    SecretString=json.dumps({"password": os.environ["REGISTRY_PASSWORD"], "username": os.environ["REGISTRY_USERNAME"]}),
    Tags=tags("registry-secret"))["ARN"]


# --- image: push the prebuilt image (wharf's build-push step builds it; see BENCHMARKS.md), with
# the registry credentials read back from the secret as wharf's host does.
def push_image():
    if not os.environ.get("IMAGE_DIR"):
        return os.environ["IMAGE"]
    d, reg, repo, tag = (os.environ[k] for k in ("IMAGE_DIR", "REGISTRY", "REPOSITORY", "TAG"))
    creds = json.loads(sm.get_secret_value(SecretId=secret_arn)["SecretString"])
    auth = "Basic " + base64.b64encode(f"{creds['username']}:{creds['password']}".encode()).decode()

    def call(method, url, data=None, content_type=None):
        url = url if url.startswith("http") else f"http://{reg}{url}"
        headers = {"Authorization": auth, **({"Content-Type": content_type} if content_type else {})}
        try:
            return urllib.request.urlopen(urllib.request.Request(url, data=data, method=method, headers=headers))
        except urllib.error.HTTPError as e:
            if method == "HEAD" and e.code == 404:
                return None
            raise

    manifest = open(f"{d}/manifest.json", "rb").read()
    m = json.loads(manifest)
    for blob in m["layers"] + [m["config"]]:
        digest = blob["digest"]
        if call("HEAD", f"/v2/{repo}/blobs/{digest}"):
            continue
        location = call("POST", f"/v2/{repo}/blobs/uploads/").headers["Location"]
        data = open(f"{d}/blobs/{digest.replace(':', '-')}", "rb").read()
        call("PUT", f"{location}{'&' if '?' in location else '?'}digest={digest}", data, "application/octet-stream")
    call("PUT", f"/v2/{repo}/manifests/{tag}", manifest, m["mediaType"])
    return f"{reg}/{repo}@sha256:{hashlib.sha256(manifest).hexdigest()}"


image = push_image()

# --- cluster (new VPC with two public subnets, as the tutorial's console wizard does)
ec2.describe_vpcs(Filters=[{"Name": "tag-key", "Values": ["wharf:run"]},
                           {"Name": "tag:Name", "Values": [f"{CLUSTER}-vpc"]}])
vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16", TagSpecifications=spec("vpc", f"{CLUSTER}-vpc"))["Vpc"]["VpcId"]
ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsSupport={"Value": True})
ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]][:2]
ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])
subnets = []
for i, zone in enumerate(zones):
    sub = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=zone,
                            TagSpecifications=spec("subnet", f"{CLUSTER}-public-{i + 1}"))["Subnet"]["SubnetId"]
    ec2.modify_subnet_attribute(SubnetId=sub, MapPublicIpOnLaunch={"Value": True})
    subnets.append(sub)
ec2.describe_internet_gateways(Filters=[{"Name": "tag-key", "Values": ["wharf:run"]},
                                        {"Name": "tag:Name", "Values": [f"{CLUSTER}-public"]}])
igw = ec2.create_internet_gateway(
    TagSpecifications=spec("internet-gateway", f"{CLUSTER}-public"))["InternetGateway"]["InternetGatewayId"]
ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
ec2.describe_route_tables(Filters=[{"Name": "tag-key", "Values": ["wharf:run"]},
                                   {"Name": "tag:Name", "Values": [f"{CLUSTER}-public"]},
                                   {"Name": "vpc-id", "Values": [vpc]}])
rtb = ec2.create_route_table(VpcId=vpc, TagSpecifications=spec("route-table", f"{CLUSTER}-public"))
rtb = rtb["RouteTable"]["RouteTableId"]
ec2.create_route(RouteTableId=rtb, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
assocs = [ec2.associate_route_table(SubnetId=s, RouteTableId=rtb)["AssociationId"] for s in subnets]
ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]},
                                      {"Name": "group-name", "Values": [f"{CLUSTER}-tasks"]}])
sg = ec2.create_security_group(GroupName=f"{CLUSTER}-tasks", Description=f"wharf: tasks of ECS cluster {CLUSTER}",
                               VpcId=vpc, TagSpecifications=spec("security-group", f"{CLUSTER}-tasks"))["GroupId"]
ecs.describe_clusters(clusters=[CLUSTER], include=["SETTINGS", "TAGS"])
cluster_arn = ecs.create_cluster(clusterName=CLUSTER, tags=ecs_tags("cluster"),
                                 settings=[{"name": "containerInsights", "value": "enabled"}])["cluster"]["clusterArn"]

# --- roles: the task role may put exactly the one object; the execution role may read the secret
role_arns = {}
for role, description in ((TASK_ROLE, "ECS task role"), (EXEC_ROLE, "ECS task execution role")):
    missing(iam.get_role, "NoSuchEntity", RoleName=role)
    role_arns[role] = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(TRUST),
                                      Description=f"{description} (created by wharf)",
                                      Tags=tags("roles"))["Role"]["Arn"]
    if role == TASK_ROLE:
        policy = ("wharf-s3", {"Statement": [{"Action": "s3:PutObject", "Effect": "Allow",
                                              "Resource": [f"arn:aws:s3:::{BUCKET}/{KEY}"],
                                              "Sid": "WharfS3Write"}], "Version": "2012-10-17"})
    else:
        iam.list_attached_role_policies(RoleName=role)
        iam.attach_role_policy(RoleName=role,
                               PolicyArn="arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy")
        policy = ("wharf-registry-secret", {"Statement": [{"Action": "secretsmanager:GetSecretValue",
                                                           "Effect": "Allow", "Resource": secret_arn,
                                                           "Sid": "WharfRegistryCredentials"}],
                                            "Version": "2012-10-17"})
    missing(iam.get_role_policy, "NoSuchEntity", RoleName=role, PolicyName=policy[0])
    iam.put_role_policy(RoleName=role, PolicyName=policy[0], PolicyDocument=json.dumps(policy[1]))

# --- taskdef
logs.describe_log_groups(logGroupNamePrefix=LOG_GROUP)
logs.create_log_group(logGroupName=LOG_GROUP, tags={"wharf:step": "taskdef", "wharf:run": RUN})
missing(ecs.describe_task_definition, "ClientException", taskDefinition=FAMILY, include=["TAGS"])
taskdef_arn = ecs.register_task_definition(
    family=FAMILY, taskRoleArn=role_arns[TASK_ROLE], executionRoleArn=role_arns[EXEC_ROLE], networkMode="awsvpc",
    containerDefinitions=[{
        "name": "ecs-example", "image": image, "cpu": 0, "portMappings": [], "essential": True,
        "repositoryCredentials": {"credentialsParameter": secret_arn},
        "environment": [{"name": "BUCKET", "value": BUCKET}, {"name": "KEY", "value": KEY}], "secrets": [],
        "logConfiguration": {"logDriver": "awslogs", "options": {
            "awslogs-group": LOG_GROUP, "awslogs-region": REGION, "awslogs-stream-prefix": "ecs-example"}}}],
    requiresCompatibilities=["FARGATE"], cpu="256", memory="512", tags=ecs_tags("taskdef"),
    runtimePlatform={"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"},
)["taskDefinition"]["taskDefinitionArn"]

# --- service: create, then wait for *its* deployment to complete
ecs.describe_services(cluster=CLUSTER, services=[SERVICE], include=["TAGS"])
ecs.create_service(
    cluster=CLUSTER, serviceName=SERVICE, taskDefinition=taskdef_arn, desiredCount=1, clientToken=uuid.uuid4().hex,
    launchType="FARGATE", deploymentConfiguration={"deploymentCircuitBreaker": {"enable": True, "rollback": True}},
    networkConfiguration={"awsvpcConfiguration": {"subnets": subnets, "securityGroups": [sg],
                                                  "assignPublicIp": "ENABLED"}},
    tags=ecs_tags("service"), propagateTags="SERVICE")
for attempt in range(60):
    svc = ecs.describe_services(cluster=CLUSTER, services=[SERVICE], include=["TAGS"])["services"][0]
    primary = [d for d in svc["deployments"] if d["status"] == "PRIMARY"][0]
    if primary.get("rolloutState") == "FAILED":
        sys.exit(f"deployment failed: {primary.get('rolloutStateReason')}")
    if primary.get("rolloutState") == "COMPLETED" or (svc["runningCount"] >= 1 and len(svc["deployments"]) == 1):
        break
    backoff(attempt)
else:
    sys.exit("the service did not become stable")

# --- verify: the container wrote its object, with the expected content
for attempt in range(60):
    if not missing(s3.head_object, "404", Bucket=BUCKET, Key=KEY):
        break
    backoff(attempt)
body = s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read()
if hashlib.sha256(body).digest() != hashlib.sha256(open(EXPECT, "rb").read()).digest():
    sys.exit("s3 object content differs")

# --- teardown, dependents first (the order wharf's teardown uses)
ecs.describe_services(cluster=CLUSTER, services=[SERVICE], include=["TAGS"])
ecs.update_service(cluster=CLUSTER, service=SERVICE, desiredCount=0)
ecs.delete_service(cluster=CLUSTER, service=SERVICE, force=True)
ecs.describe_task_definition(taskDefinition=taskdef_arn, include=["TAGS"])
ecs.deregister_task_definition(taskDefinition=taskdef_arn)
ecs.delete_task_definitions(taskDefinitions=[taskdef_arn])
logs.delete_log_group(logGroupName=LOG_GROUP)
ecs.describe_clusters(clusters=[cluster_arn])
ecs.delete_cluster(cluster=cluster_arn)
sm.delete_secret(SecretId=secret_arn, ForceDeleteWithoutRecovery=True)
iam.get_role(RoleName=EXEC_ROLE)
iam.detach_role_policy(RoleName=EXEC_ROLE, PolicyArn="arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy")
for role, policy in ((EXEC_ROLE, "wharf-registry-secret"), (TASK_ROLE, "wharf-s3")):
    iam.get_role(RoleName=role)
    iam.delete_role_policy(RoleName=role, PolicyName=policy)
for role in (EXEC_ROLE, TASK_ROLE):
    iam.get_role(RoleName=role)
    iam.delete_role(RoleName=role)
ec2.delete_security_group(GroupId=sg)
ec2.describe_route_tables(RouteTableIds=[rtb])
for a in assocs:
    ec2.disassociate_route_table(AssociationId=a)
ec2.delete_route_table(RouteTableId=rtb)
ec2.detach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
ec2.delete_internet_gateway(InternetGatewayId=igw)
for s in reversed(subnets):
    ec2.delete_subnet(SubnetId=s)
ec2.delete_vpc(VpcId=vpc)
print("boto3: deployed, verified and tore down ecs-example")
