#!/usr/bin/env bash
# The README's first command: a local systemd container as the target server, the real
# site.yml against it with a small real model, then one answer from the running service.
# The container stays up afterwards; remove it with: .venv/bin/molecule destroy
set -euo pipefail
cd "$(dirname "$0")/.."
phase() { printf '%dm%02ds' $(( $1 / 60 )) $(( $1 % 60 )); }
start=$SECONDS
bash scripts/setup.sh
# shellcheck disable=SC1091
source .venv/bin/activate
export PYTHON=python
setup_done=$SECONDS
# The test image, the test artifacts (with a host build of the two tools that make the test
# model, which fills the compiler cache the container's build then reuses) and the local hub;
# molecule's dependency step runs it again and finds everything in place.
bash tests/support/test_env.sh
artifacts_done=$SECONDS
# Molecule remembers a container it created; if that container was removed by hand (podman rm),
# forget it, or the converge would try to reach a container that is gone.
CONTAINERS_CONF=$PWD/molecule/containers.conf podman container exists llm-default || molecule reset -s default >/dev/null
molecule converge -s default
converge_done=$SECONDS

# Molecule frames the play's output; show the sizing report and the download's progress lines
# plainly, from the play's log (ANSIBLE_LOG_PATH in molecule/default/molecule.yml).
log=$(ls -t "$HOME"/.ansible/tmp/molecule.*.default/ansible.log 2>/dev/null | head -n 1 || true)
if [ -n "$log" ]; then
  python - "$log" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
reports = re.findall(r"^ {8}(Sizing report for .*?)\n\n", text, re.MULTILINE | re.DOTALL)
progress = re.findall(r"\| (llm-default: [\d.]+ (?:/ [\d.]+ )?[MG]B.*)$", text, re.MULTILINE)
if reports:
    print("\n" + "\n".join(line[8:] if line.startswith(" " * 8) else line for line in reports[-1].splitlines()))
if progress:
    last = max(i for i, line in enumerate(progress) if " in " in line and "average" in line) if any(
        "average" in line for line in progress) else len(progress) - 1
    first = last
    while first > 0 and "average" not in progress[first - 1]:
        first -= 1
    print("\nModel download:\n  " + "\n  ".join(progress[first:last + 1]))
PY
fi

url=http://127.0.0.1:8080
question="What is the capital of France? Answer in one sentence."
# The same CPU-independent checks as the tests (molecule/shared/generation.py), run inside the
# container: the service's greedy text equals llama-completion's for the same build, model and
# prompt; a majority of factual questions come back right. A tiny model's exact words depend on
# the CPU's vector path, so the demo shows them without asserting them.
CONTAINERS_CONF=$PWD/molecule/containers.conf PYTHONPATH=$PWD/molecule/shared python - "$url" "$question" <<'PY'
import json, subprocess, sys, urllib.request
import generation
url, question = sys.argv[1], sys.argv[2]

def run(command):
    return subprocess.run(["podman", "exec", "llm-default", "sh", "-c", command],
                          check=True, capture_output=True, text=True).stdout

right, answers = generation.sensible(run)
served, direct, details = generation.faithful(run)
body = json.dumps({"messages": [{"role": "user", "content": question}], "max_tokens": 48, "temperature": 0})
req = urllib.request.Request(url + "/v1/chat/completions", data=body.encode(), headers={"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=120) as r:
    reply = json.load(r)["choices"][0]["message"]["content"].strip()
print()
print(f"llama-server is running in the container 'llm-default' at {url} (OpenAI-compatible API)")
print(f"Q: {question}")
print(f"A: {reply}")
print(f"Factual questions answered right: {right} of {len(answers)}")
same = "yes" if served == direct else "NO"
print(f"Service output identical to llama-completion's on this host (same build, model, prompt): {same}")
if served != direct or right < generation.majority(len(answers)):
    sys.exit(f"demo check failed: served={served!r} direct={direct!r} answers={answers}")
PY
echo "Done in $(phase $(( SECONDS - start ))): set-up $(phase $(( setup_done - start ))), test image and artifacts" \
  "$(phase $(( artifacts_done - setup_done ))), converge $(phase $(( converge_done - artifacts_done ))), checks" \
  "$(phase $(( SECONDS - converge_done )))"
