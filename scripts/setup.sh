#!/usr/bin/env bash
# Installs everything the demo and the test suite need on a bare Debian 12/13 host, as root.
# Idempotent: a second run only checks. Usage: scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# Host packages:
# - podman + runc: the test "servers" are systemd containers; crun cannot run on the hybrid
#   cgroup layout of these hosts, so runc is the runtime (see molecule/containers.conf).
# - debootstrap: builds the container image locally (no registry is reachable).
# - cmake, g++, ccache, libssl-dev, pkg-config: build llama-quantize/llama-gguf-split on the host
#   to make the test model, configured as the llama_cpp role configures the target's build (which
#   installs the same packages: roles/llama_cpp/vars/Debian.yml), so the two share the compiler cache.
# - python3-venv: the project's virtualenv.
# - haproxy: the llm_gateway role's unit tests check rendered configurations with `haproxy -c` and drive a
#   real HAProxy's runtime API (on a temporary socket and loopback ports; the package's own service is not used).
packages=(podman runc debootstrap fuse-overlayfs uidmap slirp4netns
          cmake g++ make ccache libssl-dev pkg-config git curl ca-certificates python3-venv python3-pip haproxy)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The project's virtualenv, from the distribution's python3 (3.11 on Debian 12, 3.13 on 13).
if [ ! -x .venv/bin/python ]; then
  /usr/bin/python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements-dev.txt
echo "setup done: activate with 'source .venv/bin/activate'"
