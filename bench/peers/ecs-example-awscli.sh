#!/usr/bin/env bash
# workflows/ecs-example.toml as the bash script a reader of the tutorial would write with the aws
# CLI: deploy, verify, teardown. The same AWS calls, names and settings as wharf's built-in
# plugins make (find-before-create lookups included); see BENCHMARKS.md.
# Environment: IMAGE, REGISTRY_USERNAME, REGISTRY_PASSWORD, AWS_* (endpoint, region).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
REGION=${AWS_REGION:-us-east-1}
CLUSTER=ecs-example-cluster SERVICE=ecs-example-service FAMILY=ecs-example
BUCKET=projectjz KEY=ecs-example/sample.txt SECRET=ecs-example/registry-credentials
TASK_ROLE=ECSs3AccessTaskRole EXEC_ROLE=ecsTaskExecutionRole LOG_GROUP=/ecs/ecs-example
EXEC_POLICY=arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy
RUN="$(date -u +%Y%m%d-%H%M%S)-$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')"
# Path-style S3 addressing against the local endpoint; the same retry settings as the others.
export AWS_CONFIG_FILE="$here/awscli.config" AWS_MAX_ATTEMPTS=3 AWS_RETRY_MODE=standard AWS_PAGER=""
aws() { command aws --region "$REGION" --output text "$@"; }
# Runs a lookup that is expected to find nothing (exit 254 + the given error code).
absent() { local code=$1; shift; local out; if out=$(aws "$@" 2>&1); then return 0; fi; [[ $out == *"$code"* ]] || { echo "$out" >&2; exit 1; }; }
tags() { echo "Key=wharf:run,Value=$RUN Key=wharf:step,Value=$1"; }
spec() { echo "ResourceType=$1,Tags=[{Key=Name,Value=$2},{Key=wharf:run,Value=$RUN},{Key=wharf:step,Value=cluster}]"; }
ecs_tags() { echo "key=wharf:run,value=$RUN key=wharf:step,value=$1"; }
backoff() { sleep "$(awk -v a="$1" 'BEGIN { d = 0.1 * 2 ^ a; print (d > 15 ? 15 : d) }')"; }

# --- registry-secret
absent ResourceNotFoundException secretsmanager describe-secret --secret-id "$SECRET"
secret_value=$(printf '{"password": "%s", "username": "%s"}' "$REGISTRY_PASSWORD" "$REGISTRY_USERNAME")
# shellcheck disable=SC2046
secret_arn=$(aws secretsmanager create-secret --name "$SECRET" --client-request-token "$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')" \
  --description "Registry credentials for the ecs-example image" --secret-string "$secret_value" \
  --tags $(tags registry-secret) --query ARN)

# --- image: push the prebuilt image (wharf's build-push step builds it; see BENCHMARKS.md), with
# the registry credentials read back from the secret as wharf's host does.
if [[ -n ${IMAGE_DIR:-} ]]; then
  creds=$(aws secretsmanager get-secret-value --secret-id "$secret_arn" --query SecretString)
  basic=(-u "$(jq -r '.username + ":" + .password' <<<"$creds")")
  reg="http://$REGISTRY/v2/$REPOSITORY"
  for digest in $(jq -r '(.layers[], .config).digest' "$IMAGE_DIR/manifest.json"); do
    curl -sf -o /dev/null -I "${basic[@]}" "$reg/blobs/$digest" && continue
    location=$(curl -sf -D - -o /dev/null -X POST "${basic[@]}" "$reg/blobs/uploads/" | tr -d '\r' | awk 'tolower($1) == "location:" { print $2 }')
    [[ $location == http* ]] || location="http://$REGISTRY$location"
    [[ $location == *\?* ]] && sep='&' || sep='?'
    curl -sf -o /dev/null -X PUT "${basic[@]}" -H 'Content-Type: application/octet-stream' \
      --data-binary "@$IMAGE_DIR/blobs/${digest/:/-}" "$location${sep}digest=$digest"
  done
  curl -sf -o /dev/null -X PUT "${basic[@]}" -H "Content-Type: $(jq -r .mediaType "$IMAGE_DIR/manifest.json")" \
    --data-binary "@$IMAGE_DIR/manifest.json" "$reg/manifests/$TAG"
  IMAGE="$REGISTRY/$REPOSITORY@sha256:$(sha256sum "$IMAGE_DIR/manifest.json" | cut -d' ' -f1)"
