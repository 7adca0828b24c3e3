#!/usr/bin/env bash
# Times a re-run of site.yml on the converged demo container, where nothing needs to change, over
# the two connections a user has: podman exec (how the tests reach the container) and SSH with
# pipelining (how real servers are reached: sshd is installed in the container for this, listening
# on 127.0.0.1:${LLM_BENCH_SSH_PORT:-2222} only). Lists the slowest tasks (ansible's profile_tasks).
# Converges the demo container first if needed. The last line is machine-readable:
#   noop_rerun_seconds=<s over SSH> tasks=<n> changed=<n> podman_seconds=<s>
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
# shellcheck disable=SC1091
source .venv/bin/activate
export PYTHON=python CONTAINERS_CONF=$PWD/molecule/containers.conf
export ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks PROFILE_TASKS_TASK_OUTPUT_LIMIT=10
port=${LLM_BENCH_SSH_PORT:-2222}
cache=${LLM_CACHE_DIR:-/var/cache/llm-cpu-infra}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
molecule converge -s default >"$log" 2>&1 || { tail -n 60 "$log"; echo "converge failed" >&2; exit 1; }

# timed LABEL ARGS...: one site.yml run; prints the slowest tasks and "<seconds> <tasks> <changed>" last.
timed() {
  local label=$1 start end
  shift
  start=$(date +%s.%N)
  ansible-playbook -i inventory/demo site.yml "$@" >"$log" 2>&1 || { tail -n 60 "$log"; exit 1; }
  end=$(date +%s.%N)
  echo "== $label: slowest tasks" >&2
  sed -n '/^=\{10,\}/,$p' "$log" | sed -n '2,11p' >&2
  python - "$start" "$end" "$(grep -E '^llm-default +:' "$log")" <<'PY'
import re, sys
start, end, recap = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
counts = dict(re.findall(r"(\w+)=(\d+)", recap))
tasks = sum(int(counts.get(k, 0)) for k in ("ok", "changed", "skipped", "failed"))
print(f"{end - start:.1f} {tasks} {counts.get('changed', '?')}")
PY
}

res=$(timed "podman exec")
read -r podman_s tasks changed <<<"$res"
echo "podman: ${podman_s} s, ${tasks} tasks, changed=${changed}" >&2

# sshd in the container (apt works there), key-only root login, loopback only (host network).
command -v ssh >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-client >/dev/null
key=$cache/bench-ssh/id_ed25519
mkdir -p "$(dirname "$key")"
[ -f "$key" ] || ssh-keygen -q -t ed25519 -N '' -f "$key"
podman exec llm-default sh -c 'command -v sshd >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null; }'
# The package starts sshd on port 22 of the host's network (the container shares it): stop that one.
podman exec llm-default sh -c 'systemctl disable --now ssh.service ssh.socket >/dev/null 2>&1 || true'
podman exec -i llm-default sh -c 'mkdir -p /root/.ssh /run/sshd && chmod 700 /root/.ssh && cat > /root/.ssh/authorized_keys' <"$key.pub"
podman exec llm-default sh -c "pkill -f '^/usr/sbin/sshd -p $port' || true; /usr/sbin/sshd -p $port -o ListenAddress=127.0.0.1 -o PermitRootLogin=prohibit-password -o PasswordAuthentication=no"
ssh_args=(-e ansible_connection=ssh -e ansible_host=127.0.0.1 -e "ansible_port=$port" -e ansible_user=root
          -e "ansible_ssh_private_key_file=$key")
export ANSIBLE_PIPELINING=1 ANSIBLE_HOST_KEY_CHECKING=False
res=$(timed "ssh with pipelining" "${ssh_args[@]}")
read -r ssh_s tasks changed <<<"$res"
podman exec llm-default sh -c "pkill -f '^/usr/sbin/sshd -p $port' || true"
echo "noop_rerun_seconds=${ssh_s} tasks=${tasks} changed=${changed} podman_seconds=${podman_s}"
