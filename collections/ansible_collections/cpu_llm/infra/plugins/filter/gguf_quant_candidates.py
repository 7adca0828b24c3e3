"""Filter gguf_quant_candidates: thin glue over module_utils/gguf_plan.py."""

DOCUMENTATION = r"""
name: gguf_quant_candidates
short_description: The quantizations a Hugging Face GGUF repository offers, best first
description:
  - From the repository listing (C(/api/models/<repo>/tree/<revision>?recursive=true)), every quant
    tag with a complete file set and known sizes, sorted by bits per weight, highest first.
    Unquantized F32/F16/BF16 files are left out (twice the bytes per token of Q8_0 for no
    measurable quality).
positional: _input
options:
  _input:
    description: The listing (a list of entries with path, type, size, lfs).
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
candidates: "{{ listing.json | cpu_llm.infra.gguf_quant_candidates }}"
"""

RETURN = r"""
_value:
  description: "[{quant, files, size_bytes}], highest quality first."
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.cpu_llm.infra.plugins.module_utils import gguf_plan


def gguf_quant_candidates(listing):
    if not isinstance(listing, list):
        raise AnsibleFilterError(f"gguf_quant_candidates: expected the repository listing (a list), got {listing!r}")
    return gguf_plan.quant_candidates(listing)


class FilterModule:
    def filters(self):
        return {"gguf_quant_candidates": gguf_quant_candidates}
