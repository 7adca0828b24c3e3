"""Partial GPU offload: which of a model's tensors llama.cpp should put on one GPU, and the speed that gives.

Plain Python, no Ansible imports. The weights stay in server RAM; a GPU with less memory than the model
takes the part that is read most per byte it holds. Two steps:

  plan()     from the per-layer bytes of the GGUF header (``gguf_header.layer_bytes``) and the GPU's free
             VRAM: the llama-server flags and what goes where.
               dense  the largest -ngl whose layers, their KV cache, the compute buffer and the margin fit.
               MoE    all layers on the GPU, with the routed experts of as few layers as possible kept in
                      RAM (--n-cpu-moe N); --cpu-moe when only the non-expert part fits; a partial -ngl
                      with --cpu-moe when even that does not; "cpu" when nothing fits.
  predict()  tokens/s of that split, next to the CPU-only estimate (throughput_model), and the ratio.

llama.cpp's rules, read at the pinned commit (llama_cpp_version 0c1e57098bba43ac29e6e3b677cdceebdd22334f):
* Layers: src/llama-model.cpp ``load_tensors``: i_gpu_start = n_layer + 1 - ngl, blocks il >= i_gpu_start go
  to the GPU, and the output layer counts as layer n_layer, so it is the FIRST one offloaded (ngl >= 1). The
  input layer (token_embd) always stays on the CPU ("very little benefit to offloading the input layer").
  n_layer is block_count, MTP (nextn) blocks included, although llama.cpp does not load them (TENSOR_SKIP).
* --n-cpu-moe N (common/arg.cpp, common/common.h ``llm_add_n_cpu_ffn_overrides``): tensor overrides to the CPU
  for ``blk\\.<i>\\.ffn_(up|down|gate|gate_up)_(ch|)exps`` for i = 0..N-1, i.e. the FIRST N blocks' routed
  experts; --cpu-moe is the same pattern for every block. Overrides win over the layer's device
  (src/llama-model-loader.cpp ``create_tensor``).
* KV cache: src/llama-kv-cache.cpp puts layer il's K/V on ``model.dev_layer(il)`` when offload_kqv (default
  on): the KV of an offloaded layer is in VRAM, the rest in RAM. The KV of a layer whose experts stay in RAM
  is still on the GPU.
* Compute buffer: llama-context.cpp reserves the graph of a full ubatch (n_ubatch tokens) with n_outputs_max
  outputs, which llama-server sets to its slots (tools/server/server-context.cpp load_model:
  server_output_limits, one output per sequence without speculative decoding; its log says
  "n_outputs_max = 1" for one slot), so the output layer's logits are n_vocab x slots, not x n_ubatch.
  The attention's KQ mask, an input of n_kv x n_ubatch F16 with flash attention (llama-graph.cpp
  build_attn_inp_kq_mask; one per attention type: full and sliding window), is copied into the GPU's compute
  buffer too: 4 MiB at 4096 cells. Checked on lavapipe with the tiny MoE (molecule/offload): llama.cpp's
  "Vulkan0 compute buffer size = 4.56 MiB" against 4.75 MiB planned. ggml-alloc frees each intermediate after
  its last use, so the peak is
  the widest stretch of the graph, not a sum. With op offload (default on; ggml-backend.cpp
  ``ggml_backend_sched_backend_id_from_cur``, ggml-cuda.cu ``offload_op``: batch >= 32), a batched matmul
  whose weights are in RAM runs on the GPU during prompt processing, and the scheduler copies that weight
  into the GPU's compute buffer first (``ggml_backend_sched_split_graph`` adds the split's input copies to
  the graph it allocates). So the compute buffer holds the largest weight left in RAM: 3 GB for DeepSeek-V3's
  Q6_K ffn_down_exps. Token generation (batch 1) is not offloaded: the CPU computes what is in RAM.
  Flash attention is assumed (llama-context.cpp resolves the default 'auto' to on where the device runs
  it; CUDA's fattn.cu has kernels for the usual head sizes and DeepSeek's 576/512): without it the
  attention scores, n_head x n_ctx x n_ubatch F32, would come on top.
* llama.cpp's own fitting (--fit, on by default) changes only settings left unset and gives up when -ngl
  or tensor overrides are given (common/fit.cpp), so these flags are used as they are.

How far to trust the plan: weights and KV are exact (tensor table). The compute buffer is an estimate
(COMPUTE_LIVE_TENSORS below) not yet checked against llama.cpp's own report on a GPU; the margin of
DEFAULT_MARGIN_BYTES absorbs an error of a few hundred MB. A plan that is too tight fails at start with a
cudaMalloc error in the journal, not silently: start with the default margin and lower it after reading
llama.cpp's "CUDA0 compute buffer size" line.
"""

