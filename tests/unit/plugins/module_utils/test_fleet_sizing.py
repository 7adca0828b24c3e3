"""fleet_sizing: per-NUMA-node instances, on the header-only files of real large models.

Expected values come from the profiles' fields and throughput_model's own estimate() where a figure must
agree with the sizing report's; never from fleet_sizing's internals.
"""

import pytest
from ansible_collections.cpu_llm.infra.plugins.module_utils import fleet_sizing as fs
from ansible_collections.cpu_llm.infra.plugins.module_utils import gguf_header as gh
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
    assert "the same layout on a one-node host" in "\n".join(fs.render_lines(view))


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
    lines = fs.render_lines(view)
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
    """KV bytes as sizing.kv_cache counts them (full layers x context + SWA layers x the window)."""
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
    with pytest.raises(fs.FleetError, match=named):
        fs.instances_view(**arguments)
    assert issubclass(fs.FleetError, ValueError)


def test_instances_lines_are_in_the_report_column(models):
    view = fs.instances_view(SEED, models["qwen3-235b-a22b"], context_tokens=4 * CONTEXT, parallel=4, threads=32,
                             overhead_bytes=GIB4)
    lines = fs.render_lines(view)
    assert lines[0].startswith("  Instances  one over all 2 NUMA node(s) (numactl --interleave, 32 threads")
    assert all(line.startswith(" " * 13) for line in lines[1:])
    text = "\n".join(lines)
    assert f"{view['interleaved']['tokens_per_second']:.2f} tok/s for 4 stream(s)" in text
    assert f"{view['per_node']['tokens_per_second']:.2f} tok/s for 8 stream(s)" in text
    assert "2 x numactl --cpunodebind=N --membind=N, 16 threads, 4 slot(s) each" in text
    assert f"one interleaved with 8 slots: {view['same_slots']['tokens_per_second']:.2f} tok/s" in text
    assert "numa 'isolate'" in text  # the per-node estimate is outside the calibration: said so
