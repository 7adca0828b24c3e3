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

# The fleet scenario runs on its own podman network, from its own hub and containers, and is a third idle
# on its own (health gates, serial switches, drains, the load test): in `all` it runs alongside pytest
# (CPU-bound, no timed assertion) instead of after it. default and upgrade run alone afterwards: they share
# the host's loopback ports, and default has timed checks. Its output is printed when it ends.
background_pid=""
background_log=""
start_fleet_alongside() {
  background_log=$(mktemp)
  echo "== molecule test -s fleet (alongside pytest; its output follows pytest's)"
  (
    began=$SECONDS
    if molecule test -s fleet >"$background_log" 2>&1; then rc=0; else rc=$?; fi
    echo "$rc $((SECONDS - began))" >"$background_log.rc"
  ) &
  background_pid=$!
}
wait_fleet() {
  [ -n "$background_pid" ] || return 0
  wait "$background_pid" || true
  background_pid=""
  echo "== molecule test -s fleet (ran alongside pytest)"
  cat "$background_log"
  local rc seconds
  read -r rc seconds <"$background_log.rc" || { rc=1; seconds=0; }
  rm -f "$background_log" "$background_log.rc"
  timings+=("$(printf '%5d s  %s' "$seconds" "molecule test -s fleet (alongside pytest)")")
  return "$rc"
}

finish() {
  local rc=$?
  # A failed stage still waits for the fleet run (it must not outlive this script) and shows its log.
  wait_fleet || rc=$?
  stop_hub
  report_timings
  exit "$rc"
}

case "$stage" in
  lint) run_lint ;;
  unit) run_unit ;;
  molecule) trap finish EXIT; run_molecule ;;
  # The test artifacts first, so the unit tests also read the hub's real model (not skipped).
  all)
    trap finish EXIT
    timed run_lint
    timed bash tests/support/test_env.sh
    rest=()
    for s in "${scenarios[@]}"; do
      if [ "$s" = fleet ]; then start_fleet_alongside; else rest+=("$s"); fi
    done
    scenarios=("${rest[@]}")
    timed run_unit
    wait_fleet
    run_molecule
    ;;
  *) echo "unknown stage $stage: use lint, unit, molecule or all" >&2; exit 2 ;;
esac
