"""Does it fit: the RAM a model needs (weights + KV cache + overhead), the disk it needs, the quant that fits.

Plain Python, no Ansible imports. The bottom of the sizing modules: sizing.py (the report and its fit
rule), fleet_sizing.py (per-NUMA-node instances, RPC splits) and the llm_choose_quant filter all count
memory here, so one model needs the same bytes in every answer.

- `memory_need()`: the weights + the KV cache for every slot's context + a fixed overhead (llama.cpp's
  compute buffers and the OS). The KV cache (`kv_cache()`) is exact when the model's GGUF header was read
  (kv_bytes_per_token), else the throughput model's generic estimate.
- `disk_need()`: the bytes not on disk yet + a margin.
- `choose_quant()`: the highest-quality candidate whose memory_need() fits.
"""

from ansible_collections.cpu_llm.infra.plugins.module_utils import throughput_model


class SizingError(ValueError):
    """Bad input; the message names the field and the expected form."""


def whole(mapping, key, name, default=None):
    """mapping[key] (or default) as a whole number >= 0; SizingError naming name.key otherwise."""
    value = mapping.get(key, default)
    if value is None:
        raise SizingError(f"{name}.{key} is required (a whole number >= 0)")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise SizingError(f"{name}.{key} must be a whole number, got {value!r}") from None
    if number < 0:
        raise SizingError(f"{name}.{key} must be >= 0, got {value!r}")
    return number


def kv_cache(model, context_tokens):
    """(bytes, how) of the KV cache for context_tokens tokens over all slots."""
    per_token = model.get("kv_bytes_per_token")
    if per_token:
        swa = int(model.get("kv_swa_bytes_per_token") or 0)
        window = int(model.get("kv_swa_window") or 0)
        exact = int(per_token) * context_tokens + swa * min(context_tokens, window or context_tokens)
        return exact, f"from the GGUF header ({model.get('kv_method', 'per layer')})"
    return throughput_model.kv_cache_bytes(model, context_tokens), "estimated from the size (header not read)"


def memory_need(model, context_tokens, overhead_bytes):
    """The RAM the service needs: {model, kv, kv_how, overhead, total} in bytes."""
    size = whole(model, "size_bytes", "model")
    kv, how = kv_cache(model, context_tokens)
    return {"model": size, "kv": kv, "kv_how": how, "overhead": overhead_bytes,
            "total": size + kv + overhead_bytes}


def disk_need(missing_bytes, margin_bytes):
    """Bytes of free disk needed: what is not on disk yet, plus the margin."""
    return max(0, missing_bytes) + margin_bytes


KV_KEYS = ("kv_bytes_per_token", "kv_swa_bytes_per_token", "kv_swa_window", "kv_method")


def choose_quant(candidates, memory_total_bytes, kv_profile, context_tokens, overhead_bytes):
    """The highest-quality candidate whose memory_need() fits; (chosen or None, candidates with fit and need).

    candidates: quant_candidates() (best first). kv_profile: one quant's GGUF profile (or its KV keys);
    the KV cache does not depend on the weights' quant, so it sizes every candidate.
    """
    kv = {key: kv_profile[key] for key in KV_KEYS if kv_profile.get(key)}
    table, chosen = [], None
    for candidate in candidates:
        need = memory_need(dict(kv, size_bytes=candidate["size_bytes"]), context_tokens, overhead_bytes)["total"]
        fits = need <= memory_total_bytes
        table.append(dict(candidate, memory_needed_bytes=need, fits=fits))
        if fits and chosen is None:
            chosen = candidate["quant"]
    return chosen, table
