#!/usr/bin/env bash
# Reproduces the measured-vs-expected comparison on the test container and prints the ratios.
# Converges the demo container (scripts/demo.sh's target) if needed, runs playbooks/benchmark.yml
# against it, and prints the report. The last line is machine-readable:
#   service_vs_llama_bench=<ratio> bandwidth_fraction=<ratio> predicted_vs_measured=<ratio>
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
# shellcheck disable=SC1091
source .venv/bin/activate
export PYTHON=python CONTAINERS_CONF=$PWD/molecule/containers.conf
log=$(mktemp)
trap 'rm -f "$log"' EXIT
step() { "$@" >"$log" 2>&1 || { tail -n 60 "$log"; echo "failed: $*" >&2; exit 1; }; }
step molecule converge -s default
step ansible-playbook -i inventory/demo playbooks/benchmark.yml
cat reports/summary.md
python - <<'PY'
import json
r = json.load(open("reports/llm-default.json"))["ratios"]
print(" ".join(f"{k}={r[k]}" for k in ("service_vs_llama_bench", "bandwidth_fraction", "predicted_vs_measured")))
PY
