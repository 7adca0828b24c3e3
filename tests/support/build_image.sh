#!/usr/bin/env bash
# Builds the molecule test image locally: a minimal Debian with systemd as PID 1.
# No registry is reachable from the CI hosts, so the image is debootstrapped and imported.
# Idempotent: does nothing when the image exists. Usage: build_image.sh [IMAGE] [SUITE]
set -euo pipefail
image=${1:-localhost/llm-cpu-debian:bookworm-2}
suite=${2:-bookworm}
mirror=${LLM_DEBIAN_MIRROR:-http://deb.debian.org/debian}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$(cd "$(dirname "$0")/../.." && pwd)/molecule/containers.conf}

if podman image exists "$image"; then
  echo "image $image already present"
  exit 0
fi
rootfs=$(mktemp -d /var/tmp/llm-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
# python3 for Ansible, sudo for become as on real servers, systemd + dbus so the role's units really run, ca-certificates so
# the role can fetch from https endpoints in real use.
debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,python3,ca-certificates,sudo \
  "$suite" "$rootfs" "$mirror" >/dev/null
# Units that cannot work in a container and only add noise to the journal.
for unit in systemd-remount-fs.service systemd-firstboot.service getty.target; do
  ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | podman import -q --change 'CMD ["/sbin/init"]' - "$image" >/dev/null
echo "image $image built"
