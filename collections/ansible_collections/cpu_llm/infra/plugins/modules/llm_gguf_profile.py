#!/usr/bin/python
"""Read the GGUF headers of a model's files (local or over HTTP Range) and profile the model."""

DOCUMENTATION = r"""
module: llm_gguf_profile
short_description: Profile a GGUF model from its headers, before downloading it
description:
  - Reads the header of every file of one model (all shards) and returns its profile
    (architecture, parameters, bytes, bytes read per token, experts, KV cache per token, quant mix),
    from module_utils/gguf_header.py.
  - A file already on disk (I(path) exists with the expected size) is read locally; otherwise only
    its header is fetched from I(url) with HTTP Range requests, a few MB even for a 50 GB shard.
  - Changes nothing; runs the same in check mode.
options:
  base_url:
    description: URL the files are served under, C({endpoint}/{repo}/resolve/{revision}); file C(path) is appended.
    type: str
    required: true
  files:
    description: The model's files, first shard first (the gguf_model_plan filter's entries, or repository paths).
    type: list
    elements: raw
    required: true
    suboptions:
      path:
        description: The file's path in the repository.
        type: str
        required: true
      name:
        description: The file's name on this host (under I(local_dir)).
        type: str
      size:
        description: Expected size in bytes; a local file of another size is not trusted.
        type: int
  local_dir:
    description: Directory the files are downloaded to; a complete file there is read instead of fetched.
    type: path
  headers:
    description: HTTP headers for the requests, e.g. an Authorization token (dropped on cross-host redirects).
    type: dict
    default: {}
  timeout:
    description: Seconds per HTTP request.
    type: int
    default: 60
author: cpu-llm-infra
"""

EXAMPLES = r"""
- name: Profile DeepSeek-V3 at Q4_K_M without downloading it
  cpu_llm.infra.llm_gguf_profile:
    base_url: https://huggingface.co/unsloth/DeepSeek-V3-GGUF/resolve/main
    files:
      - path: Q4_K_M/DeepSeek-V3-Q4_K_M-00001-of-00009.gguf
      # ... every shard
  register: profiled
"""

RETURN = r"""
profile:
  description: The model profile (see gguf_header.model_profile); sizes in bytes.
  returned: success
  type: dict
  contains:
    architecture: {description: general.architecture, type: str}
    params: {description: weight elements over all tensors, type: int}
    size_bytes: {description: tensor data bytes over all shards, type: int}
    active_bytes: {description: weight bytes read to generate one token, type: int}
    expert_count: {description: routed experts per layer (0 for dense models), type: int}
    expert_used_count: {description: experts used per token, type: int}
    kv_bytes_per_token: {description: F16 K+V bytes per token of context, all full-attention layers, type: int}
    kv_method: {description: how the KV size was computed (gqa, mla, gqa+swa...), type: str}
    quant_mix: {description: bytes per ggml type, type: dict}
    layers: {description: 'per-layer bytes for GPU offload planning (gguf_header.layer_bytes)', type: dict}
sources:
  description: Per file, whether it was read from disk or over HTTP.
  returned: success
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.cpu_llm.infra.plugins.module_utils import gguf_header


def _source(base_url, local_dir, entry):
    """The local file when it is complete, else the URL."""
    local = os.path.join(local_dir, entry.get("name") or os.path.basename(entry["path"])) if local_dir else None
    size = entry.get("size")
    if local and os.path.isfile(local) and (size in (None, "") or os.path.getsize(local) == int(size)):
        return local, "disk"
    return f"{base_url.rstrip('/')}/{entry['path']}", "http"


def main():
    module = AnsibleModule(
        argument_spec={
            "base_url": {"type": "str", "required": True},
            # Plan entries carry more keys (sha256); only path, name and size are read.
            "files": {"type": "list", "elements": "raw", "required": True},
            "local_dir": {"type": "path"},
            "headers": {"type": "dict", "default": {}, "no_log": True},
            "timeout": {"type": "int", "default": 60},
        },
        supports_check_mode=True,
    )
    headers, sources = [], []
    for entry in module.params["files"]:
        entry = {"path": entry} if isinstance(entry, str) else entry
        if not isinstance(entry, dict) or not entry.get("path"):
            module.fail_json(msg=f"files: every entry needs a path, got {entry!r}")
        source, kind = _source(module.params["base_url"], module.params["local_dir"], entry)
        try:
            headers.append(gguf_header.read_header(source, headers=module.params["headers"] or None,
                                                   timeout=module.params["timeout"]))
        except (gguf_header.GGUFHeaderError, gguf_header.GGUFFetchError, OSError) as exc:
            module.fail_json(msg=f"cannot read the GGUF header of {source}: {exc}")
        sources.append(kind)
    try:
        profile = gguf_header.model_profile(headers)
        # Per-layer bytes: where each part would sit with partial GPU offload (gpu_offload.plan).
        profile["layers"] = gguf_header.layer_bytes(headers)
    except gguf_header.GGUFHeaderError as exc:
        module.fail_json(msg=f"cannot profile the model: {exc}")
    module.exit_json(changed=False, profile=profile, sources=sources)


if __name__ == "__main__":
    main()