import itertools
import math

from ansible_collections.cpu_llm.infra.plugins.module_utils import throughput_model

GB = 1e9
MiB = 1 << 20

# Free VRAM left unused: llama.cpp's --fit keeps the same 1024 MiB free per device by default (common/common.h
# fit_params_target) on top of the model, KV and compute buffers it measures itself. It covers what neither
# counts: the process's CUDA context and cuBLAS workspace, the CUDA memory pool's growth, fragmentation.
DEFAULT_MARGIN_BYTES = 1024 * MiB
# llama.cpp's default physical batch (common/common.h n_ubatch = 512): compute buffers are sized for it.
DEFAULT_UBATCH = 512
# F32 activations (ggml's graph tensors between weights are F32); F16 masks.
F32 = 4
F16 = 2
# Tensors of the widest op alive at once: its input, its output and the residual stream beside them
# (ggml-alloc.c frees the rest after their last use). An estimate from the graph's shape, see the docstring.
COMPUTE_LIVE_TENSORS = 3
# SWA cache cells: min(cells, window x streams + n_ubatch) padded to 256 (src/llama-kv-cache-iswa.cpp).
SWA_PAD = 256

# --- prediction
# Share of its memory bandwidth a GPU reaches in llama.cpp's batch-1 matvec kernels: llama.cpp PR #15802
# (CUDA: fastdiv, launch bounds for mmvq) measures llama 8B Q4_0 at microbatch 1 on an RTX 3090 at 155 t/s;
# that model reads ~4.35 GB per token (4.65 GB less the token_embd lookup), 675 GB/s of the card's 936 GB/s.
GPU_EFFICIENCY = 0.72
# One CPU<->GPU hop of the hidden state: a cudaMemcpyAsync of a few KB costs 5-7 us to submit (measured in
# "DualPath", arXiv 2602.21548, section 5.2), and the other side waits for it (ggml_backend_sched_compute_splits
# synchronises at each split boundary): 10 us. Per token: 2 hops per layer whose experts are in RAM, 1 where
# the layers change device, 1 for the logits.
HOP_LATENCY_S = 10e-6
# Host<->GPU copy bandwidth: PCIe 4.0 x16 is 16 GT/s x 16 lanes x 128/130 = 31.5 GB/s per direction (PCI-SIG),
# ~25 GB/s after packet overhead. Per hop n_embd F32 values (28 KB for DeepSeek-V3): ~1 us, small next to
# the latency; the logits (n_vocab F32, 0.5 MB) take ~20 us.
PCIE_GBS = 25.0

MODES = ("cpu", "ngl", "n_cpu_moe", "cpu_moe")

# Memory bandwidth of common cards in GB/s, from the vendors' data sheets (NVIDIA product pages; AMD
# Radeon/Instinct specifications), for the speed prediction when llm_hardware names the card. Longest
# name first, so "RTX 4090 D" is not read as "RTX 4090". A card not listed needs the bandwidth given.
GPU_BANDWIDTH_GBS = {
    "H100 PCIe": 2000, "H100": 3350, "H200": 4800, "A100 80GB": 2039, "A100": 1555, "L40S": 864, "L40": 864,
    "L4": 300, "A40": 696, "A10": 600, "RTX 6000 Ada": 960, "RTX A6000": 768, "RTX 5090": 1792,
    "RTX 4090": 1008, "RTX 4080": 717, "RTX 3090": 936, "RTX 3080": 760, "RX 7900 XTX": 960, "MI300X": 5300,
}


