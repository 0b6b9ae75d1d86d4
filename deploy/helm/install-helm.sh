#!/usr/bin/env bash
# Print the path of a Helm binary of the pinned version, building it first if the
# cache does not have it yet. Helm is compiled from its Go module (the Go module
# proxy is the only source needed), once per machine: the binary is kept under
# ~/.cache/cqrs/helm/<version>/, beside the Maven jars of the local stack.
#
#   deploy/helm/install-helm.sh          # prints e.g. /root/.cache/cqrs/helm/v3.19.5/helm
#   HELM_VERSION=v3.19.5 deploy/helm/install-helm.sh
#
# A cold build takes about 3.5 minutes on 2 cores; afterwards this is instant.
set -euo pipefail

version="${HELM_VERSION:-v3.19.5}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/cqrs/helm/$version"
binary="$cache/helm"

if [[ -x "$binary" ]] && "$binary" version --short >/dev/null 2>&1; then
    echo "$binary"
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    echo "error: go not found; install Go 1.24+ to build Helm $version (or put a helm $version binary at $binary)" >&2
    exit 1
fi

echo "building Helm $version with $(go version | cut -d' ' -f3) into $cache (about 3.5 minutes, once)" >&2
mkdir -p "$cache"
modules="$(mktemp -d)"
trap 'rm -rf "$modules"' EXIT
started=$(date +%s)
# A private module cache, so that nothing but the binary is left behind.
GOBIN="$cache" GOMODCACHE="$modules" GOFLAGS="-modcacherw -buildvcs=false" CGO_ENABLED=0 \
    go install "helm.sh/helm/v3/cmd/helm@$version" >&2
echo "built Helm $version in $(( $(date +%s) - started ))s" >&2
"$binary" version --short >&2
echo "$binary"
