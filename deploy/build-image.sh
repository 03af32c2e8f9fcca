#!/usr/bin/env bash
# Builds the sluice image from deploy/Dockerfile with podman (or buildah).
#
#   deploy/build-image.sh [TAG]        default TAG: localhost/sluice:<version>
#
# The Dockerfile builds on a Debian 12 image. Where a registry is reachable
# that is docker.io/library/debian:12; where none is (the build machines here),
# this script makes one: debootstrap of Debian 12 from the Debian mirror,
# imported as localhost/debian:12 and reused from then on. Set SLUICE_BASE to
# use another Debian 12 image, DEBIAN_MIRROR for another mirror.
#
# podman runs the build with runc and explicit ulimits: on hosts with the
# cgroup v1/v2 hybrid crun refuses to start, and a root without
# CAP_SYS_RESOURCE cannot raise podman's default limits.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^project(sluice VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
tag=${1:-localhost/sluice:$version}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if command -v podman >/dev/null; then
  engine=(podman)
  build=(podman build --runtime runc --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
elif command -v buildah >/dev/null; then
  engine=(buildah)
  build=(buildah bud --runtime runc --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
else
  echo "build-image: needs podman or buildah (Debian 12: apt-get install podman runc)" >&2
  exit 2
fi

image_exists() { "${engine[@]}" image exists "$1" 2>/dev/null || "${engine[@]}" images -q "$1" 2>/dev/null | grep -q .; }

base=${SLUICE_BASE:-}
if [ -z "$base" ]; then
  if image_exists docker.io/library/debian:12; then
    base=docker.io/library/debian:12
  elif image_exists localhost/debian:12; then
    base=localhost/debian:12
  elif timeout 60 "${engine[@]}" pull -q docker.io/library/debian:12 >/dev/null 2>&1; then
    base=docker.io/library/debian:12
  else
    # No registry: a Debian 12 root file system from the package mirror.
    command -v debootstrap >/dev/null || { echo "build-image: no registry and no debootstrap (apt-get install debootstrap)" >&2; exit 2; }
    root=$(mktemp -d /var/tmp/sluice-debian12.XXXXXX)
    trap 'rm -rf "$root"' EXIT
    echo "build-image: no registry reachable; making localhost/debian:12 with debootstrap from $mirror" >&2
    debootstrap --variant=minbase bookworm "$root" "$mirror" >&2
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -c . | "${engine[@]}" import --change 'CMD ["/bin/bash"]' - localhost/debian:12 >/dev/null
    base=localhost/debian:12
  fi
fi
echo "build-image: building $tag on $base" >&2
"${build[@]}" --build-arg BASE="$base" -f deploy/Dockerfile -t "$tag" .
size=$("${engine[@]}" image inspect --format '{{.Size}}' "$tag")
echo "build-image: $tag is $((size / 1024 / 1024)) MiB ($size bytes)"
