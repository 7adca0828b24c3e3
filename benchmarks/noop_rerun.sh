#!/usr/bin/env bash
# Times a re-run of site.yml on the converged test container, where nothing needs to change, and
# lists the slowest tasks (ansible's profile_tasks). Converges the demo container first if needed.
# Connection: podman exec (the test container has no SSH); over SSH with pipelining each task
# costs less. The last line is machine-readable:
#   noop_rerun_seconds=<s> tasks=<n> changed=<n>
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
# shellcheck disable=SC1091
source .venv/bin/activate
export PYTHON=python CONTAINERS_CONF=$PWD/molecule/containers.conf
log=$(mktemp)
trap 'rm -f "$log"' EXIT
molecule converge -s default >"$log" 2>&1 || { tail -n 60 "$log"; echo "converge failed" >&2; exit 1; }
start=$(date +%s.%N)
ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks PROFILE_TASKS_TASK_OUTPUT_LIMIT=12 \
  ansible-playbook -i inventory/demo site.yml >"$log" 2>&1 || { tail -n 60 "$log"; exit 1; }
end=$(date +%s.%N)
sed -n '/^=\{10,\}/,$p' "$log" | head -n 14
recap=$(grep -E '^llm-default +:' "$log")
echo "$recap"
python - "$start" "$end" "$recap" <<'PY'
import re, sys
start, end, recap = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
counts = dict(re.findall(r"(\w+)=(\d+)", recap))
tasks = sum(int(counts.get(k, 0)) for k in ("ok", "changed", "skipped", "failed"))
print(f"noop_rerun_seconds={end - start:.1f} tasks={tasks} changed={counts.get('changed', '?')}")
PY
