"""fleet_sizing: per-NUMA-node instances and RPC splits, on the header-only files of real large models.

Expected values come from the tensor tables (summed here, by name), llama.cpp's placement rule (re-derived
here: the last n_gpu_layers layers on the RPC devices by cumulative proportion, the output last) and
throughput_model's own estimate() where a figure must agree with the sizing report's; never from
fleet_sizing's internals.
"""

import pytest
from ansible_collections.cpu_llm.infra.plugins.module_utils import fleet_sizing as fs
from ansible_collections.cpu_llm.infra.plugins.module_utils import gguf_header as gh
from ansible_collections.cpu_llm.infra.plugins.module_utils import gpu_offload as go
from ansible_collections.cpu_llm.infra.plugins.module_utils import sizing_report
from ansible_collections.cpu_llm.infra.plugins.module_utils import throughput_model as tm

GB = 10**9
GIB4 = 4 << 30
CONTEXT = 4096
# The seed's box (test_sizing.py): 2x EPYC 9124, 24 channels DDR5-4800, 384 GiB, two NUMA nodes.
SEED = {"cpu_model": "AMD EPYC 9124 16-Core Processor", "sockets": 2, "cores": 32, "threads": 64, "numa_nodes": 2,
        "memory_type": "DDR5", "memory_channels": 24, "memory_speed_mts": 4800, "memory_total_bytes": 412316860416}
# One socket of it: one NUMA node, 192 GB.
ONE = dict(SEED, sockets=1, cores=16, threads=32, numa_nodes=1, memory_channels=12, memory_total_bytes=192 * GB)
# 2x EPYC 9654 in NPS2: four NUMA nodes, 192 cores.
NPS2 = dict(SEED, cpu_model="AMD EPYC 9654 96-Core Processor", cores=192, threads=384, numa_nodes=4,
            memory_total_bytes=1536 * GB)
QUANTS = {"deepseek-v3": "Q4_K_M", "qwen3-235b-a22b": "Q4_K_M", "gpt-oss-120b": "MXFP4", "llama-3.1-405b": "Q6_K"}


@pytest.fixture(scope="module")
def models(profiles, headers):
    """Each profile as sizing passes it: with its quant and gguf_header.layer_bytes under "layers"."""
    return {name: dict(profiles[name], quant=QUANTS[name], layers=gh.layer_bytes([headers[name]]))
            for name in profiles}


def need(model, context=CONTEXT, overhead=GIB4):
    """model + KV + overhead, from the profile (sizing's rule, written out)."""
    return model["size_bytes"] + model["kv_bytes_per_token"] * context + overhead


# ============================================================================ per-NUMA-node instances


def test_one_node_gives_equal_layouts(models):
    view = fs.instances_view(ONE, models["qwen3-235b-a22b"], context_tokens=2 * CONTEXT, parallel=2, threads=16,
                             overhead_bytes=GIB4)
    assert view["numa_nodes"] == 1
    one, node = view["interleaved"], view["per_node"]
    assert node["tokens_per_second"] == one["tokens_per_second"]
    assert node["per_sequence_tokens_per_second"] == one["per_sequence_tokens_per_second"]
    assert node["threads"] == one["threads"] == 16 and node["instances"] == 1
    assert view["gain"] == 1 and view["recommended"] == "interleaved"
    assert "the same layout on a one-node host" in "\n".join(sizing_report.fleet_lines(view))


def test_per_node_beats_interleaved_on_two_nodes_when_the_model_fits_a_node(models):
    model = models["qwen3-235b-a22b"]  # 142 GB: fits one 206 GB node with its KV and 4 GiB
    view = fs.instances_view(SEED, model, context_tokens=CONTEXT, parallel=1, threads=32, overhead_bytes=GIB4)
    node, one = view["per_node"], view["interleaved"]
    assert node["fits"] is True and node["memory_bytes"] == need(model)
    assert node["memory_available_bytes"] == SEED["memory_total_bytes"] // 2
    assert node["instances"] == 2 and node["threads"] == 16
    assert node["tokens_per_second"] > one["tokens_per_second"]
    assert view["recommended"] == "per_node" and view["gain"] > 1
    # One slot each: today's figure is the sizing report's estimate, each node's instance throughput_model's
    # estimate on one node ("isolate": its share of the bandwidth, its 16 threads).
    today = tm.estimate(SEED, model, threads=32)["tokens_per_second"]
    one_node = tm.estimate(SEED, model, threads=16, numa="isolate")["tokens_per_second"]
    assert one["tokens_per_second"] == pytest.approx(today, abs=1e-3)
    assert node["tokens_per_second"] == pytest.approx(2 * one_node, abs=2e-3)


