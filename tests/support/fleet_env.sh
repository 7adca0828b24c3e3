#!/usr/bin/env bash
# The fleet scenario's dependency step: the usual test artifacts and image (test_env.sh), and the
# scenario's own podman network: --internal, so nothing in it has a route out (the test hub runs in
# the gateway's container); the molecule driver uses it as it is and removes it at destroy.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$(cd "$here/../.." && pwd)/molecule/containers.conf}
network=${LLM_FLEET_NETWORK:-llm-fleet}
bash "$here/test_env.sh"
bash "$here/build_fleet_image.sh"
if ! podman network exists "$network"; then
  podman network create --internal --subnet "${LLM_FLEET_SUBNET:-10.89.64.0/24}" "$network" >/dev/null
  echo "network $network created (internal)"
fi
