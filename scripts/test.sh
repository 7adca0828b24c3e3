#!/usr/bin/env bash
# The README's test command: installs what the tests need, then lint, unit tests, molecule.
# Usage: scripts/test.sh            (all)
#        scripts/test.sh lint|unit|molecule [SCENARIO...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
source .venv/bin/activate
export PYTHON=python

stage=${1:-all}
[ $# -gt 0 ] && shift
scenarios=("$@")
# offload (Vulkan on lavapipe, Debian 13) is run by name: README, Testing.
[ ${#scenarios[@]} -gt 0 ] || scenarios=(default upgrade fleet)

run_lint() {
  echo "== lint"
  yamllint --strict .
  ruff check .
  ansible-lint --offline -q
}
run_unit() {
  echo "== unit and integration (pytest)"
  # The slowest tests listed, so a CI run that grows shows where.
  python -m pytest -q --durations=10 tests/unit tests/integration
}
# Each stage's wall time, printed at the end: a CI run that grows shows where.
timings=()
timed() {
  local began=$SECONDS
  "$@"
  timings+=("$(printf '%5d s  %s' $((SECONDS - began)) "$*")")
}
report_timings() {
  [ ${#timings[@]} -gt 0 ] || return 0
  echo "== wall time per stage"
  printf '%s\n' "${timings[@]}"
}
run_molecule() {
  for s in "${scenarios[@]}"; do
    echo "== molecule test -s $s"
    timed molecule test -s "$s"
  done
}
stop_hub() {
  for pidfile in hub.pid hub-slow.pid; do
    python tests/support/hf_server.py --stop --pidfile "${LLM_CACHE_DIR:-/var/cache/llm-cpu-infra}/$pidfile" >/dev/null || true
  done
}

finish() {
  stop_hub
  report_timings
}

case "$stage" in
  lint) run_lint ;;
  unit) run_unit ;;
  molecule) trap finish EXIT; run_molecule ;;
  # The test artifacts first, so the unit tests also read the hub's real model (not skipped).
  all) trap finish EXIT; timed run_lint; timed bash tests/support/test_env.sh; timed run_unit; run_molecule ;;
  *) echo "unknown stage $stage: use lint, unit, molecule or all" >&2; exit 2 ;;
esac
