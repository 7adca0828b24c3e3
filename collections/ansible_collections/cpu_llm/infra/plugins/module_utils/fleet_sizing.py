"""A fleet, not a box: one llama-server per NUMA node, and one model split over several hosts with RPC.

Plain Python, no Ansible imports. Two predictions, each next to today's layout (one llama-server under
numactl --interleave=all, the sizing report's estimate), each worded by sizing_report.fleet_lines():

  instances_view()  one interleaved instance over all NUMA nodes vs one instance per node
                    (llama_server_instances: per_node: numactl --cpunodebind=N --membind=N, its own port,
                    its own copy of the model in its node's memory), as aggregate tokens/s for the
                    configured parallel slots, and whether the model + KV fit one node's RAM.
  rpc_split()       a model bigger than any one host's RAM over the head's llama-server --rpc and
                    ggml-rpc-server on worker hosts: where llama.cpp puts each layer, the bytes and RAM
                    fit per host, a suggested -ngl/--tensor-split, and the tokens/s of the split.

Both build on throughput_model (its bytes per token, effective bandwidth, compute and barrier costs and
fitted constants), so their numbers share its calibration and its error (throughput_model's docstring).

How far to trust them: the batch-1 per-host times are throughput_model's, within its held-out error (LOO
p10-p90, about +-5%) where its calibration covers the inputs, and its coverage warnings are passed on. What
is added here is arithmetic on top of them, each step named ASSUMED or SOURCED where it is defined:
batched decoding (instances_view) is not calibrated against a measured batch sweep, and the RPC network
costs (rpc_split) come from reading llama.cpp's code and a chosen LAN latency, not from a measured split.
"""

import math
import struct

from ansible_collections.cpu_llm.infra.plugins.module_utils import gpu_offload, memory_fit
from ansible_collections.cpu_llm.infra.plugins.module_utils import throughput_model as tm

GB = 1e9
F32 = 4


class LayoutError(ValueError):
    """Bad input to a layout (instances per NUMA node, an RPC split); the message names the argument and the
    expected form."""