def known_bandwidth_gbs(name):
    """The data-sheet bandwidth of a card named ``name`` (nvidia-smi / vulkaninfo spelling), or None."""
    for model in sorted(GPU_BANDWIDTH_GBS, key=len, reverse=True):
        if model.lower() in (name or "").lower():
            return GPU_BANDWIDTH_GBS[model]
    return None


def sizing_gpu(gpus, *, vram_bytes=0, bandwidth_gbs=0):
    """The GPU the sizing report plans for: {name, vram_bytes, bandwidth_gbs, how}, or None.

    gpus           llm_hardware's gpus (detected); the first with memory of its own is used
    vram_bytes     > 0: this budget instead of the card's free VRAM (e.g. to keep room for other work,
                   or to size a card that is not there yet)
    bandwidth_gbs  > 0: this bandwidth instead of the data sheet's (GPU_BANDWIDTH_GBS by name)
    Software and integrated devices (lavapipe, an iGPU) have no memory of their own: not planned for
    unless a budget is given.
    """
    vram_bytes = _number(vram_bytes, "vram_bytes")
    bandwidth_gbs = _number(bandwidth_gbs, "bandwidth_gbs", integer=False)
    cards = [g for g in gpus or [] if isinstance(g, dict)]
    card = next((g for g in cards if g.get("type") not in ("cpu", "integrated")
                 and (g.get("vram_free_bytes") or g.get("vram_bytes"))), None)
    if card is None and vram_bytes:
        card = cards[0] if cards else {"name": "a GPU"}
    if card is None:
        return None
    free = card.get("vram_free_bytes") or card.get("vram_bytes") or 0
    return {"name": card.get("name") or "GPU", "vram_bytes": vram_bytes or int(free),
            "bandwidth_gbs": bandwidth_gbs or known_bandwidth_gbs(card.get("name")),
            "how": "the given budget" if vram_bytes else "free VRAM, " + str(card.get("source") or "detected")}


class OffloadError(ValueError):
    """Bad input; the message names the argument and the expected form."""


def _number(value, name, minimum=0, integer=True):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and math.isnan(value)):
        kind = "a whole number" if integer else "a number"
        raise OffloadError(f"{name} must be {kind} >= {minimum}, got {value!r}")
    if value < minimum:
        raise OffloadError(f"{name} must be >= {minimum}, got {value!r}")
    if integer and value != int(value):
        raise OffloadError(f"{name} must be a whole number, got {value!r}")
    return int(value) if integer else float(value)


def _layers(model):
    """The layer_bytes() dict, given it or a model profile carrying it under "layers"."""
    if isinstance(model, dict) and isinstance(model.get("layers"), dict):
        model = model["layers"]
    if not isinstance(model, dict) or not isinstance(model.get("blocks"), list) or "n_layer" not in model:
        raise OffloadError("model must be gguf_header.layer_bytes(headers) (per-block bytes: n_layer, blocks, "
                           "input_bytes, output_bytes, ...) or a profile with it under 'layers'; a plain "
                           "model_profile has no per-layer breakdown")
    if len(model["blocks"]) != model["n_layer"]:
        raise OffloadError(f"model.blocks has {len(model['blocks'])} entries, model.n_layer is {model['n_layer']}")
    return model


