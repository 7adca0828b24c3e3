#!/usr/bin/env bash
# Everything a molecule scenario needs on this host, cached: the systemd test image, the real
# llama.cpp source and GGUF models in upstream URL layout, and the local hub serving them.
# Run by molecule's dependency step; seconds when everything is cached.
# Usage: test_env.sh [SUITE]: the Debian release of the image, bookworm (the default) or trixie (the
# offload scenario's: the pinned llama.cpp's Vulkan backend needs Debian 13's Vulkan headers).
set -euo pipefail
suite=${1:-bookworm}
here=$(cd "$(dirname "$0")" && pwd)
cache=${LLM_CACHE_DIR:-/var/cache/llm-cpu-infra}
port=${LLM_TEST_HUB_PORT:-18080}
python=${PYTHON:-python3}

mkdir -p "$cache/ccache"
# The image (debootstrap: network and dpkg) is built while the artifacts are prepared (mostly the
# host build: CPU), which takes minutes off a cold start; its output is shown when it ends.
case "$suite" in
  bookworm) image=${LLM_TEST_IMAGE:-localhost/llm-cpu-debian:bookworm-2} ;;
  trixie) image=${LLM_TEST_IMAGE_TRIXIE:-localhost/llm-cpu-debian:trixie-1} ;;
  *) echo "unknown suite $suite: bookworm or trixie" >&2; exit 2 ;;
esac
bash "$here/build_image.sh" "$image" "$suite" >"$cache/build_image-$suite.log" 2>&1 &
image_pid=$!
trap 'kill "$image_pid" 2>/dev/null || true' EXIT
"$python" "$here/prepare_artifacts.py" --cache "$cache"
image_rc=0
wait "$image_pid" || image_rc=$?
trap - EXIT
cat "$cache/build_image-$suite.log"
[ "$image_rc" -eq 0 ] || { echo "building the test image failed (exit $image_rc)" >&2; exit "$image_rc"; }
"$python" "$here/hf_server.py" --daemon --root "$cache/www" --port "$port" \
  --pidfile "$cache/hub.pid" --request-log "$cache/hub-requests.jsonl"
# The same files at 16 MB/s per connection: the default scenario downloads its model from here,
# so the download lasts seconds and the play's progress lines can be seen (and tested).
"$python" "$here/hf_server.py" --daemon --root "$cache/www" --port "${LLM_TEST_SLOW_HUB_PORT:-18081}" \
  --pidfile "$cache/hub-slow.pid" --per-connection-rate 16000000
