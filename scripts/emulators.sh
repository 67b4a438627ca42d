#!/usr/bin/env bash
# Local emulators for wharf's tests: moto server (AWS) and two Debian docker-registry
# instances (one open, one with htpasswd basic auth). All bind to 127.0.0.1 only.
#
# Usage: scripts/emulators.sh install|start|stop|status|env|reset
#
# Settings (environment):
#   WHARF_TOOLS_DIR          venv location parent   (default ~/.cache/wharf/tools)
#   WHARF_RUN_DIR            logs, pid files, data  (default ~/.cache/wharf/run)
#   WHARF_MOTO_PORT          moto server            (default 5555)
#   WHARF_REGISTRY_PORT      open registry          (default 5556)
#   WHARF_REGISTRY_AUTH_PORT basic-auth registry    (default 5557)
set -euo pipefail

MOTO_VERSION=5.2.5
TOOLS_DIR=${WHARF_TOOLS_DIR:-$HOME/.cache/wharf/tools}
RUN_DIR=${WHARF_RUN_DIR:-$HOME/.cache/wharf/run}
VENV=$TOOLS_DIR/moto-venv
MOTO_PORT=${WHARF_MOTO_PORT:-5555}
REG_PORT=${WHARF_REGISTRY_PORT:-5556}
REG_AUTH_PORT=${WHARF_REGISTRY_AUTH_PORT:-5557}
REG_USER=wharf
REG_PASSWORD=wharf-test-password
REGISTRY_BIN=/usr/bin/docker-registry
READY_TIMEOUT=30 # seconds