def _kv_tokens(layers, context_tokens, parallel, n_ubatch):
    """(cells of a full-attention layer, cells of a sliding-window layer) over all slots."""
    window = layers.get("kv_swa_window") or 0
    if not window:
        return context_tokens, context_tokens
    per_slot = context_tokens // parallel
    swa = min(per_slot, -(-(window + n_ubatch) // SWA_PAD) * SWA_PAD)
    return context_tokens, swa * parallel


class _Layout:
    """One placement: -ngl and how many leading blocks keep their routed experts in RAM."""

    def __init__(self, layers, ngl, n_cpu_moe, *, kv_cells, n_tokens, n_outputs, mask_bytes, op_offload, margin):
        n_layer = layers["n_layer"]
        self.ngl, self.n_cpu_moe = ngl, n_cpu_moe
        self.start = max(n_layer + 1 - ngl, 0)
        self.output_gpu = ngl >= 1
        blocks = [b for b in layers["blocks"] if b["loaded"]]
        used, count = layers.get("expert_used_count") or 0, layers.get("expert_count") or 0
        share = used / count if count else 1.0

        self.gpu_blocks = [b["index"] for b in blocks if b["index"] >= self.start]
        self.ram_expert_blocks = [b["index"] for b in blocks if b["expert_bytes"] and (
            b["index"] < self.start or b["index"] < n_cpu_moe)]
        gpu = {"weights": 0, "kv": 0}
        ram = {"weights": layers["input_bytes"], "kv": 0}
        # bytes read per generated token (routed experts at used/count, as model_profile counts them)
        read = {"gpu_dense": 0, "gpu_experts": 0, "ram_dense": 0, "ram_experts": 0,
                "gpu_kv_full": 0, "gpu_kv_swa": 0, "ram_kv_full": 0, "ram_kv_swa": 0}
        largest_in_ram = 0 if self.output_gpu else layers["output_largest"]
        width = 0
        # The sequence of devices one token passes through, to count CPU<->GPU hops.
        path = ["cpu"]  # token_embd lookup
        for b in blocks:
            on_gpu = b["index"] >= self.start
            experts_gpu = on_gpu and b["index"] >= n_cpu_moe
            side = "gpu" if on_gpu else "ram"
            cells = kv_cells[1] if b["swa"] else kv_cells[0]
            gpu_or_ram = gpu if on_gpu else ram
            gpu_or_ram["weights"] += b["other_bytes"]
            gpu_or_ram["kv"] += b["kv_bytes_per_token"] * cells
            (gpu if experts_gpu else ram)["weights"] += b["expert_bytes"]
            read[side + "_dense"] += b["other_bytes"]
            read[("gpu" if experts_gpu else "ram") + "_experts"] += b["expert_bytes"] * share
            read[side + ("_kv_swa" if b["swa"] else "_kv_full")] += b["kv_bytes_per_token"]
            if not on_gpu:
                largest_in_ram = max(largest_in_ram, b["largest_other"], b["largest_expert"])
            elif not experts_gpu:
                largest_in_ram = max(largest_in_ram, b["largest_expert"])
            if on_gpu or op_offload:
                width = max(width, b["width"])
            path.append("gpu" if on_gpu else "cpu")
            if b["expert_bytes"]:
                path.append("gpu" if experts_gpu else "cpu")
        (gpu if self.output_gpu else ram)["weights"] += layers["output_bytes"]
        read[("gpu" if self.output_gpu else "ram") + "_dense"] += layers["output_bytes"]
        path.append("gpu" if self.output_gpu else "cpu")
        self.hops = sum(a != b for a, b in itertools.pairwise(path))
        self.logits_hop = self.output_gpu  # sampling runs on the CPU: the logits come back
        if self.logits_hop:
            self.hops += 1

        compute = 0
        if ngl:
            layer_peak = COMPUTE_LIVE_TENSORS * width * n_tokens * F32
            output_peak = (layers["output_width"] + layers["n_embd"]) * n_outputs * F32
            compute = max(layer_peak, output_peak) + mask_bytes + (largest_in_ram if op_offload else 0)
        gpu["compute"] = compute
        gpu["margin"] = margin if ngl else 0
        self.gpu, self.ram, self.read = gpu, ram, read
        self.gpu_total = sum(gpu.values())
        self.ram_total = sum(ram.values())


def plan(model, *, vram_bytes, context_tokens, parallel=1, margin_bytes=DEFAULT_MARGIN_BYTES,
         n_ubatch=DEFAULT_UBATCH, op_offload=True):
    """Where llama.cpp should put each part of the model on one GPU with ``vram_bytes`` free.

    model           gguf_header.layer_bytes(headers), or a profile carrying it under "layers"
    vram_bytes      the GPU's free memory (nvidia-smi's "free" before llama-server starts)
    context_tokens  KV-cache cells over all slots (llm_ctx_size x llm_parallel, as sizing counts them)
    parallel        slots: each keeps its own sliding-window cache
    margin_bytes    VRAM left unused (DEFAULT_MARGIN_BYTES: llama.cpp's own --fit target)
    n_ubatch        llama.cpp's physical batch (the compute buffers are sized for it)
    op_offload      llama.cpp's default; --no-op-offload drops the weight copy from the compute buffer

    Returns {mode, ngl, n_cpu_moe, args, gpu_bytes, ram_bytes, gpu: {weights, kv, compute, margin},
    ram: {weights, kv}, vram_bytes, n_layer, gpu_blocks, ram_expert_blocks, output_on_gpu, read_per_token,
    hops, why}; mode is one of MODES, args the llama-server flags to add, gpu_blocks the block indices whose
    non-expert tensors and KV are in VRAM, ram_expert_blocks those whose routed experts are in RAM.
    Raises OffloadError on bad input.
    """
    layers = _layers(model)
    vram = _number(vram_bytes, "vram_bytes")
    context = _number(context_tokens, "context_tokens")
    parallel = _number(parallel, "parallel", minimum=1)
    margin = _number(margin_bytes, "margin_bytes")
    n_ubatch = _number(n_ubatch, "n_ubatch", minimum=1)
    if not isinstance(op_offload, bool):
        raise OffloadError(f"op_offload must be true or false, got {op_offload!r}")
    n_layer = layers["n_layer"]
    # llama_context clamps n_batch to n_ctx and n_ubatch to n_batch (llama-context.cpp).
    n_tokens = min(n_ubatch, context) if context else n_ubatch
    kv_cells = _kv_tokens(layers, context, parallel, n_ubatch)
    # KQ masks (F16, per stream: a slot's cells x the ubatch), one per attention type the model has.
    has_swa = any(b["swa"] for b in layers["blocks"] if b["loaded"])
    has_full = any(not b["swa"] for b in layers["blocks"] if b["loaded"])
    mask_cells = (kv_cells[0] if has_full else 0) + (kv_cells[1] if has_swa else 0)
    options = {"kv_cells": kv_cells, "n_tokens": n_tokens, "n_outputs": min(parallel, n_tokens),
               "mask_bytes": mask_cells // parallel * n_tokens * F16, "op_offload": op_offload, "margin": margin}
    full = n_layer + 1

    def layout(ngl, n_cpu_moe=0):
        return _Layout(layers, ngl, n_cpu_moe, **options)

    def fits(candidate):
        return candidate.gpu_total <= vram

    expert_blocks = [b["index"] for b in layers["blocks"] if b["loaded"] and b["expert_bytes"]]
    if not expert_blocks:
        best = max((g for g in range(full + 1) if fits(layout(g))), default=0)
        chosen = layout(best)
        if not best:
            return _result(layers, chosen, "cpu", vram, _cpu_why(layout(1), vram))
        if best == full:
            why = f"the whole model fits: needs {_gb(chosen.gpu_total)} of {_gb(vram)} GB"
        else:
            why = (f"the last {best - 1} of {n_layer} layers and the output fit ({_gb(chosen.gpu_total)} of "
                   f"{_gb(vram)} GB); one layer more would need {_gb(layout(best + 1).gpu_total)} GB")
        return _result(layers, chosen, "ngl", vram, why)

    last_expert = max(expert_blocks) + 1  # --n-cpu-moe at this value keeps every expert in RAM: --cpu-moe
    minimal = next((k for k in range(last_expert + 1) if fits(layout(full, k))), None)
    if minimal == 0:
        chosen = layout(full)
        return _result(layers, chosen, "ngl", vram, f"the whole model fits: needs {_gb(chosen.gpu_total)} of "
                                                    f"{_gb(vram)} GB")
    if minimal is not None and minimal < last_expert:
        chosen = layout(full, minimal)
        fewer = layout(full, minimal - 1)
        why = (f"all layers fit on the GPU with the routed experts of blocks 0-{minimal - 1} in RAM "
               f"({_gb(chosen.gpu_total)} of {_gb(vram)} GB); one block fewer would need "
               f"{_gb(fewer.gpu_total)} GB")
        return _result(layers, chosen, "n_cpu_moe", vram, why)
    if minimal is not None:
        chosen = layout(full, last_expert)
        one_more = layout(full, max(expert_blocks))
        why = (f"only the non-expert part fits: {_gb(chosen.gpu_total)} of {_gb(vram)} GB with every routed "
               f"expert in RAM; the experts of one block on the GPU would need {_gb(one_more.gpu_total)} GB")
        return _result(layers, chosen, "cpu_moe", vram, why)
    best = max((g for g in range(1, full) if fits(layout(g, last_expert))), default=0)
    if not best:
        return _result(layers, layout(0), "cpu", vram, _cpu_why(layout(1, last_expert), vram))
    chosen = layout(best, last_expert)
    why = (f"even without routed experts all layers need {_gb(layout(full, last_expert).gpu_total)} GB; the "
           f"last {best - 1} of {n_layer} layers and the output fit ({_gb(chosen.gpu_total)} of {_gb(vram)} GB)")
    return _result(layers, chosen, "cpu_moe", vram, why)


def _cpu_why(smallest, vram):
    return (f"nothing fits: the smallest offload (the output layer) needs {_gb(smallest.gpu_total)} GB "
            f"with the margin, the GPU has {_gb(vram)} GB free")


def _result(layers, chosen, mode, vram, why):
    n_layer = layers["n_layer"]
    if mode == "cpu":
        args = ["--n-gpu-layers", "0"]
    else:
        args = ["--n-gpu-layers", str(chosen.ngl)]
        if mode == "n_cpu_moe":
            args += ["--n-cpu-moe", str(chosen.n_cpu_moe)]
        elif mode == "cpu_moe":
            args += ["--cpu-moe"]
    return {
        "mode": mode, "ngl": chosen.ngl if mode != "cpu" else 0,
        "n_cpu_moe": chosen.n_cpu_moe if mode == "n_cpu_moe" else None, "args": args,
        "gpu_bytes": chosen.gpu_total if mode != "cpu" else 0,
        "ram_bytes": chosen.ram_total, "gpu": chosen.gpu, "ram": chosen.ram, "vram_bytes": vram,
        "n_layer": n_layer, "gpu_blocks": chosen.gpu_blocks, "ram_expert_blocks": chosen.ram_expert_blocks,
        "output_on_gpu": chosen.output_gpu, "read_per_token": chosen.read, "hops": chosen.hops,
        "logits_hop": chosen.logits_hop, "n_embd": layers["n_embd"], "n_vocab": layers["n_vocab"],
        "kv_swa_window": layers.get("kv_swa_window") or 0, "why": why,
    }


def _gb(value):
    return f"{value / GB:.1f}"


def predict(offload_plan, *, cpu_estimate, gpu_bandwidth_gbs, pcie_gbs=PCIE_GBS, kv_tokens=0):
    """Tokens/s of the plan's split next to CPU-only.

    cpu_estimate       throughput_model.estimate() for this host and model: its tokens_per_second is the
                       CPU-only figure the sizing report shows
    gpu_bandwidth_gbs  the GPU's memory bandwidth (RTX 4090: 1008 GB/s, its data sheet)
    kv_tokens          tokens in the cache while generating (0, as sizing's CPU estimate reads weights only)

    Time per token = GPU part + RAM part + transfers, run one after the other (each layer needs the last):
      GPU part   bytes read per token in VRAM / (gpu_bandwidth x GPU_EFFICIENCY)
      RAM part   the CPU-only time per token x the share of its reads that stay in RAM, weighted as the
                 throughput model weighs them (routed experts / its expert_efficiency): the RAM side keeps
                 today's bandwidth, compute and barrier costs in proportion; nothing offloaded = CPU-only
      transfers  hops x HOP_LATENCY_S + bytes moved / pcie_gbs (n_embd F32 per hop, n_vocab F32 logits)
    Returns {tokens_per_second, cpu_only_tokens_per_second, speedup, seconds_per_token,
    seconds_per_token_parts: {gpu, ram, transfer}, gpu_read_bytes_per_token, ram_read_bytes_per_token, hops}.
    """
    if not isinstance(offload_plan, dict) or "read_per_token" not in offload_plan:
        raise OffloadError("offload_plan must be the dict plan() returns")
    if not isinstance(cpu_estimate, dict):
        raise OffloadError("cpu_estimate must be throughput_model.estimate()'s dict (with tokens_per_second)")
    cpu_tps = _number(cpu_estimate.get("tokens_per_second"), "cpu_estimate.tokens_per_second",
                      minimum=1e-12, integer=False)
    gpu_bw = _number(gpu_bandwidth_gbs, "gpu_bandwidth_gbs", minimum=1e-9, integer=False)
    pcie = _number(pcie_gbs, "pcie_gbs", minimum=1e-9, integer=False)
    tokens = _number(kv_tokens, "kv_tokens")
    read = offload_plan["read_per_token"]
    window = offload_plan.get("kv_swa_window") or tokens
    swa_tokens = min(tokens, window)
    gpu_kv = read["gpu_kv_full"] * tokens + read["gpu_kv_swa"] * swa_tokens
    ram_kv = read["ram_kv_full"] * tokens + read["ram_kv_swa"] * swa_tokens
    efficiency = throughput_model.FITTED["expert_efficiency"]
    ram_weighted = read["ram_dense"] + ram_kv + read["ram_experts"] / efficiency
    all_weighted = ram_weighted + read["gpu_dense"] + gpu_kv + read["gpu_experts"] / efficiency
    t_cpu = 1 / cpu_tps
    t_ram = t_cpu * ram_weighted / all_weighted if all_weighted else t_cpu
    gpu_read = read["gpu_dense"] + read["gpu_experts"] + gpu_kv
    t_gpu = gpu_read / (gpu_bw * GB * GPU_EFFICIENCY)
    hops = offload_plan["hops"]
    moved = (hops - offload_plan["logits_hop"]) * offload_plan["n_embd"] * F32
    moved += offload_plan["n_vocab"] * F32 if offload_plan["logits_hop"] else 0
    t_transfer = hops * HOP_LATENCY_S + moved / (pcie * GB)
    t_token = t_gpu + t_ram + t_transfer
    return {
        "tokens_per_second": 1 / t_token, "cpu_only_tokens_per_second": cpu_tps, "speedup": t_cpu / t_token,
        "seconds_per_token": t_token,
        "seconds_per_token_parts": {"gpu": t_gpu, "ram": t_ram, "transfer": t_transfer},
        "gpu_read_bytes_per_token": gpu_read,
        "ram_read_bytes_per_token": read["ram_dense"] + read["ram_experts"] + ram_kv, "hops": hops,
    }


# --- the service: what llama-server.service gets on a GPU build

# Device groups (systemd.resource-control(5) DeviceAllow=, "char-<name>" from /proc/devices) each backend's
# driver opens. CUDA: nvidiactl and the numbered /dev/nvidia<N> (nvidia-frontend), nvidia-uvm (unified memory,
# cudaMallocManaged and the driver's own use) and nvidia-caps (MIG capabilities); the same set nixpkgs'
# services.ollama allows. Vulkan on a card: its DRM render node (/dev/dri/renderD<N>, group render).
DEVICE_ALLOW = {
    "cuda": ["char-nvidiactl rw", "char-nvidia-frontend rw", "char-nvidia-uvm rw", "char-nvidia-caps rw"],
    "vulkan": ["char-drm rw"],
}
# The render node is root:render 0660 (udev's 50-udev-default.rules): the service user joins that group.
SUPPLEMENTARY_GROUPS = {"vulkan": ["render"]}


def _service_gpu(gpus, backend):
    """The device the build's backend drives: the first of llm_hardware's gpus it would use."""
    cards = [g for g in gpus or [] if isinstance(g, dict) and g.get("backend") == backend]
    if backend == "cuda":
        cards = [g for g in cards if g.get("source") == "nvidia-smi"] or cards
    else:
        # A Vulkan driver answered for it (vulkaninfo), a card before a software device.
        cards = sorted((g for g in cards if g.get("source") == "vulkaninfo"), key=lambda g: g.get("type") == "cpu")
    return cards[0] if cards else None


def service_plan(model, *, backend, gpus, offload="auto", vram_bytes=0, margin_bytes=DEFAULT_MARGIN_BYTES,
                 context_tokens, parallel=1):
    """The llama-server flags and the unit's device access for this host's build, model and GPU.

    model      the GGUF profile (gguf_model_profile: per-layer bytes under "layers")
    backend    the build's backend (llama_cpp_build_backend): cpu, cuda or vulkan
    gpus       llm_hardware's gpus (detected)
    offload    auto: plan(); off: --n-gpu-layers 0 (the GPU build runs on the CPU only)
    vram_bytes > 0: this budget instead of the card's free VRAM (needed for a device without memory of its
               own: an integrated GPU, Mesa's lavapipe)
    Returns {args, mode, why, gpu, device_allow, supplementary_groups, memory_deny_write_execute, shader_cache,
    plan}:
    args to append to llama-server's command line; device_allow the unit's DeviceAllow= entries (empty: the
    sandbox keeps PrivateDevices=yes); memory_deny_write_execute false only for a Vulkan device that runs on
    the CPU (lavapipe JIT-compiles its shaders to host code with LLVM, which needs W+X mappings); shader_cache
    true for Vulkan: Mesa's drivers (radv, anv, lavapipe) compile llama.cpp's compute pipelines at every start
    unless they have a writable shader cache (minutes on lavapipe), so the unit gets one.
    A CPU build gets nothing: {args: [], mode: "none", ...}. Raises OffloadError on bad input, or when the
    GPU's memory is unknown and no budget is given.
    """
    if backend not in ("cpu", "cuda", "vulkan"):
        raise OffloadError(f"backend must be cpu, cuda or vulkan, got {backend!r}")
    if offload not in ("auto", "off"):
        raise OffloadError(f"offload must be auto or off, got {offload!r}")
    vram_bytes = _number(vram_bytes, "vram_bytes")
    result = {"args": [], "mode": "none", "gpu": None, "device_allow": [], "supplementary_groups": [],
              "memory_deny_write_execute": True, "shader_cache": False, "plan": None}
    if backend == "cpu":
        return dict(result, why="a CPU build: no GPU flag")
    if offload == "off":
        return dict(result, args=["--n-gpu-layers", "0"], mode="cpu", why="offload is off: everything in RAM")
    card = _service_gpu(gpus, backend)
    if card is None:
        raise OffloadError(f"the build is for {backend} but no {backend} device was detected (llm_hardware's gpus: "
                           f"{[g.get('name') for g in gpus or [] if isinstance(g, dict)]}); install the driver "
                           "or build for cpu")
    free = vram_bytes or card.get("vram_free_bytes") or card.get("vram_bytes") or 0
    if not free:
        raise OffloadError(f"{card.get('name')} reports no memory of its own (type {card.get('type')}): give a "
                           "VRAM budget in bytes (vram_bytes)")
    layout = plan(model, vram_bytes=int(free), context_tokens=context_tokens, parallel=parallel,
                  margin_bytes=margin_bytes)
    used = layout["mode"] != "cpu"
    software = card.get("type") == "cpu"
    return dict(result, args=layout["args"], mode=layout["mode"], why=layout["why"], plan=layout,
                gpu={"name": card.get("name"), "type": card.get("type"), "vram_bytes": int(free),
                     "how": "the given budget" if vram_bytes else "free VRAM, " + str(card.get("source"))},
                device_allow=list(DEVICE_ALLOW[backend]) if used and not software else [],
                supplementary_groups=list(SUPPLEMENTARY_GROUPS.get(backend, [])) if used and not software else [],
                memory_deny_write_execute=not (used and software), shader_cache=used and backend == "vulkan")
