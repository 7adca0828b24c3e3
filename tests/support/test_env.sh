#!/usr/bin/env bash
# Everything a molecule scenario needs on this host, cached: the systemd test image, the real
# llama.cpp source and GGUF models in upstream URL layout, and the local hub serving them.
# Run by molecule's dependency step; seconds when everything is cached.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${LLM_CACHE_DIR:-/var/cache/llm-cpu-infra}
port=${LLM_TEST_HUB_PORT:-18080}
python=${PYTHON:-python3}

bash "$here/build_image.sh" "${LLM_TEST_IMAGE:-localhost/llm-cpu-debian:bookworm-2}"
"$python" "$here/prepare_artifacts.py" --cache "$cache"
mkdir -p "$cache/ccache"
"$python" "$here/hf_server.py" --daemon --root "$cache/www" --port "$port" \
  --pidfile "$cache/hub.pid" --request-log "$cache/hub-requests.jsonl"
# The same files at 16 MB/s per connection: the default scenario downloads its model from here,
# so the download lasts seconds and the play's progress lines can be seen (and tested).
"$python" "$here/hf_server.py" --daemon --root "$cache/www" --port "${LLM_TEST_SLOW_HUB_PORT:-18081}" \
  --pidfile "$cache/hub-slow.pid" --per-connection-rate 16000000
