#!/usr/bin/env bash
# The generated-text checks (molecule/shared/generation.py) against a llama.cpp build for another
# vector ISA than this host's best, to show they hold whatever the CPU's numeric path: builds
# llama-server and llama-completion with the given ggml ISA flags (default: AVX2 + FMA + F16C, no
# AVX-512, as on an AMD Zen 3), serves the test model on 127.0.0.1:18181 and runs both checks.
#   benchmarks/isa_generation_check.sh [CMAKE_ISA_FLAGS...]
# Prints the instruction counts of the binary and a last line:
#   isa=<label> zmm_instructions=<n> faithful=<yes|no> factual=<right>/<asked>
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
# shellcheck disable=SC1091
source .venv/bin/activate
cache=${LLM_CACHE_DIR:-/var/cache/llm-cpu-infra}
python tests/support/prepare_artifacts.py --cache "$cache" >/dev/null
flags=("$@")
[ ${#flags[@]} -gt 0 ] || flags=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
                                 -DGGML_BMI2=ON -DGGML_AVX512=OFF)
label=$(printf '%s' "${flags[*]}" | sha1sum | cut -c1-8)
build=$cache/isa-check-build-$label
src=$(ls -d "$cache"/src/llama.cpp-*)
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release "${flags[@]}" -DLLAMA_OPENSSL=OFF -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_USE_PREBUILT_UI=OFF >/dev/null
CCACHE_DIR=$cache/ccache cmake --build "$build" -j "$(nproc)" --target llama-server llama-completion >/dev/null
zmm=$(objdump -d --no-show-raw-insn "$build/bin/llama-server" | grep -c '%zmm' || true)
ymm=$(objdump -d --no-show-raw-insn "$build/bin/llama-server" | grep -c '%ymm' || true)
echo "llama-server: $zmm AVX-512 (zmm) and $ymm AVX/AVX2 (ymm) instructions"
model=$(ls "$cache"/www/local-test/SmolLM2-135M-Instruct-GGUF/resolve/main/*-00001-of-00003.gguf)
"$build/bin/llama-server" --model "$model" --host 127.0.0.1 --port 18181 --threads "$(nproc)" --ctx-size 4096 \
  --parallel 1 >"$build/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 120); do
  curl -sf http://127.0.0.1:18181/health >/dev/null 2>&1 && break
  sleep 1
done
PYTHONPATH=$PWD/molecule/shared python - "$build/bin/llama-server" "$model" "$(nproc)" "${flags[*]}" "$zmm" <<'PY'
import subprocess, sys
import generation
binary, model, threads, label, zmm = sys.argv[1:]
run = lambda command: subprocess.run(["bash", "-c", command], check=True, capture_output=True, text=True).stdout
base = "http://127.0.0.1:18181"
served, direct, details = generation.faithful(run, base=base, service={"binary": binary, "model": model,
                                                                        "threads": threads})
right, answers = generation.sensible(run, base=base)
for question, answer in answers:
    print(f"  {question} -> {answer.strip()[:70]!r}")
print(f"  served:  {served!r}\n  direct:  {direct!r}")
print(f"isa={label.replace(' ', ',')} zmm_instructions={zmm} faithful={'yes' if served == direct else 'no'} "
      f"factual={right}/{len(answers)}")
sys.exit(0 if served == direct and right >= generation.majority(len(answers)) else 1)
PY