def test_per_node_is_refused_when_the_model_does_not_fit_a_node(models):
    model = models["deepseek-v3"]  # 404 GB: fits the 412 GB host, not a 206 GB node
    view = fs.instances_view(SEED, model, context_tokens=CONTEXT, parallel=1, threads=32, overhead_bytes=GIB4)
    assert view["interleaved"]["fits"] is True and view["per_node"]["fits"] is False
    assert view["recommended"] == "interleaved" and "not possible" in view["why"]
    lines = sizing_report.fleet_lines(view)
    per_node = next(line for line in lines if "one per NUMA node" in line)
    assert "not possible" in per_node and "tok/s" not in per_node


def test_the_smallest_node_decides_and_one_byte_decides(models):
    model = models["gpt-oss-120b"]
    total = need(model, context=2 * CONTEXT)
    # gpt-oss's sliding-window layers hold only the window's cells: sizing's KV rule, not the plain product
    exact = total - model["kv_bytes_per_token"] * 2 * CONTEXT + fs_kv(model, 2 * CONTEXT)

    def fits(nodes):
        return fs.instances_view(SEED, model, context_tokens=2 * CONTEXT, parallel=2, threads=32,
                                 overhead_bytes=GIB4, node_memory_bytes=nodes)["per_node"]["fits"]

    assert fits([exact, exact]) is True
    assert fits([exact + 10**9, exact - 1]) is False
    assert fits(exact) is True and fits(exact - 1) is False


def fs_kv(model, context):
    """KV bytes as memory_fit.kv_cache counts them (full layers x context + SWA layers x the window)."""
    return (model["kv_bytes_per_token"] * context
            + model.get("kv_swa_bytes_per_token", 0) * min(context, model.get("kv_swa_window") or context))


def test_four_nodes_split_threads_and_memory_four_ways(models):
    model = models["gpt-oss-120b"]
    view = fs.instances_view(NPS2, model, context_tokens=CONTEXT, parallel=2, threads=192, overhead_bytes=GIB4)
    node = view["per_node"]
    assert node["instances"] == 4 and node["threads"] == 48 and node["slots"] == 2
    assert node["memory_available_bytes"] == NPS2["memory_total_bytes"] // 4 and node["fits"] is True
    # Each instance is one node at batch 2: four of them.
    single = fs.decode_step(NPS2, model, threads=48, numa="isolate", batch=2)
    assert node["tokens_per_second"] == pytest.approx(4 * single["tokens_per_second"])
    assert view["same_slots"]["slots"] == 8
    assert view["same_slots"]["tokens_per_second"] == pytest.approx(
        fs.decode_step(NPS2, model, threads=192, batch=8)["tokens_per_second"])


def test_decode_step_at_batch_one_is_the_sizing_estimate(models):
    for name, model in models.items():
        for hardware, threads in ((SEED, 32), (NPS2, 192), (ONE, 8)):
            estimate = tm.estimate(hardware, model, threads=threads)
            step = fs.decode_step(hardware, model, threads=threads)
            assert step["tokens_per_second"] == pytest.approx(estimate["tokens_per_second"], abs=1e-3), name
            assert step["bound"] == estimate["bound"]


def test_batching_reads_the_weights_once_until_compute_bound(models):
    """Dense 405B on 192 cores is memory-bound at batch 1: more sequences per step are nearly free until the
    matvecs fill the cores, then the aggregate levels off at the compute rate."""
    model = models["llama-3.1-405b"]
    steps = {b: fs.decode_step(NPS2, model, threads=192, numa="distribute", batch=b) for b in (1, 2, 4, 16, 32, 64)}
    assert steps[1]["bound"] == "memory" and steps[64]["bound"] == "compute"
    # The weights are read once per step whatever the batch (no KV counted here).
    assert steps[1]["bytes_per_step"] == steps[64]["bytes_per_step"] == model["active_bytes"]
    speeds = [steps[b]["tokens_per_second"] for b in (1, 2, 4, 16, 32, 64)]
    assert speeds == sorted(speeds) and speeds[1] > 1.8 * speeds[0]
    ceiling = 1 / (tm.compute_time(tm.model_profile(model), 192, NPS2))
    assert speeds[-1] < ceiling and speeds[-1] > 0.9 * speeds[-2]
    assert steps[64]["per_sequence_tokens_per_second"] < steps[1]["per_sequence_tokens_per_second"] / 10
    # Each sequence's KV is read every step: kv_tokens adds batch x cells x bytes per cell.
    warm = fs.decode_step(NPS2, model, threads=192, batch=4, kv_tokens=CONTEXT)
    cold = fs.decode_step(NPS2, model, threads=192, batch=4)
    assert warm["bytes_per_step"] - cold["bytes_per_step"] == 4 * CONTEXT * model["kv_bytes_per_token"]