fi

# --- cluster: a new VPC with two public subnets
aws ec2 describe-vpcs --filters Name=tag-key,Values=wharf:run "Name=tag:Name,Values=$CLUSTER-vpc" >/dev/null
vpc=$(aws ec2 create-vpc --cidr-block 10.0.0.0/16 --tag-specifications "$(spec vpc "$CLUSTER-vpc")" --query Vpc.VpcId)
aws ec2 modify-vpc-attribute --vpc-id "$vpc" --enable-dns-support '{"Value": true}'
aws ec2 modify-vpc-attribute --vpc-id "$vpc" --enable-dns-hostnames '{"Value": true}'
read -r -a zones <<<"$(aws ec2 describe-availability-zones --query 'AvailabilityZones[].ZoneName')"
aws ec2 describe-subnets --filters "Name=vpc-id,Values=$vpc" >/dev/null
subnets=()
for i in 0 1; do
  s=$(aws ec2 create-subnet --vpc-id "$vpc" --cidr-block "10.0.$i.0/24" --availability-zone "${zones[$i]}" \
    --tag-specifications "$(spec subnet "$CLUSTER-public-$((i + 1))")" --query Subnet.SubnetId)
  aws ec2 modify-subnet-attribute --subnet-id "$s" --map-public-ip-on-launch
  subnets+=("$s")
done
aws ec2 describe-internet-gateways --filters Name=tag-key,Values=wharf:run "Name=tag:Name,Values=$CLUSTER-public" >/dev/null
igw=$(aws ec2 create-internet-gateway --tag-specifications "$(spec internet-gateway "$CLUSTER-public")" \
  --query InternetGateway.InternetGatewayId)
aws ec2 attach-internet-gateway --internet-gateway-id "$igw" --vpc-id "$vpc"
aws ec2 describe-route-tables --filters Name=tag-key,Values=wharf:run "Name=tag:Name,Values=$CLUSTER-public" \
  "Name=vpc-id,Values=$vpc" >/dev/null
rtb=$(aws ec2 create-route-table --vpc-id "$vpc" --tag-specifications "$(spec route-table "$CLUSTER-public")" \
  --query RouteTable.RouteTableId)
aws ec2 create-route --route-table-id "$rtb" --destination-cidr-block 0.0.0.0/0 --gateway-id "$igw" >/dev/null
assocs=()
for s in "${subnets[@]}"; do
  assocs+=("$(aws ec2 associate-route-table --subnet-id "$s" --route-table-id "$rtb" --query AssociationId)")
done
aws ec2 describe-security-groups --filters "Name=vpc-id,Values=$vpc" "Name=group-name,Values=$CLUSTER-tasks" >/dev/null
sg=$(aws ec2 create-security-group --group-name "$CLUSTER-tasks" --description "wharf: tasks of ECS cluster $CLUSTER" \
  --vpc-id "$vpc" --tag-specifications "$(spec security-group "$CLUSTER-tasks")" --query GroupId)
aws ecs describe-clusters --clusters "$CLUSTER" --include SETTINGS TAGS >/dev/null
# shellcheck disable=SC2046
cluster_arn=$(aws ecs create-cluster --cluster-name "$CLUSTER" --tags $(ecs_tags cluster) \
  --settings name=containerInsights,value=enabled --query cluster.clusterArn)

