"""Filter llm_gpu_offload: thin glue over module_utils/gpu_offload.py service_plan()."""

DOCUMENTATION = r"""
name: llm_gpu_offload
short_description: The llama-server GPU flags and the unit's device access for a build, model and GPU
description:
  - Plans partial GPU offload (module_utils/gpu_offload.py, the plan the sizing report shows) for the service
    and says what its unit needs for it.
  - A CPU build gets no flag; a GPU build with I(offload=off) gets C(--n-gpu-layers 0).
positional: _input
options:
  _input:
    description: The model's GGUF profile (gguf_model_profile), with per-layer bytes under C(layers).
    type: dict
    required: true
  backend:
    description: The build's backend (llama_cpp_build_backend).
    type: str
    choices: [cpu, cuda, vulkan]
    required: true
  gpus:
    description: llm_hardware's gpus.
    type: list
    elements: dict
    required: true
  offload:
    description: auto plans; off keeps everything in RAM.
    type: str
    choices: [auto, off]
    default: auto
  vram_bytes:
    description: GPU memory the plan may fill; 0 = the card's free VRAM as detected.
    type: int
    default: 0
  margin_bytes:
    description: VRAM left unused.
    type: int
    default: 1073741824
  context_tokens:
    description: KV-cache cells over all slots.
    type: int
    required: true
  parallel:
    description: Slots.
    type: int
    default: 1
"""

EXAMPLES = r"""
offload: >-
  {{ gguf_model_profile | cpu_llm.infra.llm_gpu_offload(backend='cuda', gpus=llm_hardware.gpus,
     context_tokens=8192) }}
"""

RETURN = r"""
_value:
  description: The service's offload.
  type: dict
  contains:
    args: {description: llama-server flags to add, type: list, elements: str}
    mode: {description: "none (CPU build), cpu, ngl, n_cpu_moe or cpu_moe", type: str}
    why: {description: the plan's reason in words, type: str}
    gpu: {description: "{name, type, vram_bytes, how} of the device planned for; null without", type: dict}
    device_allow: {description: the unit's DeviceAllow= entries; empty keeps PrivateDevices=yes, type: list}
    supplementary_groups: {description: groups the service joins for the device nodes, type: list}
    memory_deny_write_execute: {description: false only for a Vulkan device on the CPU (lavapipe's JIT), type: bool}
    plan: {description: gpu_offload.plan()'s result; null without a plan, type: dict}
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.cpu_llm.infra.plugins.module_utils import gpu_offload


def llm_gpu_offload(model, backend, gpus, context_tokens, offload="auto", vram_bytes=0,
                    margin_bytes=gpu_offload.DEFAULT_MARGIN_BYTES, parallel=1):
    try:
        return gpu_offload.service_plan(model, backend=backend, gpus=gpus, offload=offload,
                                        vram_bytes=int(vram_bytes), margin_bytes=int(margin_bytes),
                                        context_tokens=int(context_tokens), parallel=int(parallel))
    except (gpu_offload.OffloadError, TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"llm_gpu_offload: {exc}") from exc


class FilterModule:
    def filters(self):
        return {"llm_gpu_offload": llm_gpu_offload}
