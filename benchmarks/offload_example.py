#!/usr/bin/env python3
"""The README's GPU offload example: DeepSeek-V3 Q4_K_M on one 24 GB GPU, computed by the project's code.

Writes the header-only GGUF of DeepSeek-V3 at Q4_K_M (tests/support/make_gguf.py: the published tensor
table, no data, a few MB of disk), reads it with gguf_header, plans the offload with gpu_offload.plan for
an RTX 4090 and predicts the speed on two hosts next to their CPU-only estimate (throughput_model):

  seed    2x AMD EPYC 9124, 24 channels DDR5-4800 (the seed thread's box), numa interleave, 32 threads
  genoa   1x AMD EPYC 9654, 12 channels DDR5-4800, 96 threads

Prints the sizing-report lines for each, then the same plan without op offload (--no-op-offload), which
frees the compute buffer's copy of the largest expert tensor left in RAM.

Needs the test dependencies (the gguf package). Usage: benchmarks/offload_example.py [--vram-mib 24000]
"""

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# A standalone script: the embedded collection's root and the test-artifact generators on the import path,
# as pytest.ini puts them for the tests.
sys.path[:0] = [str(ROOT / "collections"), str(ROOT / "tests" / "support")]
import make_gguf  # noqa: E402
from ansible_collections.cpu_llm.infra.plugins.module_utils import (  # noqa: E402
    gguf_header,
    gpu_offload,
    sizing_report,
    throughput_model,
)

# An RTX 4090: 24 GiB (nvidia-smi shows 24564 MiB in total; an idle headless card has about 24000 MiB free)
# at 1008 GB/s (NVIDIA's data sheet: 384-bit GDDR6X at 21 Gbps).
RTX_4090_GBS = 1008.0
CONTEXT = 4096  # the project's default llm_ctx_size x llm_parallel
HOSTS = {
    "seed": ({"cpu_model": "AMD EPYC 9124 16-Core Processor", "sockets": 2, "cores": 32, "numa_nodes": 2,
              "memory_type": "DDR5", "memory_channels": 24, "memory_speed_mts": 4800}, 32),
    "genoa": ({"cpu_model": "AMD EPYC 9654 96-Core Processor", "sockets": 1, "cores": 96, "numa_nodes": 1,
               "memory_type": "DDR5", "memory_channels": 12, "memory_speed_mts": 4800}, 96),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vram-mib", type=int, default=24000, help="free VRAM of the GPU (MiB)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        [path] = make_gguf.write_header_only(Path(folder) / "DeepSeek-V3-Q4_K_M.gguf", "deepseek-v3", "Q4_K_M")
        header = gguf_header.read_header(path)
    profile = gguf_header.model_profile([header])
    layers = gguf_header.layer_bytes([header])
    vram = args.vram_mib << 20
    print(f"DeepSeek-V3 Q4_K_M: {profile['size_bytes'] / 1e9:.1f} GB, {profile['active_bytes'] / 1e9:.1f} GB "
          f"read per token; GPU {args.vram_mib} MiB free at {RTX_4090_GBS:.0f} GB/s; context {CONTEXT}")
    offload = gpu_offload.plan(layers, vram_bytes=vram, context_tokens=CONTEXT)
    for name, (hardware, threads) in HOSTS.items():
        estimate = throughput_model.estimate(hardware, profile, threads=threads)
        speed = gpu_offload.predict(offload, cpu_estimate=estimate, gpu_bandwidth_gbs=RTX_4090_GBS)
        print(f"\n{name}: {hardware['cpu_model']} x{hardware['sockets']}, {hardware['memory_channels']} channels, "
              f"CPU-only effective {estimate['effective_bandwidth_gbs']} GB/s")
        print("\n".join(sizing_report.offload_lines(offload, speed)))
        print(f"  read per token: {speed['gpu_read_bytes_per_token'] / 1e9:.2f} GB on GPU, "
              f"{speed['ram_read_bytes_per_token'] / 1e9:.2f} GB in RAM, {speed['hops']} hops")
    lean = gpu_offload.plan(layers, vram_bytes=vram, context_tokens=CONTEXT, op_offload=False)
    print("\nwithout op offload (--no-op-offload):")
    print("\n".join(sizing_report.offload_lines(lean)))


if __name__ == "__main__":
    sys.exit(main())