log() { echo "emulators: $*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- install

moto_installed_version() {
  # Prints moto's version only if the server extras import too; empty otherwise.
  "$VENV/bin/python" - 2>/dev/null <<'EOF' || true
import importlib.metadata as m
import flask, flask_cors, moto.server  # noqa: F401  (the [server] extra)
print(m.version("moto"))
EOF
}

install_moto() {
  local have
  have=$(moto_installed_version)
  if [[ $have == "$MOTO_VERSION" ]]; then
    log "moto $MOTO_VERSION already in $VENV"
    return
  fi
  # A venv whose interpreter no longer runs (e.g. python was upgraded) is rebuilt.
  if ! "$VENV/bin/python" -c '' 2>/dev/null; then
    log "creating venv $VENV"
    rm -rf "$VENV"
    mkdir -p "$TOOLS_DIR"
    python3 -m venv "$VENV"
  fi
  log "installing moto[server]==$MOTO_VERSION (found: ${have:-none})"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
  have=$(moto_installed_version)
  [[ $have == "$MOTO_VERSION" ]] || die "moto install check failed (found '${have:-none}')"
}

install_apt_packages() {
  local missing=()
  [[ -x $REGISTRY_BIN ]] || missing+=(docker-registry)
  command -v htpasswd >/dev/null || missing+=(apache2-utils)
  command -v curl >/dev/null || missing+=(curl)
  if ((${#missing[@]} == 0)); then
    log "docker-registry, htpasswd and curl already installed"
    return
  fi
  local sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null ||
      die "need root to install Debian packages; please run: apt-get install ${missing[*]}"
    sudo=(sudo)
  fi
  log "apt-get installing: ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

cmd_install() {
  install_moto
  install_apt_packages
}

# ---------------------------------------------------------------- process helpers

pidfile() { echo "$RUN_DIR/$1.pid"; }

# Prints the pid recorded for service $1 if that process is alive and is really ours
# (its command line contains $2); guards against pid reuse after a reboot.
live_pid() {
  local f pid
  f=$(pidfile "$1")
  [[ -f $f ]] || return 1
  pid=$(<"$f")
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2" || return 1
  echo "$pid"
}

# HTTP status of GET $1 ("000" if nothing answers).
http_code() { curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" || true; }

moto_up() { [[ $(http_code "http://127.0.0.1:$MOTO_PORT/moto-api/data.json") == 200 ]]; }
registry_up() { [[ $(http_code "http://127.0.0.1:$1/v2/") == "$2" ]]; }

stop_one() { # name cmdline-marker
  local pid i
  if pid=$(live_pid "$1" "$2"); then
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
    log "stopped $1 (pid $pid)"
  fi
  rm -f "$(pidfile "$1")"
}

# Runs "$@" detached (own session, no inherited stdio) logging to $RUN_DIR/$name.log,
# then waits until `ready_check` succeeds. On failure shows the log tail.
launch() { # name marker ready_check cmd...
  local name=$1 marker=$2 check=$3 pid i
  shift 3
  stop_one "$name" "$marker" # a live but unresponsive leftover is replaced
  local logf=$RUN_DIR/$name.log
  setsid "$@" </dev/null >"$logf" 2>&1 9>&- & # 9>&-: don't inherit the lock
  pid=$!
  echo "$pid" >"$(pidfile "$name")"
  for ((i = 0; i < READY_TIMEOUT * 5; i++)); do
    if $check; then
      log "$name ready (pid $pid, log $logf)"
      return
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    log "$name did not answer within ${READY_TIMEOUT}s; log tail ($logf):"
  else
    log "$name exited at startup (port in use?); log tail ($logf):"
  fi
  rm -f "$(pidfile "$name")"
  tail -n 25 "$logf" >&2 || true
  exit 1
}

# ---------------------------------------------------------------- start

start_moto() {
  if moto_up; then
    log "moto already answering on 127.0.0.1:$MOTO_PORT"
    return
  fi
  [[ -x $VENV/bin/moto_server ]] || die "moto not installed; run: $0 install"
  launch moto moto_server moto_up \
    env MOTO_IAM_LOAD_MANAGED_POLICIES=true MOTO_ECS_SERVICE_RUNNING=1 \
    "$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT"
}

# Writes a registry config for service $1 on port $2; $3 = htpasswd file or empty.
write_registry_config() {
  local name=$1 port=$2 htpasswd=$3 data
  rm -rf "$RUN_DIR/$name-data."* # data of a previous run is throwaway
  data=$(mktemp -d "$RUN_DIR/$name-data.XXXXXX")
  {
    echo "version: 0.1"
    echo "log: {level: info}"
    echo "storage:"
    echo "  filesystem: {rootdirectory: $data}"
    echo "  delete: {enabled: true}"
    echo "http:"
    echo "  addr: 127.0.0.1:$port"
    if [[ -n $htpasswd ]]; then
      echo "auth:"
      echo "  htpasswd: {realm: wharf-test, path: $htpasswd}"
    fi
  } >"$RUN_DIR/$name.yml"
}

open_up() { registry_up "$REG_PORT" 200; }
auth_up() { registry_up "$REG_AUTH_PORT" 401; }

start_registries() {
  [[ -x $REGISTRY_BIN ]] || die "docker-registry not installed; run: $0 install"
  if open_up; then
    log "registry already answering on 127.0.0.1:$REG_PORT"
  else
    write_registry_config registry "$REG_PORT" ""
    launch registry "$RUN_DIR/registry.yml" open_up "$REGISTRY_BIN" serve "$RUN_DIR/registry.yml"
  fi
  if auth_up; then
    log "auth registry already answering on 127.0.0.1:$REG_AUTH_PORT"
  else
    command -v htpasswd >/dev/null || die "htpasswd not installed; run: $0 install"
    htpasswd -Bbn "$REG_USER" "$REG_PASSWORD" >"$RUN_DIR/htpasswd"
    write_registry_config registry-auth "$REG_AUTH_PORT" "$RUN_DIR/htpasswd"
    launch registry-auth "$RUN_DIR/registry-auth.yml" auth_up \
      "$REGISTRY_BIN" serve "$RUN_DIR/registry-auth.yml"
  fi
}

# ---------------------------------------------------------------- commands

lock() { # serialise start/stop between concurrent callers (e.g. two test runs)
  mkdir -p "$RUN_DIR"
  exec 9>"$RUN_DIR/.lock"
  flock 9
}

cmd_start() {
  lock
  start_moto
  start_registries
}

cmd_stop() {
  lock
  # In parallel: each may take a couple of seconds to exit.
  stop_one moto moto_server &
  stop_one registry "$RUN_DIR/registry.yml" &
  stop_one registry-auth "$RUN_DIR/registry-auth.yml" &
  wait
  rm -rf "$RUN_DIR/registry-data."* "$RUN_DIR/registry-auth-data."*
}

cmd_env() {
  cat <<EOF
export AWS_ENDPOINT_URL=http://127.0.0.1:$MOTO_PORT
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
export WHARF_TEST_MOTO=http://127.0.0.1:$MOTO_PORT
export WHARF_TEST_REGISTRY=127.0.0.1:$REG_PORT
export WHARF_TEST_REGISTRY_AUTH=127.0.0.1:$REG_AUTH_PORT
export WHARF_TEST_REGISTRY_USER=$REG_USER
export WHARF_TEST_REGISTRY_PASSWORD=$REG_PASSWORD
EOF
}

cmd_reset() {
  curl -fsS -m 10 -X POST "http://127.0.0.1:$MOTO_PORT/moto-api/reset" >/dev/null ||
    die "moto reset failed (is it running? try: $0 start)"
  log "moto state reset"
}

# Exit status 0 only if all three answer.
cmd_status() {
  local ok=0
  report() { # name up? url
    if $2; then echo "$1: up    $3"; else echo "$1: DOWN  $3"; ok=1; fi
  }
  report moto moto_up "http://127.0.0.1:$MOTO_PORT"
  report registry open_up "127.0.0.1:$REG_PORT"
  report registry-auth auth_up "127.0.0.1:$REG_AUTH_PORT (user $REG_USER)"
  return "$ok"
}

case ${1:-} in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) cmd_env ;;
  reset) cmd_reset ;;
  *)
    echo "usage: $0 install|start|stop|status|env|reset" >&2
    exit 2
    ;;
esac