def test_moe_batches_read_the_distinct_experts(models):
    """Routed experts: B tokens each picking 8 of 256 read 1 - (31/32)^B of them (uniform routing assumed)."""
    model = models["deepseek-v3"]
    used, count = 8, 256
    routed_one = (model["size_bytes"] - model["active_bytes"]) / (1 - used / count) * used / count
    dense = model["active_bytes"] - routed_one
    for batch in (1, 2, 4, 16):
        step = fs.decode_step(SEED, model, threads=32, batch=batch)
        distinct = routed_one * count / used * (1 - (1 - used / count) ** batch)
        assert step["bytes_per_step"] == pytest.approx(dense + distinct, rel=1e-9)
        assert step["bytes_per_step"] - dense <= batch * routed_one * (1 + 1e-12)


def test_interleaved_with_the_same_slots_can_win(models):
    """Memory-bound and sync-light: one instance batching every stream reads the weights once for all of
    them, so it beats a copy per node, and the view says to raise llm_parallel instead."""
    model = models["llama-3.1-405b"]
    view = fs.instances_view(NPS2, model, context_tokens=CONTEXT, parallel=1, threads=192, numa="distribute",
                             overhead_bytes=GIB4)
    assert view["per_node"]["fits"] is True
    assert view["same_slots"]["tokens_per_second"] > view["per_node"]["tokens_per_second"]
    assert view["recommended"] == "interleaved" and "raise llm_parallel" in view["why"]


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"context_tokens": -1}, "context_tokens"),
    ({"context_tokens": 1.5}, "context_tokens"),
    ({"parallel": 0}, "parallel"),
    ({"threads": 0}, "threads"),
    ({"threads": True}, "threads"),
    ({"numa": "spread"}, "numa"),
    ({"overhead_bytes": -1}, "overhead_bytes"),
    ({"node_memory_bytes": [1]}, "node_memory_bytes"),
    ({"node_memory_bytes": "lots"}, "node_memory_bytes"),
    ({"node_memory_bytes": [100 * GB, 0]}, r"node_memory_bytes\[1\]"),
    ({"bandwidth_gbs": 0}, "bandwidth_gbs"),
    ({"kv_tokens": -5}, "kv_tokens"),
    ({"hardware": dict(SEED, numa_nodes=None)}, "hardware.numa_nodes"),
    ({"hardware": dict(SEED, memory_channels=None)}, "hardware.memory_channels"),
    ({"hardware": []}, "hardware"),
    ({"model": {}}, "size_bytes"),
])
def test_bad_instances_input_names_the_argument(kwargs, named, models):
    arguments = {"hardware": SEED, "model": models["gpt-oss-120b"], "context_tokens": CONTEXT, "parallel": 1,
                 "threads": 32, **kwargs}
    with pytest.raises(fs.LayoutError, match=named):
        fs.instances_view(**arguments)
    assert issubclass(fs.LayoutError, ValueError)


def test_instances_lines_are_in_the_report_column(models):
    view = fs.instances_view(SEED, models["qwen3-235b-a22b"], context_tokens=4 * CONTEXT, parallel=4, threads=32,
                             overhead_bytes=GIB4)
    lines = sizing_report.fleet_lines(view)
    assert lines[0].startswith("  Instances  one over all 2 NUMA node(s) (numactl --interleave, 32 threads")
    assert all(line.startswith(" " * 13) for line in lines[1:])
    text = "\n".join(lines)
    assert f"{view['interleaved']['tokens_per_second']:.2f} tok/s for 4 stream(s)" in text
    assert f"{view['per_node']['tokens_per_second']:.2f} tok/s for 8 stream(s)" in text
    assert "2 x numactl --cpunodebind=N --membind=N, 16 threads, 4 slot(s) each" in text
    assert f"one interleaved with 8 slots: {view['same_slots']['tokens_per_second']:.2f} tok/s" in text
    assert "numa 'isolate'" in text  # the per-node estimate is outside the calibration: said so


