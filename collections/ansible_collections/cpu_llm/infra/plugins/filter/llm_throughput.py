"""Filters llm_throughput, llm_kv_cache_bytes, llm_gguf_quant: thin Ansible glue over module_utils/throughput_model.py.

One file, three filters: each one's documentation is the adjacent <filter name>.yml (ansible-doc reads it).
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.cpu_llm.infra.plugins.module_utils import throughput_model as _model


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