# --- roles: the task role may put exactly the one object; the execution role may read the secret
trust='{"Statement":[{"Action":"sts:AssumeRole","Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"}}],"Version":"2012-10-17"}'
absent NoSuchEntity iam get-role --role-name "$TASK_ROLE"
# shellcheck disable=SC2046
task_role_arn=$(aws iam create-role --role-name "$TASK_ROLE" --assume-role-policy-document "$trust" \
  --description "ECS task role (created by wharf)" --tags $(tags roles) --query Role.Arn)
absent NoSuchEntity iam get-role-policy --role-name "$TASK_ROLE" --policy-name wharf-s3
aws iam put-role-policy --role-name "$TASK_ROLE" --policy-name wharf-s3 --policy-document \
  "{\"Statement\":[{\"Action\":\"s3:PutObject\",\"Effect\":\"Allow\",\"Resource\":[\"arn:aws:s3:::$BUCKET/$KEY\"],\"Sid\":\"WharfS3Write\"}],\"Version\":\"2012-10-17\"}"
absent NoSuchEntity iam get-role --role-name "$EXEC_ROLE"
# shellcheck disable=SC2046
exec_role_arn=$(aws iam create-role --role-name "$EXEC_ROLE" --assume-role-policy-document "$trust" \
  --description "ECS task execution role (created by wharf)" --tags $(tags roles) --query Role.Arn)
aws iam list-attached-role-policies --role-name "$EXEC_ROLE" >/dev/null
aws iam attach-role-policy --role-name "$EXEC_ROLE" --policy-arn "$EXEC_POLICY"
absent NoSuchEntity iam get-role-policy --role-name "$EXEC_ROLE" --policy-name wharf-registry-secret
aws iam put-role-policy --role-name "$EXEC_ROLE" --policy-name wharf-registry-secret --policy-document \
  "{\"Statement\":[{\"Action\":\"secretsmanager:GetSecretValue\",\"Effect\":\"Allow\",\"Resource\":\"$secret_arn\",\"Sid\":\"WharfRegistryCredentials\"}],\"Version\":\"2012-10-17\"}"

# --- taskdef
aws logs describe-log-groups --log-group-name-prefix "$LOG_GROUP" >/dev/null
aws logs create-log-group --log-group-name "$LOG_GROUP" --tags "{\"wharf:step\": \"taskdef\", \"wharf:run\": \"$RUN\"}"
absent ClientException ecs describe-task-definition --task-definition "$FAMILY" --include TAGS
taskdef_arn=$(aws ecs register-task-definition --query taskDefinition.taskDefinitionArn --cli-input-json "$(cat <<EOF
{"family":"$FAMILY","taskRoleArn":"$task_role_arn","executionRoleArn":"$exec_role_arn","networkMode":"awsvpc",
 "containerDefinitions":[{"name":"ecs-example","image":"$IMAGE","repositoryCredentials":{"credentialsParameter":"$secret_arn"},
  "cpu":0,"portMappings":[],"essential":true,"environment":[{"name":"BUCKET","value":"$BUCKET"},{"name":"KEY","value":"$KEY"}],
  "secrets":[],"logConfiguration":{"logDriver":"awslogs","options":{"awslogs-group":"$LOG_GROUP","awslogs-region":"$REGION","awslogs-stream-prefix":"ecs-example"}}}],
 "requiresCompatibilities":["FARGATE"],"cpu":"256","memory":"512",
 "tags":[{"key":"wharf:run","value":"$RUN"},{"key":"wharf:step","value":"taskdef"}],
 "runtimePlatform":{"cpuArchitecture":"X86_64","operatingSystemFamily":"LINUX"}}
EOF
)")

# --- service: create, then wait for its deployment to complete
aws ecs describe-services --cluster "$CLUSTER" --services "$SERVICE" --include TAGS >/dev/null
# shellcheck disable=SC2046
aws ecs create-service --cluster "$CLUSTER" --service-name "$SERVICE" --task-definition "$taskdef_arn" \
  --desired-count 1 --client-token "$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')" --launch-type FARGATE \
  --deployment-configuration 'deploymentCircuitBreaker={enable=true,rollback=true}' \
  --network-configuration "awsvpcConfiguration={subnets=[${subnets[0]},${subnets[1]}],securityGroups=[$sg],assignPublicIp=ENABLED}" \
  --tags $(ecs_tags service) --propagate-tags SERVICE >/dev/null
