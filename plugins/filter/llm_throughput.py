"""Filter llm_throughput: thin Ansible glue over module_utils/throughput_model.py."""

import os
import sys

from ansible.errors import AnsibleFilterError

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "module_utils"))
import throughput_model as _model

DOCUMENTATION = r"""
name: llm_throughput
short_description: Expected llama.cpp token generation speed on a CPU server
description:
  - Predicts batch-1 token generation speed of mainline llama.cpp from memory channels, memory
    speed, sockets, cores and NUMA placement, and the model's profile (GGUF header) or size.
  - "Model: t_token = max(bytes per token / effective bandwidth, compute time) + ggml barrier time
    (graph nodes x threads x a fitted per-thread cost). Routed mixture-of-experts weights are read at a
    fitted fraction of the bandwidth. Effective bandwidth accounts for sustained DIMM efficiency, AMD
    chiplet (CCD) link limits, per-thread limits and NUMA placement. Constants and their sources are
    documented in plugins/module_utils/throughput_model.py; benchmarks/throughput_error.py prints the
    in-sample and leave-one-out error on published measurements."
options:
  _input:
    description:
      - Hardware facts, as in C(ansible_facts.llm_hardware). Required keys C(sockets), C(cores),
        C(numa_nodes), C(memory_channels), C(memory_speed_mts); optional C(cpu_model), C(cpu_flags),
        C(memory_type), C(memory_total_bytes), C(memory_channels_max), C(memory_speed_rated_mts).
    type: dict
    required: true
  model:
    description:
      - The GGUF header profile, C(size_bytes) (all shards, required), C(active_bytes) (weights read per token,
        all tensors but token_embd, routed experts at used/total), C(active_params), C(n_layer), C(n_embd),
        C(n_head), C(n_head_kv), C(expert_count), C(expert_used_count), C(kv_bytes_per_token), C(quant_mix),
        C(dense).
      - Old-style dicts still work, C(size_bytes) or C(size_gb), C(quant) (for example Q6_K), optional C(active_bytes),
        C(params), C(layers); what the profile would give is then estimated and a warning says so.
    type: dict
    required: true
  threads:
    description: Threads llama.cpp runs with. Defaults to the physical cores.
    type: int
  numa:
    description: Memory placement.
    type: str
    choices: [interleave, distribute, isolate, none]
    default: interleave
  context:
    description: Tokens already in the context (their KV cache is read for every new token).
    type: int
    default: 0
  bandwidth_gbs:
    description:
      - A measured sustained read bandwidth (GB/s) under the service's NUMA policy, used instead of the one
        estimated from channels and speed (which then need not be known). The benchmark playbook passes
        likwid-bench's result here.
    type: float
"""

EXAMPLES = r"""
# The seed thread's build: 2x EPYC 9124, 24 channels DDR5-4800, a 400B model at Q6_K.
expected: >-
  {{ {'sockets': 2, 'cores': 32, 'numa_nodes': 2, 'memory_channels': 24, 'memory_speed_mts': 4800,
      'cpu_model': 'AMD EPYC 9124 16-Core Processor'}
     | llm_throughput({'size_bytes': 300e9, 'quant': 'Q6_K'}) }}
"""

RETURN = r"""
_value:
  description: The prediction.
  type: dict
  contains:
    peak_bandwidth_gbs: {description: channels x MT/s x 8 bytes, type: float}
    effective_bandwidth_gbs: {description: bandwidth llama.cpp is expected to sustain, type: float}
    bytes_per_token: {description: bytes of weights (and KV cache) read per token, type: int}
    tokens_per_second: {description: expected generation speed, type: float}
    tokens_per_second_low:
      description: estimate x the 10th percentile of measured/predicted over held-out calibration points
      type: float
    tokens_per_second_high:
      description: estimate x the 90th percentile of measured/predicted over held-out calibration points
      type: float
    seconds_per_token_parts: {description: memory, compute and sync seconds per token, type: dict}
    tokens_per_second_ceiling: {description: peak bandwidth / bytes per token, type: float}
    seconds_per_token: {description: 1 / tokens_per_second, type: float}
    bound: {description: memory or compute, type: str}
    fits_in_memory: {description: model + KV cache fit RAM; null when RAM size is unknown, type: bool}
    warnings:
      description: things a person can act on, fallbacks taken for a missing profile, and inputs outside
        what the calibration points cover ("Outside the calibration ...")
      type: list
      elements: str
"""


def llm_throughput(hardware, model, threads=None, numa="interleave", context=0, bandwidth_gbs=None):
    try:
        return _model.estimate(hardware, model, threads=threads, numa=numa, context=context,
                               bandwidth_gbs=bandwidth_gbs)
    except _model.InputError as exc:
        raise AnsibleFilterError(f"llm_throughput: {exc}") from exc


def llm_kv_cache_bytes(model, tokens):
    """Bytes of f16 KV cache llama.cpp allocates for `tokens` tokens of context (estimate)."""
    try:
        return _model.kv_cache_bytes(model, tokens)
    except _model.InputError as exc:
        raise AnsibleFilterError(f"llm_kv_cache_bytes: {exc}") from exc


def llm_gguf_quant(filename):
    """The quant tag in a GGUF file name (e.g. Q6_K), or None."""
    return _model.quant_of(filename)


class FilterModule:
    def filters(self):
        return {"llm_throughput": llm_throughput, "llm_kv_cache_bytes": llm_kv_cache_bytes,
                "llm_gguf_quant": llm_gguf_quant}
