"""Filter llm_throughput: thin Ansible glue over module_utils/throughput_model.py."""

from ansible.errors import AnsibleFilterError
from ansible_collections.cpu_llm.infra.plugins.module_utils import throughput_model as _model

DOCUMENTATION = r"""
name: llm_throughput
short_description: Expected llama.cpp token generation speed on a CPU server
description:
  - Predicts batch-1 token generation speed of mainline llama.cpp from memory channels, memory
    speed, sockets, cores and NUMA placement, and the model's size.
  - "Model: t_token = max(bytes per token / effective bandwidth, compute time) + per-layer thread
    synchronisation. Effective bandwidth accounts for sustained DIMM efficiency, AMD chiplet (CCD)
    link limits, per-thread limits and NUMA placement. Constants and their sources are documented in
    plugins/module_utils/throughput_model.py; benchmarks/throughput_error.py prints the error on
    published measurements."
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
      - C(size_bytes) (all shards, required); C(active_bytes) (bytes of weights read per token,
        mixture-of-experts); C(quant) (e.g. Q6_K); optional C(layers), C(params).
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
     | cpu_llm.infra.llm_throughput({'size_bytes': 300e9, 'quant': 'Q6_K'}) }}
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
    tokens_per_second_ceiling: {description: peak bandwidth / bytes per token, type: float}
    seconds_per_token: {description: 1 / tokens_per_second, type: float}
    bound: {description: memory or compute, type: str}
    fits_in_memory: {description: model + KV cache fit RAM; null when RAM size is unknown, type: bool}
    warnings: {description: things a person can act on, type: list, elements: str}
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