# ============================================================================ RPC split


def host(name, ram_gb, hardware=ONE, **extra):
    return {"name": name, "ram_bytes": ram_gb * GB, "hardware": hardware, **extra}


def llama_cpp_devices(n_layer, ngl, proportions):
    """src/llama-model.cpp load_tensors, re-derived: None (head CPU) or the RPC device of layers 0..n_layer."""
    start = max(n_layer + 1 - ngl, 0)
    act = min(ngl, n_layer + 1)
    cumulative = [sum(proportions[:i + 1]) / sum(proportions) for i in range(len(proportions))]
    return [None if il < start else next(i for i, c in enumerate(cumulative) if c > (il - start) / act)
            for il in range(n_layer + 1)]


def by_block(header):
    """{block: bytes} and the non-block tensors, summed from the tensor table."""
    blocks, non_block = {}, {}
    for t in header["tensors"]:
        if t["name"].startswith("blk."):
            index = int(t["name"].split(".")[1])
            blocks[index] = blocks.get(index, 0) + t["nbytes"]
        else:
            non_block[t["name"]] = t["nbytes"]
    return blocks, non_block


def test_default_placement_is_llama_cpps_split_by_worker_ram(models, headers):
    """--rpc alone: every layer on the workers in proportion to their RAM, the head keeps token_embd."""
    model = models["llama-3.1-405b"]
    split = fs.rpc_split(model, [host("a", 192), host("b", 100), host("c", 300)], context_tokens=CONTEXT,
                         overhead_bytes=GIB4)
    plan = split["llama_cpp"]
    assert plan["placement"] == "default" and plan["flags"]["head"] == ["--rpc", "b:50052,c:50052"]
    devices = llama_cpp_devices(126, 127, [100, 300])
    assert devices.count(0) == 32 and devices.count(1) == 95  # 127 x 1/4, the rest with the output
    head, b, c = plan["hosts"]
    assert head["blocks"] == [] and not head["output"] and head["input"]
    assert b["blocks"] == list(range(32)) and c["blocks"] == list(range(32, 126)) and c["output"]
    blocks, non_block = by_block(headers["llama-3.1-405b"])
    assert head["weights_bytes"] == non_block["token_embd.weight"]
    assert b["weights_bytes"] == sum(blocks[i] for i in range(32))
    assert c["weights_bytes"] == sum(blocks[i] for i in range(32, 126)) + sum(
        size for name, size in non_block.items() if name != "token_embd.weight")
    kv_per_layer = 2 * 8 * 128 * 2  # K and V, 8 KV heads of 128, F16
    assert (head["kv_bytes"], b["kv_bytes"], c["kv_bytes"]) == (0, 32 * kv_per_layer * CONTEXT,
                                                                94 * kv_per_layer * CONTEXT)
    assert plan["rpc_devices"] == 2
    assert any("--rpc alone" in w for w in split["warnings"])


def test_given_flags_keep_the_first_layers_on_the_head(models):
    model = models["gpt-oss-120b"]  # 36 blocks
    split = fs.rpc_split(model, [host("a", 64), host("b", 64), host("c", 64)], context_tokens=CONTEXT,
                         n_gpu_layers=20, tensor_split=[3, 1])
    plan = split["llama_cpp"]
    assert plan["placement"] == "given"
    assert plan["flags"]["head"] == ["--rpc", "b:50052,c:50052", "--n-gpu-layers", "20", "--tensor-split", "3,1"]
    head, b, c = plan["hosts"]
    # i_gpu_start = 36 + 1 - 20 = 17; of the 20 offloaded layers 15 on b (3/4), 5 on c with the output
    assert head["blocks"] == list(range(17))
    assert b["blocks"] == list(range(17, 32)) and c["blocks"] == list(range(32, 36)) and c["output"]


