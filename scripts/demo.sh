#!/usr/bin/env bash
# The README's first command: a local systemd container as the target server, the real
# site.yml against it with a small real model, then one answer from the running service.
# The container stays up afterwards; remove it with: .venv/bin/molecule destroy
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
source .venv/bin/activate
export PYTHON=python
molecule converge -s default

url=http://127.0.0.1:8080
question="What is the capital of France? Answer in one sentence."
answer=$(python - "$url" "$question" <<'PY'
import json, sys, urllib.request
url, question = sys.argv[1], sys.argv[2]
body = json.dumps({"messages": [{"role": "user", "content": question}], "max_tokens": 48, "temperature": 0})
req = urllib.request.Request(url + "/v1/chat/completions", data=body.encode(), headers={"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=120) as r:
    print(json.load(r)["choices"][0]["message"]["content"].strip())
PY
)
echo
echo "llama-server is running in the container 'llm-default' at $url (OpenAI-compatible API)"
echo "Q: $question"
echo "A: $answer"
