#!/usr/bin/env bash
# The fleet scenario's image: the test image with every package the roles install already in it.
# The scenario's network is --internal (no route to a Debian mirror), so the roles' package tasks
# must find their packages installed. The list is read from the roles' own package variables (plus
# what the gateway, the RPC workers and Ansible's apt module need), and the image is rebuilt when it
# changes (its label). Debian's haproxy.service bind-mounts /dev/log into its chroot; systemd cannot
# create that mount point inside these containers ("Operation not supported"), so the image has it.
# Idempotent. Usage: build_fleet_image.sh [IMAGE] [BASE]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
image=${1:-${LLM_FLEET_IMAGE:-localhost/llm-cpu-fleet:bookworm}}
base=${2:-${LLM_TEST_IMAGE:-localhost/llm-cpu-debian:bookworm-2}}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$root/molecule/containers.conf}
python=${PYTHON:-python3}

packages=$("$python" - "$root" <<'PY'
import sys, pathlib, yaml
root = pathlib.Path(sys.argv[1])
read = lambda path, key: yaml.safe_load((root / path).read_text())[key]
names = read("roles/os_tuning/vars/Debian.yml", "__os_tuning_packages")
names += read("roles/llama_cpp/vars/Debian.yml", "__llama_cpp_build_packages")
names += ["ccache", "haproxy", "nftables", "python3-apt", "iproute2"]  # iproute2: Ansible's network facts
print(" ".join(sorted(set(names))))
PY
)
label="$base $packages haproxy-dev-log"
if podman image exists "$image" && [ "$(podman image inspect --format '{{ index .Labels "llm.packages" }}' "$image")" = "$label" ]; then
  echo "image $image already present"
  exit 0
fi
name=llm-fleet-image-build
podman rm -f "$name" >/dev/null 2>&1 || true
# shellcheck disable=SC2086
podman run --name "$name" --network host --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 "$base" sh -c "apt-get update -q >/dev/null \
  && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $packages >/dev/null \
  && apt-get clean && rm -rf /var/lib/apt/lists/* \
  && touch /var/lib/haproxy/dev/log"
podman commit -q --change 'CMD ["/sbin/init"]' --change "LABEL llm.packages=\"$label\"" "$name" "$image" >/dev/null
podman rm -f "$name" >/dev/null
echo "image $image built ($packages)"