def test_a_model_bigger_than_any_host_goes_on_every_host_within_its_ram(models, profiles):
    model = models["deepseek-v3"]  # 404.6 GB; each host 192 GB
    hosts = [host("a", 192), host("b", 192), host("c", 192)]
    split = fs.rpc_split(model, hosts, context_tokens=CONTEXT, overhead_bytes=GIB4)
    assert split["llama_cpp"]["fits"] is False  # llama.cpp's default: the two workers by RAM, too full
    plan = split["suggested"]
    assert plan["fits"] and plan["rpc_devices"] == 2
    for row in plan["hosts"]:
        assert row["weights_bytes"] > 0 and row["total_bytes"] <= row["ram_bytes"]
        assert row["total_bytes"] == row["weights_bytes"] + row["kv_bytes"] + GIB4
    assert sum(r["weights_bytes"] for r in plan["hosts"]) == profiles["deepseek-v3"]["size_bytes"]
    assert sum(r["kv_bytes"] for r in plan["hosts"]) == gh.kv_cache_bytes(profiles["deepseek-v3"], CONTEXT)
    blocks = [b for r in plan["hosts"] for b in r["blocks"]]
    assert blocks == list(range(61))  # every block once, in pipeline order
    # The flags say what the plan does: -ngl and --tensor-split re-placed by llama.cpp's rule.
    flags = plan["flags"]["head"]
    ngl, counts = int(flags[flags.index("--n-gpu-layers") + 1]), flags[flags.index("--tensor-split") + 1]
    devices = llama_cpp_devices(61, ngl, [int(n) for n in counts.split(",")])
    assert [i for i, d in enumerate(devices) if d is None] == plan["hosts"][0]["blocks"]
    assert [i for i, d in enumerate(devices) if d == 0] == plan["hosts"][1]["blocks"]
    assert [i for i, d in enumerate(devices) if d == 1] == plan["hosts"][2]["blocks"] + [61]
    assert set(plan["flags"]["workers"]) == {"b", "c"}
    assert plan["flags"]["workers"]["b"] == ["numactl", "--interleave=all", "ggml-rpc-server", "-H", "b", "-p",
                                             "50052", "-t", "16"]


def test_the_suggested_flags_given_back_give_the_same_plan(models):
    model = models["deepseek-v3"]
    hosts = [host("a", 192), host("b", 192), host("c", 192)]
    suggested = fs.rpc_split(model, hosts, context_tokens=CONTEXT, overhead_bytes=GIB4)["suggested"]
    flags = suggested["flags"]["head"]
    ngl = int(flags[flags.index("--n-gpu-layers") + 1])
    counts = [int(n) for n in flags[flags.index("--tensor-split") + 1].split(",")]
    again = fs.rpc_split(model, hosts, context_tokens=CONTEXT, overhead_bytes=GIB4, n_gpu_layers=ngl,
                         tensor_split=counts)["llama_cpp"]
    assert [r["blocks"] for r in again["hosts"]] == [r["blocks"] for r in suggested["hosts"]]
    assert again["seconds_per_token"] == pytest.approx(suggested["seconds_per_token"])


def test_an_unneeded_worker_is_left_out(models):
    """405B at Q6_K (333 GB) fits two of the three 192 GB hosts: the third is not in --rpc (one hop less)."""
    split = fs.rpc_split(models["llama-3.1-405b"], [host("a", 192), host("b", 192), host("c", 192)],
                         context_tokens=CONTEXT, overhead_bytes=GIB4)
    plan = split["suggested"]
    assert plan["rpc_devices"] == 1 and plan["flags"]["head"][:2] == ["--rpc", "b:50052"]
    assert plan["hosts"][2]["blocks"] == [] and plan["hosts"][2]["weights_bytes"] == 0
    assert set(plan["flags"]["workers"]) == {"b"}
    assert "worker c: not needed (not in --rpc)" in "\n".join(sizing_report.fleet_lines(split))


def test_a_model_that_fits_the_head_is_not_split(models):
    split = fs.rpc_split(models["gpt-oss-120b"], [host("a", 192), host("b", 192)], context_tokens=CONTEXT,
                         overhead_bytes=GIB4)
    plan = split["suggested"]
    assert plan["rpc_devices"] == 0 and plan["flags"]["head"] == ["--n-gpu-layers", "0"]
    assert plan["flags"]["workers"] == {} and plan["hosts"][0]["blocks"] == list(range(36))
    assert plan["tokens_per_second"] == pytest.approx(split["single_host"]["tokens_per_second"])
    assert "suggested: no split, a holds the model alone" in "\n".join(sizing_report.fleet_lines(split))


