"""Filter llm_sizing: thin glue over module_utils/sizing.py."""

DOCUMENTATION = r"""
name: llm_sizing
short_description: The sizing report, and whether a model fits a host's RAM and disk
description:
  - Estimates generation speed (when the hardware facts allow it), the RAM the service needs
    (weights + KV cache for the context + overhead) and the disk the download needs, and renders
    the sizing report. The one rule for "does it fit", used by the preflight role's report and
    its stop and by playbooks/estimate.yml.
  - The KV cache is exact when the model carries C(kv_bytes_per_token) from its GGUF header.
positional: _input, model
options:
  _input:
    description: Hardware facts (C(ansible_facts.llm_hardware)) or hand-written hardware.
    type: dict
    required: true
  model:
    description: C(size_bytes), and optionally C(quant), C(active_bytes), C(kv_bytes_per_token),
      C(expert_count), C(expert_used_count) (a GGUF profile carries them all).
    type: dict
    required: true
  context_tokens:
    description: Tokens of KV cache over all slots (context per slot x slots).
    type: int
    required: true
  threads:
    description: Threads the service runs with.
    type: int
    required: true
  numa:
    description: NUMA placement (interleave, distribute, isolate, none).
    type: str
    default: interleave
  overhead_bytes:
    description: RAM beyond weights and KV cache (compute buffers, the OS).
    type: int
    default: 0
  disk:
    description: C(free), C(missing) (bytes of the model not on disk yet), C(margin) bytes and C(path);
      omit to skip the disk check.
    type: dict
  name:
    description: The model's name in the report.
    type: str
    default: model
  host:
    description: The host's name in the report's title.
    type: str
  quant_choice:
    description: C(llm_choose_quant)'s result when the quant was chosen automatically; the report lists the candidates.
    type: dict
  tuning:
    description: The autotune role's document from this host (/etc/llama-server/tuning.json); its measured effective
      bandwidth gives a second, measured expectation next to the DIMM arithmetic.
    type: dict
  gpu_vram_bytes:
    description: GPU memory to plan partial offload for instead of the detected GPU's free VRAM (0 = detected;
      with no GPU detected, a budget still plans, e.g. for a card not bought yet).
    type: int
    default: 0
  gpu_bandwidth_gbs:
    description: The GPU's memory bandwidth in GB/s for the speed prediction (0 = the data sheet's for known cards).
    type: float
    default: 0
  parallel:
    description: The service's slots (llm_parallel). With more than one NUMA node or more than one slot, the report
      compares one interleaved llama-server with one per NUMA node as aggregate tokens/s for these slots.
    type: int
    default: 1
  rpc_workers:
    description: On an RPC head, its workers in --rpc order, C(llm_rpc_worker_hardware)'s result
      ([{endpoint, hardware, how}]). The report then shows the model split over the head and them, and the RAM fit
      is the split's (a model too big for the head alone that fits head and workers fits). Empty = this host alone.
    type: list
    elements: dict
  rpc_layers:
    description: On an RPC head, its C(llama_server_rpc_layers) (--n-gpu-layers); the fit is the placement these
      flags load, not the best one. -1 = llama.cpp's default (every layer on the workers).
    type: int
    default: -1
"""

EXAMPLES = r"""
sizing: >-
  {{ ansible_facts.llm_hardware | cpu_llm.infra.llm_sizing({'size_bytes': 300e9, 'quant': 'Q6_K'},
     context_tokens=4096, threads=32, overhead_bytes=4294967296) }}
"""

RETURN = r"""
_value:
  description: The sizing.
  type: dict
  contains:
    estimate: {description: llm_throughput's result, empty when the hardware is not known enough, type: dict}
    unknowns: {description: hardware facts the estimate needs but does not have, type: list, elements: str}
    memory: {description: "bytes: model, kv, overhead, total; kv_how says how the KV cache was sized", type: dict}
    ram_fits: {description: total <= the host's RAM; null when the RAM size is unknown, type: bool}
    disk: {description: "free and needed bytes, path; null without a disk check", type: dict}
    disk_fits: {description: needed <= free; null without a disk check, type: bool}
    fits: {description: neither RAM nor disk is known to be short, type: bool}
    warnings: {description: things a person can act on, type: list, elements: str}
    quants:
      description: "with quant_choice: [{quant, size_bytes, memory_needed_bytes, fits, tokens_per_second, chosen}]"
      type: list
      elements: dict
    offload:
      description: "with a GPU (detected or a budget) and the model's per-layer bytes: {gpu, plan, prediction}
        (module_utils/gpu_offload.py); null without"
      type: dict
    measured:
      description: "with tuning: {bandwidth_bytes_per_s, tokens_per_second (this model at it),
        tokens_per_second_measured, measured_at}; null without"
      type: dict
    layouts:
      description: "fleet_sizing.instances_view's result (one interleaved instance vs one per NUMA node for the
        slots); null with one node and one slot, without a speed estimate, or on an RPC head"
      type: dict
    rpc:
      description: "on an RPC head: {split (fleet_sizing.rpc_split's result or null), why_not, fits (null: no split,
        the fit is the head's alone), speed_unknowns, assumed, how}; null without workers"
      type: dict
    report: {description: the report text, type: str}
    failure: {description: why it does not fit, naming the fix; empty when it fits, type: str}
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.cpu_llm.infra.plugins.module_utils import sizing, throughput_model


def llm_sizing(hardware, model, context_tokens, threads, numa="interleave", overhead_bytes=0, disk=None,
               name="model", host=None, quant_choice=None, tuning=None, gpu_vram_bytes=0, gpu_bandwidth_gbs=0,
               parallel=1, rpc_workers=None, rpc_layers=-1):
    try:
        return sizing.size(sizing.SizingRequest(
            hardware, model, context_tokens=int(context_tokens), threads=int(threads), numa=numa,
            overhead_bytes=int(overhead_bytes), disk=disk, name=name, host=host, quant_choice=quant_choice or None,
            tuning=tuning or None, gpu_vram_bytes=int(gpu_vram_bytes or 0),
            gpu_bandwidth_gbs=float(gpu_bandwidth_gbs or 0), parallel=int(parallel),
            rpc_workers=list(rpc_workers or []), rpc_layers=int(rpc_layers)))
    except (sizing.SizingError, throughput_model.InputError, TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"llm_sizing: {exc}") from exc


class FilterModule:
    def filters(self):
        return {"llm_sizing": llm_sizing}
