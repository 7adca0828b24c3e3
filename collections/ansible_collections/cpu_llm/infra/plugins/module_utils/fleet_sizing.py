"""A fleet, not a box: one llama-server per NUMA node.

Plain Python, no Ansible imports. A prediction next to today's layout (one llama-server under
numactl --interleave=all, the sizing report's estimate), with render_lines() for the sizing report:

  instances_view()  one interleaved instance over all NUMA nodes vs one instance per node
                    (llama_server_instances: per_node: numactl --cpunodebind=N --membind=N, its own port,
                    its own copy of the model in its node's memory), as aggregate tokens/s for the
                    configured parallel slots, and whether the model + KV fit one node's RAM.

It builds on throughput_model (its bytes per token, effective bandwidth, compute and barrier costs and
fitted constants), so its numbers share its calibration and its error (throughput_model's docstring).

How far to trust them: the batch-1 per-host times are throughput_model's, within its held-out error (LOO
p10-p90, about +-5%) where its calibration covers the inputs, and its coverage warnings are passed on. What
is added here is arithmetic on top of them, each step named ASSUMED or SOURCED where it is defined:
batched decoding (instances_view) is not calibrated against a measured batch sweep.
"""

import math

from ansible_collections.cpu_llm.infra.plugins.module_utils import throughput_model as tm

GB = 1e9


class FleetError(ValueError):
    """Bad input; the message names the argument and the expected form."""


def _whole(value, name, minimum=0):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and (math.isnan(value) or value != int(value))):
        raise FleetError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    if value < minimum:
        raise FleetError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def _positive(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or value <= 0:
        raise FleetError(f"{name} must be a number > 0, got {value!r}")
    return float(value)


def _mapping(value, name, form):
    if not isinstance(value, dict):
        raise FleetError(f"{name} must be a mapping ({form}), got {type(value).__name__}")
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
        raise FleetError(str(exc)) from None
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
            raise FleetError(f"node_memory_bytes must list one size per NUMA node ({nodes}), got "
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
    and render_lines shows no speed for it.
    Raises FleetError on bad input.
    """
    from ansible_collections.cpu_llm.infra.plugins.module_utils import sizing  # sizing may import this module

    hardware = _mapping(hardware, "hardware", "llm_hardware facts")
    model = _mapping(model, "model", "size_bytes, active_bytes, kv_bytes_per_token, ...")
    context_tokens = _whole(context_tokens, "context_tokens")
    parallel = _whole(parallel, "parallel", 1)
    threads = _whole(threads, "threads", 1)
    overhead_bytes = _whole(overhead_bytes, "overhead_bytes")
    nodes = _whole(hardware.get("numa_nodes"), "hardware.numa_nodes", 1)
    if numa not in tm.NUMA_MODES:
        raise FleetError(f"numa must be one of {', '.join(tm.NUMA_MODES)}, got {numa!r}")
    if bandwidth_gbs is not None:
        bandwidth_gbs = _positive(bandwidth_gbs, "bandwidth_gbs")
    node_memory, node_how = _node_memory(hardware, node_memory_bytes, nodes)
    try:
        need = sizing.memory_need(model, context_tokens, overhead_bytes)["total"]
        need_same = sizing.memory_need(model, context_tokens * nodes, overhead_bytes)["total"]
    except sizing.SizingError as exc:
        raise FleetError(str(exc)) from None
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


def _instances_lines(view):
    nodes, slots = view["numa_nodes"], view["parallel"]
    one, node, same = view["interleaved"], view["per_node"], view["same_slots"]

    def speed(layout):
        return (f"{layout['tokens_per_second']:.2f} tok/s for {layout['instances'] * layout['slots']} "
                f"stream(s) ({layout['per_sequence_tokens_per_second']:.2f} each, {layout['bound']}-bound)")

    def fit(layout, of):
        if layout["fits"] is None:
            return f"needs {_gb(layout['memory_bytes'])} GB {of} (RAM unknown)"
        return (f"needs {_gb(layout['memory_bytes'])} of {_gb(layout['memory_available_bytes'])} GB {of}: "
                + ("fits" if layout["fits"] else "does not fit"))

    lines = [f"  Instances  one over all {nodes} NUMA node(s) (numactl --{view['numa']}, {one['threads']} threads, "
             f"{slots} slot(s)): {speed(one)}; {fit(one, 'of the host')}"]
    if nodes == 1:
        lines.append("             one per NUMA node: the same layout on a one-node host")
        return lines
    head = (f"             one per NUMA node ({nodes} x numactl --cpunodebind=N --membind=N, {node['threads']} "
            f"threads, {slots} slot(s) each): ")
    if node["fits"] is False:
        lines.append(head + f"not possible, {fit(node, 'per node')}")
    else:
        lines.append(head + f"{speed(node)}, x{view['gain']:.2f}; {fit(node, 'per node')}")
        lines.append(f"             one interleaved with {nodes * slots} slots: {speed(same)}; "
                     f"{fit(same, 'of the host')}")
    lines.append(f"             -> {view['recommended'].replace('_', ' ')}: {view['why']}")
    return lines


# ============================================================================ report

def _gb(value):
    return f"{(value or 0) / GB:.1f}"


def render_lines(result):
    """Lines for the sizing report (two-space indent, text at column 13 as sizing.render) of
    instances_view()'s result."""
    if not isinstance(result, dict) or result.get("kind") != "instances":
        raise FleetError("result must be what instances_view() returns")
    lines = _instances_lines(result)
    return lines + [f"             note: {w}" for w in result["warnings"]]