def test_a_split_is_slower_than_one_host_with_all_the_ram(models):
    """Layers run one host after the other: on equal hosts with a free, instant network the split takes
    exactly one host's time; any real network makes it slower."""
    model = models["deepseek-v3"]
    hosts = [host("a", 192), host("b", 192), host("c", 192)]
    split = fs.rpc_split(model, hosts, context_tokens=CONTEXT, overhead_bytes=GIB4)
    single = split["single_host"]["tokens_per_second"]
    assert single == pytest.approx(tm.estimate(ONE, model, threads=16)["tokens_per_second"], rel=0.02)
    for plan in (split["llama_cpp"], split["suggested"]):
        assert plan["tokens_per_second"] < single
    ideal = fs.rpc_split(model, hosts, context_tokens=CONTEXT, overhead_bytes=GIB4, latency_s=0, link_gbps=1e12)
    assert ideal["suggested"]["tokens_per_second"] == pytest.approx(single, rel=1e-6)
    # Unequal hosts: still slower than the fastest host alone.
    fast = dict(ONE, cpu_model="AMD EPYC 9654 96-Core Processor", cores=96, threads=192)
    mixed = fs.rpc_split(model, [host("a", 192), host("big", 384, fast), host("slow", 256, None, bandwidth_gbs=100)],
                         context_tokens=CONTEXT, overhead_bytes=GIB4, latency_s=0, link_gbps=1e12)
    assert mixed["single_host"]["name"] == "big"
    assert mixed["suggested"]["tokens_per_second"] < mixed["single_host"]["tokens_per_second"]
    assert mixed["llama_cpp"]["tokens_per_second"] < mixed["suggested"]["tokens_per_second"]


def test_hop_cost_grows_with_the_hosts(models):
    model = models["qwen3-235b-a22b"]
    layers = model["layers"]
    network = []
    for workers in (1, 2, 3, 4):
        hosts = [host("h0", 192)] + [host(f"h{i}", 192) for i in range(1, workers + 1)]
        plan = fs.rpc_split(model, hosts, context_tokens=CONTEXT, n_gpu_layers=95,
                            tensor_split=[1] * workers)["llama_cpp"]
        assert plan["rpc_devices"] == workers
        assert plan["parts"]["latency"] == pytest.approx(workers * fs.DEFAULT_LATENCY_S)
        # The hidden state to the first worker, through the head between workers, the logits back
        hidden_and_logits = (2 * workers - 1) * layers["n_embd"] * 4 + layers["n_vocab"] * 4
        assert plan["wire_bytes_per_token"] >= hidden_and_logits + workers * fs.KV_PAD * 2
        network.append(plan["parts"]["latency"] + plan["parts"]["transfer"])
    assert network == sorted(network) and len(set(network)) == 4
    # The per-token network cost on 10 GbE is well under a millisecond per worker for this model.
    assert network[0] < 1e-3


def test_sliding_window_kv_is_counted_as_gpu_offload_counts_it(models):
    """gpt-oss: the SWA layers hold window + ubatch cells (padded) per slot; the total over the hosts is the
    same as gpu_offload's KV for the whole model in RAM."""
    model = models["gpt-oss-120b"]
    split = fs.rpc_split(model, [host("a", 48), host("b", 48)], context_tokens=4 * CONTEXT, parallel=4,
                         overhead_bytes=GIB4)
    plan = split["suggested"]
    in_ram = go.plan(model["layers"], vram_bytes=0, context_tokens=4 * CONTEXT, parallel=4)["ram"]["kv"]
    assert sum(r["kv_bytes"] for r in plan["hosts"]) == in_ram


def test_nothing_fits_means_no_suggestion(models):
    split = fs.rpc_split(models["deepseek-v3"], [host("a", 128), host("b", 128), host("c", 128)],
                         context_tokens=CONTEXT, overhead_bytes=GIB4)
    assert split["suggested"] is None and split["llama_cpp"]["fits"] is False
    assert "suggested: none" in "\n".join(sizing_report.fleet_lines(split))


def test_a_host_with_only_a_measured_bandwidth_reads_at_it(models):
    model = models["llama-3.1-405b"]
    split = fs.rpc_split(model, [host("a", 256, None, bandwidth_gbs=200), host("b", 256, None, bandwidth_gbs=200)],
                         context_tokens=CONTEXT, latency_s=0, link_gbps=1e12)
    # Dense model: every weight but token_embd read once per token, at 200 GB/s, whichever host holds it.
    read = model["size_bytes"] - model["layers"]["input_bytes"]
    assert split["single_host"]["tokens_per_second"] == pytest.approx(200 * GB / read)
    assert split["suggested"]["tokens_per_second"] == pytest.approx(200 * GB / read, rel=1e-6)