def _whole(value, name, minimum=0):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and (math.isnan(value) or value != int(value))):
        raise LayoutError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    if value < minimum:
        raise LayoutError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def _positive(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or value <= 0:
        raise LayoutError(f"{name} must be a number > 0, got {value!r}")
    return float(value)


def _mapping(value, name, form):
    if not isinstance(value, dict):
        raise LayoutError(f"{name} must be a mapping ({form}), got {type(value).__name__}")
    return value


# ============================================================================ 1. per-NUMA-node instances

# Routed experts at batch B: each sequence picks expert_used_count of expert_count experts per layer; the
# experts read per step are the distinct ones. ASSUMED: independent, uniform routing, so the expected share
# of a layer's experts read is 1 - (1 - used/count)^B. Real routers are skewed and correlated across
# sequences, which makes the true figure lower: this is an upper bound on the bytes, so a lower bound on the
# speed of the routed part. (DeepSeek-V3, 8 of 256: 4 sequences read 11.9% of the experts, not 4 x 3.1%.)


def _routed_at_batch(profile, routed, batch):
    if not routed or batch == 1:
        return routed
    used, count = profile["used_experts"], profile["expert_count"]
    if not count or not used:
        return routed * batch  # counts unknown (old-style model dict): every sequence its own experts
    return routed * count / used * (1 - (1 - used / count) ** batch)


def decode_step(hardware, model, *, threads, numa="interleave", batch=1, kv_tokens=0, bandwidth_gbs=None):
    """One decode step of ``batch`` sequences in one llama-server (its parallel slots, decoded together).

    At batch 1 this is throughput_model.estimate() (the same steps, unrounded); a batch of B sequences
    (llama-server batches the next token of every busy slot into one llama_decode call):
      memory   reads the weights ONCE per step: dense bytes + the distinct routed experts of the B tokens
               (_routed_at_batch) / expert_efficiency, + B x each sequence's KV (kv_tokens cells each)
      compute  B x the batch-1 matvec time: 2 FLOP per active parameter per token at throughput_model's
               per-core rates. ASSUMED: the same rate per FLOP as at batch 1. At batch > 1 ggml-cpu.c
               ggml_compute_forward_mul_mat hands F16/BF16/Q8_0/Q4_0/Q5_0/IQ4_NL to llamafile_sgemm (a GEMM,
               faster per FLOP: conservative there) and runs the rest, k-quants included, as the same vec_dot
               per row and column in 16 x 16 tiles (each weight row reused from cache: about the same rate)
      sync     the same graph, so the same barrier count as batch 1 (one graph per step, ggml-cpu.c)
      t_step = max(memory, compute) + sync; aggregate = B / t_step; each sequence gets 1 / t_step.
    So aggregate tokens/s grows with B while memory-bound and levels off once compute-bound.

    kv_tokens   cells in each sequence's cache while generating: 0 (weights only) is what the sizing
                report's estimate and gpu_offload.predict count
    Returns {tokens_per_second (aggregate), per_sequence_tokens_per_second, seconds_per_step,
    parts: {memory, compute, sync}, bound, bytes_per_step, bandwidth_gbs, batch, threads, warnings}.
    """
    batch = _whole(batch, "batch", 1)
    kv_tokens = _whole(kv_tokens, "kv_tokens")
    try:
        estimate = tm.estimate(hardware, model, threads=threads, numa=numa, context=kv_tokens,
                               bandwidth_gbs=bandwidth_gbs)
        profile = tm.model_profile(model)
        streamed, routed, kv = tm.bytes_per_token(profile, kv_tokens)
        measured = None if bandwidth_gbs is None else float(bandwidth_gbs)
        bandwidth, used_threads, _ = tm.effective_bandwidth(hardware, estimate["threads"], numa, measured, [])
        compute_1 = tm.compute_time(profile, used_threads, hardware)
    except tm.InputError as exc:
        raise LayoutError(str(exc)) from None
    efficiency = tm.FITTED["expert_efficiency"]
    routed_b = _routed_at_batch(profile, routed, batch)
    memory = (streamed + batch * kv + routed_b / efficiency) / (bandwidth * GB)
    compute = batch * compute_1
    sync = tm.sync_time(profile, estimate["threads"], tm.FITTED)
    step = max(memory, compute) + sync
    return {"tokens_per_second": batch / step, "per_sequence_tokens_per_second": 1 / step,
            "seconds_per_step": step, "parts": {"memory": memory, "compute": compute, "sync": sync},
            "bound": "compute" if compute > memory else "memory",
            "bytes_per_step": int(streamed + batch * kv + routed_b), "bandwidth_gbs": bandwidth,
            "batch": batch, "threads": estimate["threads"], "warnings": estimate["warnings"]}


def _node_memory(hardware, node_memory_bytes, nodes):
    """(smallest node's bytes or None, how it is known)."""
    if node_memory_bytes is None:
        total = hardware.get("memory_total_bytes")
        if not total:
            return None, "unknown (memory_total_bytes not known)"
        return int(total) // nodes, "the host's memory / NUMA nodes (assumed even; pass node_memory_bytes)"
    if isinstance(node_memory_bytes, (list, tuple)):
        if len(node_memory_bytes) != nodes:
            raise LayoutError(f"node_memory_bytes must list one size per NUMA node ({nodes}), got "
                              f"{len(node_memory_bytes)}")
        sizes = [_whole(v, f"node_memory_bytes[{i}]", 1) for i, v in enumerate(node_memory_bytes)]
        return min(sizes), "the smallest node (sysfs node*/meminfo)"
    return _whole(node_memory_bytes, "node_memory_bytes", 1), "given"


def instances_view(hardware, model, *, context_tokens, parallel, threads, numa="interleave", overhead_bytes=0,
                   node_memory_bytes=None, kv_tokens=0, bandwidth_gbs=None):
    """One interleaved llama-server over all NUMA nodes (today) vs one per NUMA node, on this host.

    hardware           llm_hardware facts (sockets, cores, numa_nodes, memory_channels, memory_speed_mts, ...)
    model              the model profile sizing uses (size_bytes, active_bytes, kv_bytes_per_token, ...)
    context_tokens     KV cells of ONE instance over its slots (llm_ctx_size x llm_parallel, as sizing counts)
    parallel           slots per instance (llm_parallel); each instance decodes its slots as one batch
    threads            generation threads of the interleaved instance (llm_threads); each per-node
                       instance gets threads // numa_nodes (its node's cores)
    numa               the interleaved instance's policy (throughput_model.NUMA_MODES)
    overhead_bytes     RAM beyond weights and KV per instance (llm_memory_overhead_bytes)
    node_memory_bytes  one node's RAM, or a list of every node's (sysfs nodeN/meminfo); default the host's
                       memory_total_bytes / numa_nodes
    kv_tokens          cells in each sequence's cache while generating (decode_step)
    bandwidth_gbs      a measured effective bandwidth of the interleaved layout (autotune), if any: the
                       per-node layout then gets that / numa_nodes (ASSUMED: nodes are equal)

    Each per-node instance is throughput_model with numa "isolate": one node's share of the sockets'
    bandwidth (socket bandwidth x sockets / nodes) and its threads, no cross-socket traffic, and fewer
    threads in every barrier. Aggregate tokens/s is decode_step() at batch = parallel, x numa_nodes for the
    per-node layout. "same_slots" is the interleaved instance with the per-node layout's total slots
    (numa_nodes x parallel, and their KV: context_tokens x numa_nodes): the fair comparison at equal
    concurrency, with one copy of the weights.

    Measured support: llama.cpp PR #5377 (bmtwl, multi-socket EPYC Genoa in NPS2, 4 nodes): one process per
    node on its own node's cores gave a combined throughput "almost double" one interleaved process;
    llamafile #765 measured 8 t/s pinned to one socket vs 4 t/s spread over two. throughput_model's
    interleave is NOT calibrated on more than one socket (its calibration covers 'distribute' and 'none'),
    so the interleaved side may be optimistic and the per-node gain understated.

    Returns {kind: "instances", numa_nodes, parallel, interleaved, per_node, same_slots, gain, gain_same_slots,
    recommended, why, node_memory_how, warnings}; each layout {instances, threads, slots, tokens_per_second,
    per_sequence_tokens_per_second, per_instance_tokens_per_second, bound, memory_bytes, memory_available_bytes,
    fits (None: RAM unknown)}. per_node with fits False is not possible on this host: it is never recommended
    and sizing_report.fleet_lines shows no speed for it.
    Raises LayoutError on bad input.
    """
    hardware = _mapping(hardware, "hardware", "llm_hardware facts")
    model = _mapping(model, "model", "size_bytes, active_bytes, kv_bytes_per_token, ...")
    context_tokens = _whole(context_tokens, "context_tokens")
    parallel = _whole(parallel, "parallel", 1)
    threads = _whole(threads, "threads", 1)
    overhead_bytes = _whole(overhead_bytes, "overhead_bytes")
    nodes = _whole(hardware.get("numa_nodes"), "hardware.numa_nodes", 1)
    if numa not in tm.NUMA_MODES:
        raise LayoutError(f"numa must be one of {', '.join(tm.NUMA_MODES)}, got {numa!r}")
    if bandwidth_gbs is not None:
        bandwidth_gbs = _positive(bandwidth_gbs, "bandwidth_gbs")
    node_memory, node_how = _node_memory(hardware, node_memory_bytes, nodes)
    try:
        need = memory_fit.memory_need(model, context_tokens, overhead_bytes)["total"]
        need_same = memory_fit.memory_need(model, context_tokens * nodes, overhead_bytes)["total"]
    except memory_fit.SizingError as exc:
        raise LayoutError(str(exc)) from None
    total = hardware.get("memory_total_bytes")

    one = decode_step(hardware, model, threads=threads, numa=numa, batch=parallel, kv_tokens=kv_tokens,
                      bandwidth_gbs=bandwidth_gbs)
    same = decode_step(hardware, model, threads=threads, numa=numa, batch=parallel * nodes, kv_tokens=kv_tokens,
                       bandwidth_gbs=bandwidth_gbs)
    if nodes == 1:
        node = one  # one node: the per-node layout IS today's layout
    else:
        node = decode_step(hardware, model, threads=max(1, threads // nodes), numa="isolate", batch=parallel,
                           kv_tokens=kv_tokens, bandwidth_gbs=None if bandwidth_gbs is None else bandwidth_gbs / nodes)

    def layout(step, instances, slots, need, memory_available):
        return {"instances": instances, "threads": step["threads"], "slots": slots,
                "tokens_per_second": step["tokens_per_second"] * instances,
                "per_instance_tokens_per_second": step["tokens_per_second"],
                "per_sequence_tokens_per_second": step["per_sequence_tokens_per_second"], "bound": step["bound"],
                "memory_bytes": need, "memory_available_bytes": memory_available,
                "fits": None if not memory_available else need <= memory_available}

    interleaved = layout(one, 1, parallel, need, int(total) if total else None)
    per_node = layout(node, nodes, parallel, need, node_memory)
    same_slots = layout(same, 1, parallel * nodes, need_same, int(total) if total else None)
    gain = per_node["tokens_per_second"] / interleaved["tokens_per_second"]
    gain_same = per_node["tokens_per_second"] / same_slots["tokens_per_second"]
    if nodes == 1:
        recommended, why = "interleaved", "one NUMA node: one instance per node is today's layout"
    elif per_node["fits"] is False:
        recommended = "interleaved"
        why = (f"one node's RAM ({_gb(node_memory)} GB) cannot hold the model + KV + overhead "
               f"({_gb(need)} GB): per-node instances are not possible")
    elif gain_same > 1:
        recommended = "per_node"
        why = (f"{nodes} instances x {parallel} slots give x{gain:.2f} today's aggregate and x{gain_same:.2f} "
               f"one interleaved instance with the same {nodes * parallel} slots")
    else:
        recommended = "interleaved"
        why = (f"one interleaved instance with {nodes * parallel} slots reads the weights once per step for all "
               f"of them: x{1 / gain_same:.2f} the per-node layout's aggregate with one copy of the weights; "
               f"raise llm_parallel instead")
    # The interleaved instance's warnings are the sizing report's own estimate's: add only the per-node ones.
    warnings = [f"per node: {w}" for w in node["warnings"] if w not in one["warnings"]] if nodes > 1 else []
    return {"kind": "instances", "numa_nodes": nodes, "parallel": parallel, "interleaved": interleaved,
            "per_node": per_node, "same_slots": same_slots, "gain": gain, "gain_same_slots": gain_same,
            "recommended": recommended, "why": why, "node_memory_how": node_how, "numa": numa,
            "warnings": warnings}


# ============================================================================ 2. RPC split over hosts

# llama.cpp's layer placement, read at the pinned commit (llama_cpp_version 0c1e57098bba43ac29e6e3b677cdceebdd22334f):
# * Devices (src/llama.cpp, default device selection): every RPC endpoint of --rpc is a device, "added at the
#   front of the list to minimize network transfers", then local GPUs. The head's own CPU is NOT a device: it
#   holds the layers below i_gpu_start and the input layer (token_embd, "always on the CPU").
# * Layers (src/llama-model.cpp load_tensors): i_gpu_start = n_layer + 1 - n_gpu_layers; layer il >= i_gpu_start
#   goes to the device whose cumulative, normalised split exceeds (il - i_gpu_start) / act_gpu_layers
#   (std::upper_bound, float arithmetic); the output layer is layer n_layer, so it goes to the last device.
#   n_gpu_layers defaults to all (-1 -> n_layer + 1), so by default EVERY layer is on the RPC devices and the
#   head keeps only token_embd.
# * Default split (the same function, tensor_split all zero): by each device's free memory. An RPC device
#   reports its server's device memory (ggml-rpc.cpp RPC_CMD_GET_DEVICE_MEMORY), and a CPU-only
#   ggml-rpc-server exposes its CPU device (tools/rpc/rpc-server.cpp get_devices), whose "free" memory is the
#   machine's whole physical RAM (ggml-cpu.cpp ggml_backend_cpu_device_get_memory: "assume that all of it is
#   free"). tools/rpc/README.md: "in proportion to each device's available memory"; --tensor-split overrides.
# * --fit (on by default, common/fit.cpp) changes only what the user left unset and aborts when -ngl or
#   --tensor-split is given: the suggested flags below are used as they are.
# * KV cache: layer il's K/V live on model.dev_layer(il) (src/llama-kv-cache.cpp, offload_kqv default on),
#   i.e. on the host that holds the layer (issue #11435's log: "RPC[...] KV buffer size").
# * The binary at this commit is ggml-rpc-server (tools/rpc/CMakeLists.txt), port 50052, binding 127.0.0.1 and
#   using hardware_concurrency()/2 threads unless -H / -t say otherwise; it is unauthenticated ("Never expose
#   the RPC server to an open network", tools/rpc/README.md).
RPC_PORT = 50052

# What crosses the network per generated token, at the pinned commit (ggml-backend.cpp
# ggml_backend_sched_compute_splits, ggml-rpc.cpp):
# * head CPU -> first RPC device: the hidden state, SET_TENSOR (one way, no reply since PR #12943).
# * RPC device -> next RPC device: the RPC buffer cannot copy across servers (ggml_backend_rpc_buffer_cpy_tensor
#   returns false when the sockets differ), so ggml_backend_tensor_copy GETs it to the head and SETs it on
#   the next server: one round trip and the hidden state twice (also unsloth's llama.cpp PR #196, "two
#   transfers, a synchronize").
# * every RPC device: the graph's inputs (KQ mask, positions, KV write indices) by SET_TENSOR, and
#   GRAPH_RECOMPUTE (13 bytes, no reply) when the graph is the one it ran last (PR #22701, graph uid).
# * the last device -> head: the logits (n_vocab F32), read by the head before sampling.
# On the critical path that is one round trip per RPC device holding layers: head->1st (half), each
# RPC->RPC boundary (one), logits back (half).
# The KQ mask is F16 with flash attention (src/llama-graph.cpp build_attn_inp_kq_mask), n_kv cells wide,
# n_kv padded to 256 (src/llama-kv-cache.cpp get_n_kv).
MASK_BYTES_PER_CELL = 2
KV_PAD = 256
# A changed graph is sent whole: n_nodes x 8 + n_tensors x 296 bytes (sizeof(rpc_tensor), packed; PR #15405,
# whose logged graph had 1400 tensors for 1080 nodes). It changes when n_kv crosses a 256-cell step
# (llama-graph.cpp can_reuse_kq_mask), so once per 256 generated tokens: counted per token, amortised.
RPC_TENSOR_BYTES = 296
TENSORS_PER_NODE = 1400 / 1080
GRAPH_REUSE_TOKENS = KV_PAD

# The LAN. ASSUMED, not measured here: 0.15 ms application-level round trip (a small TCP request and its
# reply through one switch on 10/25 GbE with the kernel stack and default interrupt coalescing; RDMA, which
# the RPC backend negotiates when both NICs support it, is lower). Measure yours (e.g. ping -c 100 between
# the hosts, or sockperf ping-pong) and pass latency_s. A measured GPU split lost more than this model gives:
# LLMKube #1423, two DGX Sparks on a build before the asynchronous RPC backend (PR #18626), 12.42 vs 12.83
# tok/s, +2.6 ms per token for one boundary. Until a CPU split is measured, read the network term as a floor.
DEFAULT_LATENCY_S = 150e-6
DEFAULT_LINK_GBPS = 10.0
# TCP payload per byte on the wire at MTU 1500: 1448 payload bytes (1500 - 20 IP - 32 TCP with timestamps,
# RFC 7323) per 1538 bytes on the wire (+ 14 Ethernet header, 4 FCS, 8 preamble, 12 inter-frame gap).
TCP_EFFICIENCY = 1448 / 1538


def _f32(x):
    """x rounded to a C float, as llama.cpp's split arithmetic is done."""
    return struct.unpack("f", struct.pack("f", x))[0]


def _device_of_layers(n_layer, n_gpu_layers, proportions):
    """llama.cpp's load_tensors placement: for layers 0..n_layer (n_layer = output), None (the head's CPU)
    or the index of the RPC device."""
    devices = len(proportions)
    i_gpu_start = max(n_layer + 1 - n_gpu_layers, 0)
    act = 0 if not devices else min(n_gpu_layers, n_layer + 1)
    splits, total = [], 0.0
    for value in proportions:
        total = _f32(total + _f32(value))
        splits.append(total)
    splits = [_f32(s / total) for s in splits] if total else splits
    out = []
    for il in range(n_layer + 1):
        if il < i_gpu_start or (il - i_gpu_start) >= act:
            out.append(None)
            continue
        value = _f32(_f32(il - i_gpu_start) / act)
        out.append(next((i for i, s in enumerate(splits) if s > value), devices - 1))
    return out


def _kv_cells(layers, context_tokens, parallel):
    """(cells of a full-attention layer, of a sliding-window layer), as gpu_offload counts them."""
    window = layers.get("kv_swa_window") or 0
    if not window:
        return context_tokens, context_tokens
    per_slot = context_tokens // parallel
    swa = min(per_slot, -(-(window + gpu_offload.DEFAULT_UBATCH) // gpu_offload.SWA_PAD) * gpu_offload.SWA_PAD)
    return context_tokens, swa * parallel


def _host(raw, index):
    raw = _mapping(raw, f"hosts[{index}]", "name, ram_bytes, hardware and/or bandwidth_gbs")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise LayoutError(f"hosts[{index}].name must be a non-empty string (the host's address), got {name!r}")
    ram = _whole(raw.get("ram_bytes"), f"hosts[{index}].ram_bytes", 1)
    hardware = raw.get("hardware")
    bandwidth = raw.get("bandwidth_gbs")
    if hardware is None and bandwidth is None:
        raise LayoutError(f"hosts[{index}] needs hardware (llm_hardware facts) or bandwidth_gbs (measured "
                          "effective read bandwidth)")
    if hardware is not None:
        _mapping(hardware, f"hosts[{index}].hardware", "llm_hardware facts")
    if bandwidth is not None:
        bandwidth = _positive(bandwidth, f"hosts[{index}].bandwidth_gbs")
    threads = raw.get("threads")
    if threads is not None:
        threads = _whole(threads, f"hosts[{index}].threads", 1)
    numa = raw.get("numa", "interleave")
    if numa not in tm.NUMA_MODES:
        raise LayoutError(f"hosts[{index}].numa must be one of {', '.join(tm.NUMA_MODES)}, got {numa!r}")
    endpoint = raw.get("endpoint") or f"{name}:{RPC_PORT}"
    return {"name": name, "ram_bytes": ram, "hardware": hardware, "bandwidth_gbs": bandwidth, "threads": threads,
            "numa": numa, "endpoint": str(endpoint)}


def _whole_model_costs(host, profile, model, kv_tokens, weighted_all):
    """Seconds per token if this host ran the whole model: {memory, compute, sync, bandwidth_gbs, warnings}.
    A host given only a measured bandwidth gets the memory time alone (no compute or barrier costs)."""
    if host["hardware"] is None:
        return {"memory": weighted_all / (host["bandwidth_gbs"] * GB), "compute": 0.0, "sync": 0.0,
                "bandwidth_gbs": host["bandwidth_gbs"], "warnings": []}
    try:
        estimate = tm.estimate(host["hardware"], model, threads=host["threads"], numa=host["numa"],
                               context=kv_tokens, bandwidth_gbs=host["bandwidth_gbs"])
        bandwidth, used_threads, _ = tm.effective_bandwidth(host["hardware"], estimate["threads"], host["numa"],
                                                            host["bandwidth_gbs"], [])
        compute = tm.compute_time(profile, used_threads, host["hardware"])
    except tm.InputError as exc:
        raise LayoutError(f"host {host['name']}: {exc}") from None
    return {"memory": weighted_all / (bandwidth * GB), "compute": compute,
            "sync": tm.sync_time(profile, estimate["threads"], tm.FITTED), "bandwidth_gbs": bandwidth,
            "warnings": estimate["warnings"]}


class _Model:
    """Per-layer bytes (stored, read per token, weighted as throughput_model weighs them) of one model."""

    def __init__(self, model, context_tokens, parallel, kv_tokens):
        layers = model.get("layers") if isinstance(model, dict) else None
        if not isinstance(layers, dict) or not isinstance(layers.get("blocks"), list) or "n_layer" not in layers:
            raise LayoutError("model must be the GGUF model profile with gguf_header.layer_bytes(headers) under "
                              "'layers' (as sizing passes it to offload_view)")
        if len(layers["blocks"]) != layers["n_layer"]:
            raise LayoutError(f"model.layers.blocks has {len(layers['blocks'])} entries, n_layer is "
                              f"{layers['n_layer']}")
        self.layers, self.n_layer = layers, layers["n_layer"]
        used, count = layers.get("expert_used_count") or 0, layers.get("expert_count") or 0
        share = used / count if count else 1.0
        efficiency = tm.FITTED["expert_efficiency"]
        full, swa = _kv_cells(layers, context_tokens, parallel)
        window = layers.get("kv_swa_window") or kv_tokens
        # per layer 0..n_layer (n_layer = output): stored bytes, KV bytes, read per token, weighted read, nodes
        self.stored, self.kv, self.read, self.weighted, self.nodes = [], [], [], [], []
        per_layer_nodes = tm.DENSE_LAYER_NODES
        for b in layers["blocks"]:
            if not b["loaded"]:
                for column in (self.stored, self.kv, self.read, self.weighted, self.nodes):
                    column.append(0)
                continue
            kv_read = b["kv_bytes_per_token"] * (min(kv_tokens, window) if b["swa"] else kv_tokens)
            self.stored.append(b["other_bytes"] + b["expert_bytes"])
            self.kv.append(b["kv_bytes_per_token"] * (swa if b["swa"] else full))
            self.read.append(b["other_bytes"] + b["expert_bytes"] * share + kv_read)
            self.weighted.append(b["other_bytes"] + b["expert_bytes"] * share / efficiency + kv_read)
            moe_nodes = tm.MOE_ROUTING_NODES + tm.MOE_NODES_PER_USED_EXPERT * used if b["expert_bytes"] else 0
            self.nodes.append(per_layer_nodes + moe_nodes)
        self.stored.append(layers["output_bytes"])
        self.kv.append(0)
        self.read.append(layers["output_bytes"])
        self.weighted.append(layers["output_bytes"])
        self.nodes.append(2)  # output norm + lm_head matmul
        self.input_bytes = layers["input_bytes"]
        self.n_embd, self.n_vocab = layers["n_embd"], layers["n_vocab"]


def _plan(m, hosts, costs, devices, placement, flags, *, overhead, link_gbps, latency_s, kv_tokens):
    """The bytes, fit and speed of one placement. devices: per layer 0..n_layer (n_layer = output), None for
    the head's CPU, else the index into hosts[1:]; the order of first use is the order of --rpc."""
    weighted_all, read_all, nodes_all = sum(m.weighted), sum(m.read), sum(m.nodes)
    rows = []
    for index, host in enumerate(hosts):
        mine = [il for il, d in enumerate(devices) if (d is None if index == 0 else d == index - 1)]
        weights = sum(m.stored[il] for il in mine) + (m.input_bytes if index == 0 else 0)
        kv = sum(m.kv[il] for il in mine)
        cost = costs[index]
        memory = cost["memory"] * sum(m.weighted[il] for il in mine) / weighted_all
        compute = cost["compute"] * sum(m.read[il] for il in mine) / read_all
        sync = cost["sync"] * sum(m.nodes[il] for il in mine) / nodes_all
        total = weights + kv + overhead
        rows.append({"name": host["name"], "role": "head" if index == 0 else "worker", "endpoint": host["endpoint"],
                     "blocks": [il for il in mine if il < m.n_layer], "output": m.n_layer in mine,
                     "input": index == 0, "weights_bytes": weights, "kv_bytes": kv, "overhead_bytes": overhead,
                     "total_bytes": total, "ram_bytes": host["ram_bytes"], "fits": total <= host["ram_bytes"],
                     "seconds_per_token": max(memory, compute) + sync, "bandwidth_gbs": cost["bandwidth_gbs"]})
    used = [d for d in dict.fromkeys(devices) if d is not None]
    n_rpc = len(used)
    mask = max(KV_PAD, -(-kv_tokens // KV_PAD) * KV_PAD) * MASK_BYTES_PER_CELL
    graph_nodes = sum(m.nodes[il] for il, d in enumerate(devices) if d is not None)
    graph = graph_nodes * (8 + TENSORS_PER_NODE * RPC_TENSOR_BYTES) / GRAPH_REUSE_TOKENS
    wire = ((2 * n_rpc - 1) * m.n_embd * F32 + n_rpc * mask + m.n_vocab * F32 + graph) if n_rpc else 0
    t_latency = n_rpc * latency_s
    t_transfer = wire / (link_gbps * 1e9 / 8 * TCP_EFFICIENCY)
    t_token = sum(r["seconds_per_token"] for r in rows) + t_latency + t_transfer
    return {"placement": placement, "flags": flags, "hosts": rows, "fits": all(r["fits"] for r in rows),
            "rpc_devices": n_rpc, "tokens_per_second": 1 / t_token, "seconds_per_token": t_token,
            "parts": {"hosts": {r["name"]: r["seconds_per_token"] for r in rows}, "latency": t_latency,
                      "transfer": t_transfer},
            "wire_bytes_per_token": int(wire), "load_bytes_over_network": sum(r["weights_bytes"] for r in rows[1:])}


def _worker_flags(hosts, used):
    """ggml-rpc-server command per worker holding layers: bind its LAN address, one thread per physical core
    (the default is hardware_concurrency()/2; llama.cpp #13051 saw 2-3 busy cores per node left unset), and
    interleave its memory over its NUMA nodes (it allocates the weights itself; numa 'none' halves a
    two-socket worker's bandwidth, throughput_model)."""
    out = {}
    for index in used:
        host = hosts[index]
        threads = host["threads"] or (host["hardware"] or {}).get("cores")
        prefix = ["numactl", "--interleave=all"] if host["numa"] == "interleave" else []
        out[host["name"]] = prefix + ["ggml-rpc-server", "-H", host["name"], "-p",
                                      host["endpoint"].rsplit(":", 1)[-1]] + (["-t", str(threads)] if threads else [])
    return out


# Among suggested placements whose time is within this fraction of the fastest, prefer fewer workers, then the
# most RAM left on the fullest host: on equal hosts every placement reads the same bytes at the same speed.
SUGGEST_TIME_TOLERANCE = 0.005


def _candidates(m, hosts, costs, overhead):
    """(k, [(worker host index, layer count), ...]) placements to try, pipeline order.

    For every k the head keeps token_embd and blocks 0..k-1 (k = n_layer + 1: everything, no RPC at all);
    the rest goes to the workers, fastest per token first, either (a) each taking as many consecutive layers
    as fit its RAM, or (b) split over the j fastest workers in proportion to their free RAM (j = 1..all),
    by llama.cpp's own rule.
    """
    workers = sorted(range(1, len(hosts)), key=lambda i: costs[i]["whole"])
    capacity = [h["ram_bytes"] - overhead for h in hosts]
    size = [m.stored[il] + m.kv[il] for il in range(m.n_layer + 1)]
    seen = set()
    for k in range(m.n_layer + 2):
        if m.input_bytes + sum(size[:k]) > capacity[0]:
            return
        rest = m.n_layer + 1 - k
        options = [()] if not rest else []
        counts, il = [], k
        for w in workers:
            used, first = 0, il
            while il <= m.n_layer and used + size[il] <= capacity[w]:
                used += size[il]
                il += 1
            if il > first:
                counts.append((w, il - first))
        if rest and il > m.n_layer:
            options.append(tuple(counts))
        for j in range(1, len(workers) + 1 if rest else 1):
            chosen = workers[:j]
            local = _device_of_layers(rest - 1, rest, [max(capacity[w], 0) for w in chosen])
            options.append(tuple((w, local.count(i)) for i, w in enumerate(chosen) if local.count(i)))
        for option in options:
            if (k, option) not in seen:
                seen.add((k, option))
                yield k, list(option)


def _suggested(m, hosts, costs, options):
    """The fastest placement that fits, as --rpc/-ngl/--tensor-split express it, or None.

    Layers run one after the other, so the time is the sum of each host's share: the fastest hosts should
    hold the most, and a worker that is not needed is left out of --rpc (one round trip less). Each candidate
    (_candidates) is expressed as flags (-ngl = layers on the workers, --tensor-split = each worker's layer
    count, --rpc = the workers holding layers in pipeline order), placed again from those flags by llama.cpp's
    rule (so the plan is what the flags do), timed by _plan, and kept if every host fits; among those within
    SUGGEST_TIME_TOLERANCE of the fastest: the fewest workers, then the most RAM left on the fullest host.
    """
    plans = []
    for k, counts in _candidates(m, hosts, costs, options["overhead"]):
        order = [w for w, _ in counts]
        ngl = m.n_layer + 1 - k
        local = _device_of_layers(m.n_layer, ngl, [n for _, n in counts])
        devices = [None if d is None else order[d] - 1 for d in local]
        head = ["--n-gpu-layers", "0"] if not order else [
            "--rpc", ",".join(hosts[w]["endpoint"] for w in order), "--n-gpu-layers", str(ngl),
            "--tensor-split", ",".join(str(n) for _, n in counts)]
        plan = _plan(m, hosts, costs, devices, "suggested", {"head": head, "workers": _worker_flags(hosts, order)},
                     **options)
        if plan["fits"]:
            plans.append(plan)
    if not plans:
        return None
    fastest = min(p["seconds_per_token"] for p in plans)
    near = [p for p in plans if p["seconds_per_token"] <= fastest * (1 + SUGGEST_TIME_TOLERANCE)]
    return min(near, key=lambda p: (p["rpc_devices"], -min(r["ram_bytes"] - r["total_bytes"] for r in p["hosts"])))


def rpc_split(model, hosts, *, context_tokens, parallel=1, overhead_bytes=0, n_gpu_layers=None, tensor_split=None,
              kv_tokens=0, link_gbps=DEFAULT_LINK_GBPS, latency_s=DEFAULT_LATENCY_S):
    """A model over several hosts with llama.cpp's RPC backend (--split-mode layer, the default).

    RPC adds capacity, not speed: the layers run one host after the other, so a token takes the SUM of each
    host's time for its layers plus the network, and one host with all the RAM at the same bandwidth is
    always faster (single_host below). Use it when no one host can hold the model.

    model           the GGUF model profile (size_bytes, active_bytes, ...) with gguf_header.layer_bytes()
                    under "layers", as sizing passes it to offload_view
    hosts           [head, worker, ...]: the head runs llama-server --rpc, each worker ggml-rpc-server.
                    Each {name (address), ram_bytes (its RAM: what its rpc-server reports as free, and what
                    must hold its layers), hardware (llm_hardware facts) and/or bandwidth_gbs (measured
                    effective read bandwidth), threads?, numa? (default interleave: ggml-rpc-server under
                    numactl --interleave=all), endpoint? (default name:50052)}
    context_tokens  KV cells over all slots (llm_ctx_size x llm_parallel); parallel: slots (sliding windows)
    overhead_bytes  RAM kept free on EVERY host (OS, compute buffers: llm_memory_overhead_bytes)
    n_gpu_layers, tensor_split
                    the flags to evaluate (llama-server -ngl, --tensor-split with one proportion per worker);
                    default: llama.cpp's own (every layer on the workers, split by their RAM)
    kv_tokens       cells in the cache while generating (0: weights only, as the sizing report's estimate)
    link_gbps, latency_s
                    the LAN: line rate in Gbit/s and an application-level round trip (DEFAULT_LATENCY_S)

    Per host: throughput_model's time for the whole model on that host, scaled by the host's share:
      t_host = max(memory x its share of weighted bytes, compute x its share of bytes) + sync x its share of
      graph nodes   (bytes read per token: dense weights + routed experts x used/count + KV, experts weighted
      by 1/expert_efficiency, as throughput_model weighs them)
    Network per token (the constants above): rpc_devices x latency_s + bytes on the wire / (link x
    TCP_EFFICIENCY), bytes = (2 rpc_devices - 1) x n_embd x 4 (hidden states) + rpc_devices x KQ mask +
    n_vocab x 4 (logits) + the amortised graph resend.
    t_token = sum(t_host) + network; batch 1 (one stream), as the sizing report's estimate.

    Returns {kind: "rpc", llama_cpp: plan for the given flags (or llama.cpp's defaults), suggested: the fastest
    plan that fits or None, single_host: {name, tokens_per_second} (the fastest host, whole model, no network),
    model_bytes, kv_bytes, overhead_bytes, link_gbps, latency_s, warnings};
    plan = {placement, flags: {head: llama-server flags, workers: {name: command}}, hosts: [{name, role,
    endpoint, blocks, output, input, weights_bytes, kv_bytes, overhead_bytes, total_bytes, ram_bytes, fits,
    seconds_per_token, bandwidth_gbs}], fits, rpc_devices, tokens_per_second, seconds_per_token,
    parts: {hosts: {name: s}, latency, transfer}, wire_bytes_per_token, load_bytes_over_network}.
    Raises LayoutError on bad input.
    """
    model = _mapping(model, "model", "a GGUF model profile with 'layers'")
    if not isinstance(hosts, (list, tuple)) or len(hosts) < 2:
        raise LayoutError("hosts must be a list of the head and at least one worker ({name, ram_bytes, hardware "
                          f"and/or bandwidth_gbs}}), got {hosts!r}")
    hosts = [_host(h, i) for i, h in enumerate(hosts)]
    names = [h["name"] for h in hosts]
    if len(set(names)) != len(names):
        raise LayoutError(f"hosts must have distinct names, got {names}")
    context_tokens = _whole(context_tokens, "context_tokens")
    parallel = _whole(parallel, "parallel", 1)
    overhead = _whole(overhead_bytes, "overhead_bytes")
    kv_tokens = _whole(kv_tokens, "kv_tokens")
    link_gbps = _positive(link_gbps, "link_gbps")
    if isinstance(latency_s, bool) or not isinstance(latency_s, (int, float)) or math.isnan(latency_s) \
            or latency_s < 0:
        raise LayoutError(f"latency_s must be a number of seconds >= 0, got {latency_s!r}")
    m = _Model(model, context_tokens, parallel, kv_tokens)
    workers = len(hosts) - 1
    if n_gpu_layers is not None:
        n_gpu_layers = min(_whole(n_gpu_layers, "n_gpu_layers"), m.n_layer + 1)
    if tensor_split is not None and (not isinstance(tensor_split, (list, tuple)) or len(tensor_split) != workers
                                     or any(isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0
                                            for v in tensor_split)):
        raise LayoutError(f"tensor_split must list {workers} proportion(s) >= 0, one per worker in --rpc order, "
                          f"got {tensor_split!r}")
    try:
        profile = tm.model_profile(model)
    except tm.InputError as exc:
        raise LayoutError(str(exc)) from None
    weighted_all = sum(m.weighted)
    costs = [_whole_model_costs(h, profile, model, kv_tokens, weighted_all) for h in hosts]
    for cost in costs:
        cost["whole"] = max(cost["memory"], cost["compute"]) + cost["sync"]
    options = {"overhead": overhead, "link_gbps": link_gbps, "latency_s": latency_s, "kv_tokens": kv_tokens}

    split_given = tensor_split is not None and any(tensor_split)
    ngl = m.n_layer + 1 if n_gpu_layers is None else n_gpu_layers
    proportions = list(tensor_split) if split_given else [h["ram_bytes"] for h in hosts[1:]]
    devices = _device_of_layers(m.n_layer, ngl, proportions)
    head = ["--rpc", ",".join(h["endpoint"] for h in hosts[1:])]
    head += ["--n-gpu-layers", str(n_gpu_layers)] if n_gpu_layers is not None else []
    head += ["--tensor-split", ",".join(f"{v:g}" for v in tensor_split)] if split_given else []
    placement = "given" if (split_given or n_gpu_layers is not None) else "default"
    current = _plan(m, hosts, costs, devices, placement,
                    {"head": head, "workers": _worker_flags(hosts, range(1, len(hosts)))}, **options)

    fastest = min(range(len(hosts)), key=lambda i: costs[i]["whole"])
    by_message = {}
    for host, cost in zip(hosts, costs, strict=True):
        for message in cost["warnings"]:
            by_message.setdefault(message, []).append(host["name"])
    warnings = [f"{', '.join(names)}: {message}" for message, names in by_message.items()]
    warnings.append("ggml-rpc-server is unauthenticated (tools/rpc/README.md): bind it (-H) to an address on a "
                    "private network between these hosts only.")
    if placement == "default":
        warnings.append("With --rpc alone llama.cpp puts every layer on the workers (-ngl defaults to all) in "
                        "proportion to their whole RAM, and the head keeps only token_embd: pass the suggested "
                        "-ngl/--tensor-split to use the head's RAM and keep each worker within its own.")
    return {"kind": "rpc", "llama_cpp": current, "suggested": _suggested(m, hosts, costs, options),
            "single_host": {"name": hosts[fastest]["name"], "tokens_per_second": 1 / costs[fastest]["whole"]},
            "model_bytes": sum(m.stored) + m.input_bytes, "kv_bytes": sum(m.kv), "overhead_bytes": overhead,
            "link_gbps": link_gbps, "latency_s": latency_s, "warnings": warnings}


def _gb(value):
    return f"{(value or 0) / GB:.1f}"
