"""Filter gguf_model_plan: thin Ansible glue over module_utils/gguf_plan.py."""

from ansible.errors import AnsibleFilterError
from ansible_collections.cpu_llm.infra.plugins.module_utils import gguf_plan

DOCUMENTATION = r"""
name: gguf_model_plan
short_description: Resolve a GGUF model to its verified file list
description:
  - Takes the inventory's file list (or a quant tag) and the Hugging Face tree listing, and returns
    every file with its sha256 and size, first shard first. Refuses incomplete shard sets, malformed
    checksums, and files whose checksum cannot be established.
options:
  _input:
    description: gguf_model_files, a list of names or of dicts with name and optional sha256.
    type: list
    required: true
  listing:
    description: JSON answer of C({endpoint}/api/models/{repo}/tree/{revision}?recursive=true), or null.
    type: list
  quant:
    description: Quant tag used when the file list is empty, e.g. Q6_K.
    type: str
  allow_unverified:
    description: Accept files without a known sha256.
    type: bool
    default: false
"""

EXAMPLES = r"""
plan: "{{ gguf_model_files | cpu_llm.infra.gguf_model_plan(listing.json, 'Q6_K') }}"
"""

RETURN = r"""
_value:
  description: List of dicts with name (basename), path (in the repository), sha256 and size.
  type: list
"""


def gguf_model_plan(files, listing=None, quant="Q6_K", allow_unverified=False):
    try:
        return gguf_plan.plan(files, listing, quant, allow_unverified)
    except gguf_plan.PlanError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def gguf_model_with_sizes(files, head_results):
    """Fill the sizes the listing did not give from HEAD answers (uri results)."""
    try:
        return gguf_plan.with_sizes(files, head_results)
    except gguf_plan.PlanError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule:
    def filters(self):
        return {"gguf_model_plan": gguf_model_plan, "gguf_model_with_sizes": gguf_model_with_sizes}