def test_rpc_lines_say_capacity_not_speed(models):
    split = fs.rpc_split(models["deepseek-v3"], [host("a", 192), host("b", 192), host("c", 192)],
                         context_tokens=CONTEXT, overhead_bytes=GIB4)
    lines = sizing_report.fleet_lines(split)
    assert lines[0].startswith("  RPC split  3 hosts (a: llama-server; b, c: ggml-rpc-server)")
    assert "adds capacity, not speed" in lines[0]
    assert all(line.startswith(" " * 13) for line in lines[1:])
    text = "\n".join(lines)
    assert "default: llama-server --rpc b:50052,c:50052" in text and "DOES NOT FIT" in text
    assert "suggested: llama-server " + " ".join(split["suggested"]["flags"]["head"]) in text
    assert f"predicted {split['suggested']['tokens_per_second']:.2f} tok/s" in text
    assert f"one host with all the RAM at a's speed: {split['single_host']['tokens_per_second']:.2f} tok/s" in text


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"hosts": []}, "hosts"),
    ({"hosts": [host("a", 192)]}, "hosts"),
    ({"hosts": [host("a", 192), {"name": "b", "hardware": ONE}]}, r"hosts\[1\]\.ram_bytes"),
    ({"hosts": [host("a", 192), {"name": "b", "ram_bytes": GB}]}, r"hosts\[1\] needs hardware"),
    ({"hosts": [host("a", 192), host("", 192)]}, r"hosts\[1\]\.name"),
    ({"hosts": [host("a", 192), host("a", 192)]}, "distinct names"),
    ({"hosts": [host("a", 192), host("b", 192, threads=0)]}, r"hosts\[1\]\.threads"),
    ({"hosts": [host("a", 192), host("b", 192, numa="spread")]}, r"hosts\[1\]\.numa"),
    ({"hosts": [host("a", 192), host("b", 192, None, bandwidth_gbs=-1)]}, r"hosts\[1\]\.bandwidth_gbs"),
    ({"hosts": [host("a", 192), host("b", 192, dict(ONE, cores=None))]}, "hardware.cores"),
    ({"context_tokens": -1}, "context_tokens"),
    ({"parallel": 0}, "parallel"),
    ({"overhead_bytes": -1}, "overhead_bytes"),
    ({"n_gpu_layers": -1}, "n_gpu_layers"),
    ({"tensor_split": [1, 2, 3]}, "tensor_split"),
    ({"tensor_split": [1, -1]}, "tensor_split"),
    ({"link_gbps": 0}, "link_gbps"),
    ({"latency_s": -0.001}, "latency_s"),
    ({"kv_tokens": -1}, "kv_tokens"),
])
def test_bad_rpc_input_names_the_argument(kwargs, named, models):
    arguments = {"model": models["gpt-oss-120b"], "hosts": [host("a", 192), host("b", 192), host("c", 192)],
                 "context_tokens": CONTEXT, **kwargs}
    with pytest.raises(fs.LayoutError, match=named):
        fs.rpc_split(**arguments)


def test_a_profile_without_layers_is_refused(profiles):
    with pytest.raises(fs.LayoutError, match=r"layer_bytes\(headers\)"):
        fs.rpc_split(dict(profiles["deepseek-v3"]), [host("a", 192), host("b", 192)], context_tokens=CONTEXT)
    with pytest.raises(fs.LayoutError, match="result"):
        sizing_report.fleet_lines({"kind": "box"})


def test_float_split_points_match_llama_cpp_on_awkward_proportions():
    """llama.cpp computes the split points in float: proportions that are not exact in binary still give
    every layer one device and the same boundaries as exact arithmetic would (127 layers, thirds)."""
    devices = fs._device_of_layers(126, 127, [1, 1, 1])
    assert [devices.count(i) for i in range(3)] == [43, 42, 42]
    assert devices == llama_cpp_devices(126, 127, [1, 1, 1])
    big = fs._device_of_layers(60, 61, [192 * GB, 192 * GB])
    assert big.count(0) == 31 and big.count(1) == 30 and all(d is not None for d in big)
    assert fs._device_of_layers(60, 20, [1]).count(None) == 41  # -ngl 20: blocks 0-40 on the head
