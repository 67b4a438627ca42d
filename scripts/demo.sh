#!/usr/bin/env bash
# Runs workflows/ecs-example.toml end to end against the local emulators: installs and starts
# them, builds wharf and the example app, builds and pushes the app's image to the local htpasswd
# registry, deploys, plays the container's part (moto never runs containers: the pushed image is
# pulled back, unpacked and its entrypoint run with the task role's credentials), verifies, shows
# the run, then tears everything down and shows that nothing the run created remains.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
scripts/emulators.sh install
scripts/emulators.sh start
eval "$(scripts/emulators.sh env)"
python="${WHARF_TOOLS_DIR:-$HOME/.cache/wharf/tools}/moto-venv/bin/python"

scripts/build-app.sh
cargo build -p wharf -p wharf-tests --bin wharf --bin play-container
wharf="${CARGO_TARGET_DIR:-target}/debug/wharf"
play_container="${CARGO_TARGET_DIR:-target}/debug/play-container"
state_dir="${WHARF_STATE_DIR:-.wharf-demo}"
w() { "$wharf" --state-dir "$state_dir" "$@"; }

# The tutorial assumes the bucket exists; the registry credentials come from the environment.
"$python" -c "import boto3; boto3.client('s3').create_bucket(Bucket='projectjz')" 2>/dev/null || true
# The image goes to the local registry that requires these credentials.
export REGISTRY_USERNAME=$WHARF_TEST_REGISTRY_USER REGISTRY_PASSWORD=$WHARF_TEST_REGISTRY_PASSWORD

w validate workflows/ecs-example.toml
w run workflows/ecs-example.toml --param "registry=$WHARF_TEST_REGISTRY_AUTH" \
  --param repository=demo/ecs-example "$@" &
wharf_pid=$!

# Once the service is deployed and verify-s3 waits for the object, do the container's job.
step_output() { # STEP FIELD: an output of the latest run's step, empty until it exists
  w --output json status 2>/dev/null | "$python" -c "
import json, sys
s = json.load(sys.stdin)
for st in s.get('steps', []):
    if st['step_id'] == '$1' and st['last'].get('outputs'):
        print(st['last']['outputs'].get('$2', ''))" 2>/dev/null || true
}
started() { # the verify step has begun (read whole output first: grep -q + pipefail would SIGPIPE)
  local status
  status=$(w --output json status 2>/dev/null || true)
  [[ $status == *'"step_id": "verify"'* ]]
}
for _ in $(seq 1 600); do
  started && break
  kill -0 "$wharf_pid" 2>/dev/null || break
  sleep 0.5
done
if started; then
  "$play_container" "$(step_output image image)" "$(step_output roles task_role_arn)" \
    BUCKET=projectjz KEY=ecs-example/sample.txt
fi
wait "$wharf_pid"

run_id=$(w --output json status | "$python" -c "import json,sys; print(json.load(sys.stdin)['run']['id'])")
w status "$run_id"
echo "== tearing down run $run_id"
w teardown "$run_id"
w status "$run_id"
echo "State is in $state_dir. The emulators keep running; stop them with scripts/emulators.sh stop."