for attempt in $(seq 0 59); do
  state=$(aws ecs describe-services --cluster "$CLUSTER" --services "$SERVICE" --include TAGS \
    --query 'services[0].[deployments[?status==`PRIMARY`].rolloutState | [0], runningCount, length(deployments)]')
  read -r rollout running ndeploy <<<"$state"
  [[ $rollout == FAILED ]] && { echo "deployment failed" >&2; exit 1; }
  [[ $rollout == COMPLETED || ($running -ge 1 && $ndeploy == 1) ]] && break
  [[ $attempt == 59 ]] && { echo "the service did not become stable" >&2; exit 1; }
  backoff "$attempt"
done

# --- verify: the container wrote its object, with the expected content
for attempt in $(seq 0 59); do
  aws s3api head-object --bucket "$BUCKET" --key "$KEY" >/dev/null 2>&1 && break
  [[ $attempt == 59 ]] && { echo "the object never appeared" >&2; exit 1; }
  backoff "$attempt"
done
object=$(mktemp)
aws s3api get-object --bucket "$BUCKET" --key "$KEY" "$object" >/dev/null
cmp -s "$object" "$here/../../workflows/app/model/sample.txt" || { echo "s3 object content differs" >&2; exit 1; }
rm -f "$object"

# --- teardown, dependents first (the order wharf's teardown uses)
aws ecs describe-services --cluster "$CLUSTER" --services "$SERVICE" --include TAGS >/dev/null
aws ecs update-service --cluster "$CLUSTER" --service "$SERVICE" --desired-count 0 >/dev/null
aws ecs delete-service --cluster "$CLUSTER" --service "$SERVICE" --force >/dev/null
aws ecs describe-task-definition --task-definition "$taskdef_arn" --include TAGS >/dev/null
aws ecs deregister-task-definition --task-definition "$taskdef_arn" >/dev/null
aws ecs delete-task-definitions --task-definitions "$taskdef_arn" >/dev/null
aws logs delete-log-group --log-group-name "$LOG_GROUP"
aws ecs describe-clusters --clusters "$cluster_arn" >/dev/null
aws ecs delete-cluster --cluster "$cluster_arn" >/dev/null
aws secretsmanager delete-secret --secret-id "$secret_arn" --force-delete-without-recovery >/dev/null
aws iam get-role --role-name "$EXEC_ROLE" >/dev/null
aws iam detach-role-policy --role-name "$EXEC_ROLE" --policy-arn "$EXEC_POLICY"
aws iam get-role --role-name "$EXEC_ROLE" >/dev/null
aws iam delete-role-policy --role-name "$EXEC_ROLE" --policy-name wharf-registry-secret
aws iam get-role --role-name "$TASK_ROLE" >/dev/null
aws iam delete-role-policy --role-name "$TASK_ROLE" --policy-name wharf-s3
for role in "$EXEC_ROLE" "$TASK_ROLE"; do
  aws iam get-role --role-name "$role" >/dev/null
  aws iam delete-role --role-name "$role"
done
aws ec2 delete-security-group --group-id "$sg"
aws ec2 describe-route-tables --route-table-ids "$rtb" >/dev/null
for a in "${assocs[@]}"; do aws ec2 disassociate-route-table --association-id "$a"; done
aws ec2 delete-route-table --route-table-id "$rtb"
aws ec2 detach-internet-gateway --internet-gateway-id "$igw" --vpc-id "$vpc"
aws ec2 delete-internet-gateway --internet-gateway-id "$igw"
aws ec2 delete-subnet --subnet-id "${subnets[1]}"
aws ec2 delete-subnet --subnet-id "${subnets[0]}"
aws ec2 delete-vpc --vpc-id "$vpc"
echo "aws CLI: deployed, verified and tore down ecs-example"
