"""Filter llm_choose_quant: thin glue over module_utils/memory_fit.py."""

DOCUMENTATION = r"""
name: llm_choose_quant
short_description: The highest-quality quantization whose weights, KV cache and overhead fit in RAM
description:
  - Applies the sizing rule (weights + KV cache for the context + overhead <= RAM) to every
    candidate (C(gguf_quant_candidates)), best first, and picks the first that fits. The KV cache
    does not depend on the weights' quantization, so one GGUF header's C(kv_bytes_per_token)
    sizes every candidate.
positional: _input, memory_total_bytes, kv_profile, context_tokens, overhead_bytes
options:
  _input:
    description: The candidates, best first.
    type: list
    elements: dict
    required: true
  memory_total_bytes:
    description: The host's RAM.
    type: int
    required: true
  kv_profile:
    description: A GGUF profile of the model (any quant), for its KV cache per token (kv_bytes_per_token, and the
      sliding-window kv_swa_bytes_per_token and kv_swa_window where the architecture has them).
    type: dict
    required: true
  context_tokens:
    description: Context tokens over all slots.
    type: int
    required: true
  overhead_bytes:
    description: RAM beyond weights and KV cache.
    type: int
    required: true
"""

EXAMPLES = r"""
choice: >-
  {{ candidates | cpu_llm.infra.llm_choose_quant(412316860416, {'kv_bytes_per_token': 516096}, 4096, 4294967296) }}
"""

RETURN = r"""
_value:
  description: The choice.
  type: dict
  contains:
    chosen: {description: the quant tag, or null when none fits, type: str}
    candidates: {description: "the candidates with memory_needed_bytes and fits", type: list, elements: dict}
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.cpu_llm.infra.plugins.module_utils import memory_fit


def llm_choose_quant(candidates, memory_total_bytes, kv_profile, context_tokens, overhead_bytes):
    try:
        chosen, table = memory_fit.choose_quant(candidates, int(memory_total_bytes), dict(kv_profile or {}),
                                                int(context_tokens), int(overhead_bytes))
    except (TypeError, ValueError, KeyError) as exc:
        raise AnsibleFilterError(f"llm_choose_quant: {exc}") from exc
    return {"chosen": chosen, "candidates": table}


class FilterModule:
    def filters(self):
        return {"llm_choose_quant": llm_choose_quant}
