#!/usr/bin/env bash
# Autotune on the demo container, then the service's own generation speed against the sweep's best.
# Converges the demo container if needed, runs site.yml with llm_autotune_force (a fresh sweep
# within the budget; the service restarts with the chosen settings), then times generations
# through the service's /completion (greedy, the sweep's token count, no prompt cache) and
# compares their median with the chosen configuration's llama-bench median from the same run.
# The last line is machine-readable:
#   service_vs_best_sweep=<r> tuned_vs_default=<r> sweep_seconds=<s>
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
# shellcheck disable=SC1091
source .venv/bin/activate
export PYTHON=python CONTAINERS_CONF=$PWD/molecule/containers.conf
budget=${LLM_AUTOTUNE_BUDGET_MINUTES:-1.5}
runs=${LLM_SERVICE_RUNS:-15}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
step() { "$@" >"$log" 2>&1 || { tail -n 60 "$log"; echo "failed: $*" >&2; exit 1; }; }
step molecule converge -s default
step ansible-playbook -i inventory/demo site.yml -e llm_autotune=true -e "llm_autotune_budget_minutes=$budget" \
  -e llm_autotune_force=true
podman exec llm-default cat /etc/llama-server/tuning.json >"$log"
python - "$log" "$runs" <<'PY'
import json, statistics, sys, urllib.request
doc, runs = json.load(open(sys.argv[1])), int(sys.argv[2])
best, default = doc["chosen"], doc["default"]
n_gen = doc["parameters"]["n_gen"]
speeds = []
for _ in range(runs):
    body = json.dumps({"prompt": "The history of the printing press", "n_predict": n_gen, "temperature": 0,
                       "cache_prompt": False, "ignore_eos": True}).encode()
    req = urllib.request.Request("http://127.0.0.1:8080/completion", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as r:
        speeds.append(json.load(r)["timings"]["predicted_per_second"])
service = statistics.median(speeds)
spread = (max(speeds) - min(speeds)) / service
print(f"sweep: {len(doc['alternatives'])} configurations in {doc['seconds']:.0f} s (budget {doc['budget_seconds']:.0f} s), "
      f"stopped: {doc['stopped']}, host noise {doc['noise_pct']:.1f}%")
print(f"default {default['config']}: tg {default['tg']:.1f} tok/s")
print(f"chosen  {best['config']}: tg {best['tg']:.1f} tok/s")
print(f"service with the chosen settings: median {service:.1f} tok/s over {runs} runs of {n_gen} tokens "
      f"(spread {spread:.1%})")
print(f"service_vs_best_sweep={service / best['tg']:.3f} tuned_vs_default={best['tg'] / default['tg']:.3f} "
      f"sweep_seconds={doc['seconds']:.0f}")
PY
