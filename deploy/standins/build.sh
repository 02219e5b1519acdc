#!/usr/bin/env bash
# The four base images compose.yaml and the Dockerfile name: the official ones when a registry
# answers, else stand-ins built here from Debian packages under the same tags (README.md).
# Usage: deploy/standins/build.sh            (idempotent: an image already present is kept)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
TAGS=(python:3.11-slim redis:7-alpine postgres:16-alpine caddy:2-alpine)
BASE=local/debian:bookworm
LABEL=org.carepill.standin

log() { printf '[standins] %s\n' "$*"; }

# The Debian mirror this host's apt uses (deb822 or one-line sources), so the stand-ins come from
# the same archive as the host's packages.
mirror() {
  local uri
  uri="$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n1 || true)"
  [ -n "$uri" ] || uri="$(grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
    | awk '{print $2}' | grep -v security | head -n1 || true)"
  echo "${uri:-http://deb.debian.org/debian}"
}

base_image() {
  docker image inspect "$BASE" >/dev/null 2>&1 && return
  command -v debootstrap >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap; }
  local rootfs
  rootfs="$(mktemp -d)"
  log "debootstrap bookworm from $(mirror) (minbase)"
  debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" "$(mirror)" >/dev/null
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'CMD ["bash"]' - "$BASE" >/dev/null
  rm -rf "$rootfs"
}

standin() {
  local tag="$1" dir="$2" ctx
  ctx="$(mktemp -d)"
  cp -r "$here/$dir/." "$ctx/"
  # pip inside a container trusts what this host trusts (a property of these machines' HTTPS
  # egress, not of a deployment): only the python stand-in takes the host's CA bundle.
  [ "$dir" = python ] && cp /etc/ssl/certs/ca-certificates.crt "$ctx/host-ca.crt"
  log "building stand-in $tag ($dir/Dockerfile)"
  docker build -q --build-arg BASE="$BASE" --label "$LABEL=$tag" -t "$tag" "$ctx" >/dev/null
  rm -rf "$ctx"
}

for tag in "${TAGS[@]}"; do
  if docker image inspect "$tag" >/dev/null 2>&1; then
    log "$tag: present ($(docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$tag" | sed 's/^$/official/;s/.*:.*/stand-in/'))"
    continue
  fi
  if timeout 300 docker pull -q "$tag" >/dev/null 2>&1; then
    log "$tag: pulled (official)"
    continue
  fi
  base_image
  name="${tag%%:*}"
  standin "$tag" "$name"
done
