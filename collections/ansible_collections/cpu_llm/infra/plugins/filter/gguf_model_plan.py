"""Filters gguf_model_plan, gguf_model_with_sizes: thin Ansible glue over module_utils/gguf_plan.py.

Each filter's documentation is the adjacent <filter name>.yml (ansible-doc reads it).
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.cpu_llm.infra.plugins.module_utils import gguf_plan


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
