"""The one rule for "does it fit" and "is the hardware known", and the report built on them."""

import pytest
from ansible_collections.cpu_llm.infra.plugins.module_utils import (
    gguf_header,
    gpu_offload,
    memory_fit,
    sizing,
    sizing_report,
)

SEED = {
    "cpu_model": "AMD EPYC 9124 16-Core Processor", "sockets": 2, "cores": 32, "threads": 64, "numa_nodes": 2,
    "memory_type": "DDR5", "memory_channels": 24, "memory_speed_mts": 4800, "memory_total_bytes": 412316860416,
}
DENSE = {"size_bytes": 300_000_000_000, "quant": "Q6_K"}
GIB4 = 4 * 2**30


def size(hardware, model, **options):
    """sizing.size() of a SizingRequest for this host and model."""
    return sizing.size(sizing.SizingRequest(hardware, model, **options))


def test_unknown_hardware_is_named_and_skips_the_estimate():
    container = dict(SEED, memory_channels=None, memory_speed_mts=None, dmi_status="dmidecode is not installed")
    result = size(container, DENSE, context_tokens=4096, threads=2, overhead_bytes=GIB4)
    assert result["unknowns"] == ["memory_channels", "memory_speed_mts"]
    assert result["estimate"] == {}
    assert "Tokens/s   unknown: memory_channels, memory_speed_mts unknown (dmidecode is not installed)" \
        in result["report"]
    assert sizing.hardware_unknowns(SEED) == []


def test_ram_fit_is_model_plus_kv_plus_overhead_and_one_byte_decides():
    mem = memory_fit.memory_need(DENSE, 4096, GIB4)
    assert mem["total"] == DENSE["size_bytes"] + mem["kv"] + GIB4 and mem["kv"] > 0
    exact = dict(SEED, memory_total_bytes=mem["total"])
    assert size(exact, DENSE, context_tokens=4096, threads=32, overhead_bytes=GIB4)["ram_fits"] is True
    short = dict(SEED, memory_total_bytes=mem["total"] - 1)
    result = size(short, DENSE, context_tokens=4096, threads=32, overhead_bytes=GIB4)
    assert result["ram_fits"] is False and result["fits"] is False
    assert "needs 306.3 GB of RAM" in result["failure"] and "preflight_ignore_fit" in result["failure"]
    assert "Disk" not in result["failure"]


def test_exact_kv_from_the_header_is_used_with_sliding_window_layers():
    model = dict(DENSE, kv_bytes_per_token=1000, kv_swa_bytes_per_token=10, kv_swa_window=128, kv_method="gqa+swa")
    kv, how = memory_fit.kv_cache(model, 4096)
    assert kv == 1000 * 4096 + 10 * 128
    assert "GGUF header" in how and "gqa+swa" in how
    assert memory_fit.kv_cache(model, 64)[0] == 1000 * 64 + 10 * 64


def test_disk_counts_only_what_is_missing_plus_the_margin():
    assert memory_fit.disk_need(60, 5) == 65
    assert memory_fit.disk_need(0, 5) == 5
    disk = {"free": 64, "missing": 60, "margin": 5, "path": "/srv/llm/models"}
    result = size(SEED, {"size_bytes": 100}, context_tokens=0, threads=32, disk=disk)
    assert result["disk_fits"] is False and result["fits"] is False
    assert "Disk: needs 0.0 GB free under /srv/llm/models" in result["failure"]
    assert "of RAM" not in result["failure"], "the RAM fits: the message must not blame it"
    assert size(SEED, {"size_bytes": 100}, context_tokens=0, threads=32,
                disk=dict(disk, free=65))["disk_fits"] is True


def test_report_shows_experts_and_active_bytes_for_a_moe_model():
    moe = {"size_bytes": 404_000_000_000, "active_bytes": 24_000_000_000, "expert_count": 256,
           "expert_used_count": 8, "quant": "Q4_K_M"}
    result = size(SEED, moe, context_tokens=4096, threads=32, name="deepseek-ai/DeepSeek-V3")
    assert "Experts  mixture of experts: 8 of 256 used per token, 24.00 GB read per token" in result["report"]
    dense = size(SEED, DENSE, context_tokens=4096, threads=32)
    assert result["estimate"]["tokens_per_second"] > 5 * dense["estimate"]["tokens_per_second"]


def test_warnings_from_the_facts():
    facts = dict(SEED, numa_balancing=True, smt_active=True)
    warnings = size(facts, DENSE, context_tokens=0, threads=32)["warnings"]
    assert any("numa_balancing" in w for w in warnings) and any("SMT is on" in w for w in warnings)


@pytest.mark.parametrize("model", [{}, {"size_bytes": "lots"}, {"size_bytes": -1}])
def test_bad_model_names_the_field(model):
    with pytest.raises(ValueError, match="size_bytes"):
        size(SEED, model, context_tokens=0, threads=32)


def listing(files):
    return [{"type": "file", "path": path, "size": size, "lfs": {"oid": "0" * 64, "size": size}}
            for path, size in files.items()]


def test_auto_quant_takes_the_best_that_fits_and_the_report_lists_every_candidate():
    from ansible_collections.cpu_llm.infra.plugins.module_utils.gguf_plan import quant_candidates

    repo = listing({
        "M-F16.gguf": 800 * 10**9,  # never chosen: twice Q8_0's bytes per token for nothing
        "Q8_0/M-Q8_0-00001-of-00002.gguf": 220 * 10**9, "Q8_0/M-Q8_0-00002-of-00002.gguf": 205 * 10**9,
        "M-Q6_K.gguf": 330 * 10**9,
        "M-Q4_K_M.gguf": 243 * 10**9,
        "Q3_K_M/M-Q3_K_M-00001-of-00002.gguf": 100 * 10**9,  # shard 2 missing: not a candidate
        "README.md": 10,
    })
    candidates = quant_candidates(repo)
    assert [c["quant"] for c in candidates] == ["Q8_0", "Q6_K", "Q4_K_M"]
    assert candidates[0]["size_bytes"] == 425 * 10**9 and len(candidates[0]["files"]) == 2
    chosen, table = memory_fit.choose_quant(candidates, SEED["memory_total_bytes"], {"kv_bytes_per_token": 516096},
                                            8192, GIB4)
    # Q8_0 needs 425 GB + 4.2 GB KV + 4.3 GB > 412 GB; Q6_K fits.
    assert chosen == "Q6_K"
    assert [row["fits"] for row in table] == [False, True, True]
    assert table[1]["memory_needed_bytes"] == 330 * 10**9 + 516096 * 8192 + GIB4
    assert memory_fit.choose_quant(candidates, 100 * 10**9, {"kv_bytes_per_token": 516096}, 8192, GIB4)[0] is None

    profile = {"size_bytes": 330 * 10**9, "quant": "Q6_K", "kv_bytes_per_token": 516096}
    result = size(SEED, profile, context_tokens=8192, threads=32, overhead_bytes=GIB4,
                  quant_choice={"chosen": chosen, "candidates": table})
    rows = {row["quant"]: row for row in result["quants"]}
    assert rows["Q6_K"]["chosen"] and not rows["Q8_0"]["chosen"]
    # Each candidate gets its own estimate (the seed build is compute-bound, so they differ little).
    assert all(0.5 < row["tokens_per_second"] < 5 for row in rows.values())
    assert rows["Q6_K"]["tokens_per_second"] == result["estimate"]["tokens_per_second"]
    assert "Q8_0" in result["report"] and "does not fit" in result["report"] and "<- chosen" in result["report"]


def test_auto_ranks_k_quants_above_legacy_quants_of_the_same_size():
    from ansible_collections.cpu_llm.infra.plugins.module_utils.gguf_plan import quant_candidates

    repo = listing({"M-Q4_1.gguf": 250, "M-Q4_K_M.gguf": 243, "M-Q5_1.gguf": 300, "M-Q5_K_M.gguf": 285,
                    "mmproj-M-Q8_0.gguf": 1})
    assert [c["quant"] for c in quant_candidates(repo)] == ["Q5_K_M", "Q5_1", "Q4_K_M", "Q4_1"]


def test_auto_counts_the_sliding_window_cache_too():
    candidates = [{"quant": "Q8_0", "files": ["m.gguf"], "size_bytes": 1000}]
    swa = {"kv_bytes_per_token": 10, "kv_swa_bytes_per_token": 10, "kv_swa_window": 128}
    table = memory_fit.choose_quant(candidates, 10**9, swa, 4096, 0)[1]
    assert table[0]["memory_needed_bytes"] == 1000 + 10 * 4096 + 10 * 128


TUNING = {"measured_at": "2026-11-27T19:31:43+00:00", "effective_bandwidth_bytes_per_s": 412e9,
          "tokens_per_second": {"tg": 1.37, "pp": 30.0}}


def test_a_measured_bandwidth_gives_a_second_expectation_next_to_the_dimm_arithmetic():
    result = size(SEED, DENSE, context_tokens=4096, threads=32, overhead_bytes=GIB4, tuning=TUNING)
    assert result["measured"]["tokens_per_second"] == pytest.approx(412e9 / 300e9)
    line = next(x for x in result["report"].splitlines() if x.startswith("  Measured"))
    assert "expected 1.37 tok/s from the measured 412.0 GB/s effective (autotune 2026-11-27" in line
    assert f"DIMM arithmetic says {result['estimate']['peak_bandwidth_gbs']} GB/s peak" in line


def test_a_container_without_dmi_still_gets_the_measured_expectation():
    container = dict(SEED, memory_channels=None, memory_speed_mts=None, dmi_status="dmidecode failed")
    moe = {"size_bytes": 404e9, "active_bytes": 24e9}
    result = size(container, moe, context_tokens=4096, threads=2, overhead_bytes=GIB4, tuning=TUNING)
    assert "Tokens/s   unknown" not in result["report"]  # the measurement answers it
    assert "expected 17.17 tok/s from the measured 412.0 GB/s" in result["report"]  # active bytes, not size
    assert "no DIMM arithmetic (memory layout unknown)" in result["report"]
    assert size(container, moe, context_tokens=4096, threads=2, tuning={})["measured"] is None


# --- partial GPU offload in the report (module_utils/gpu_offload.py plans; sizing shows it)

def with_layers(profiles, headers, layout):
    model = dict(profiles[layout], quant="Q4_K_M")
    model["layers"] = gguf_header.layer_bytes([headers[layout]])
    return model


RTX4090 = {"name": "NVIDIA GeForce RTX 4090", "vendor": "nvidia", "backend": "cuda", "source": "nvidia-smi",
           "type": "discrete", "vram_bytes": 24564 * 2**20, "vram_free_bytes": 24000 * 2**20}
LAVAPIPE = {"name": "llvmpipe (LLVM 15.0.6, 256 bits)", "vendor": "mesa", "backend": "vulkan",
            "source": "vulkaninfo", "type": "cpu", "vram_bytes": None, "vram_free_bytes": None}


def test_no_gpu_no_offload_lines(profiles, headers):
    result = size(dict(SEED, gpus=[LAVAPIPE]), with_layers(profiles, headers, "deepseek-v3"),
                  context_tokens=4096, threads=32)
    assert result["offload"] is None
    assert "GPU" not in result["report"]


def test_a_detected_card_gets_the_plan_and_a_prediction_from_its_data_sheet(profiles, headers):
    model = with_layers(profiles, headers, "deepseek-v3")
    result = size(dict(SEED, gpus=[LAVAPIPE, RTX4090]), model, context_tokens=4096, threads=32)
    offload = result["offload"]
    assert offload["gpu"]["vram_bytes"] == RTX4090["vram_free_bytes"]
    assert offload["gpu"]["bandwidth_gbs"] == gpu_offload.GPU_BANDWIDTH_GBS["RTX 4090"]
    # The same plan the planner gives for that VRAM, and the speed predicted from this report's CPU estimate.
    alone = gpu_offload.plan(model["layers"], vram_bytes=RTX4090["vram_free_bytes"], context_tokens=4096)
    assert offload["plan"]["args"] == alone["args"] and offload["plan"]["mode"] == "n_cpu_moe"
    assert offload["prediction"]["cpu_only_tokens_per_second"] == result["estimate"]["tokens_per_second"]
    assert offload["prediction"]["speedup"] > 1
    assert " ".join(alone["args"]) in result["report"]
    assert "NVIDIA GeForce RTX 4090: " in result["report"]


def test_a_budget_plans_without_a_card_and_an_unknown_card_gets_no_prediction(profiles, headers):
    model = with_layers(profiles, headers, "llama-3.1-405b")
    small = size(SEED, model, context_tokens=4096, threads=32, gpu_vram_bytes=16 * 10**9)
    large = size(SEED, model, context_tokens=4096, threads=32, gpu_vram_bytes=80 * 10**9)
    assert small["offload"]["gpu"]["how"] == "the given budget"
    assert 0 < small["offload"]["plan"]["ngl"] < large["offload"]["plan"]["ngl"]
    assert small["offload"]["prediction"] is None and "no speed prediction" in small["report"]
    given = size(SEED, model, context_tokens=4096, threads=32, gpu_vram_bytes=16 * 10**9, gpu_bandwidth_gbs=936)
    assert given["offload"]["prediction"]["tokens_per_second"] > given["estimate"]["tokens_per_second"]


def test_no_per_layer_bytes_no_offload(profiles):
    result = size(dict(SEED, gpus=[RTX4090]), dict(profiles["deepseek-v3"]), context_tokens=4096, threads=32)
    assert result["offload"] is None


def test_a_bad_budget_names_the_setting(profiles, headers):
    with pytest.raises(sizing.SizingError, match="vram_bytes"):
        size(SEED, with_layers(profiles, headers, "deepseek-v3"), context_tokens=4096, threads=32,
             gpu_vram_bytes=-1)


def test_known_bandwidth_reads_the_longest_name_first():
    assert gpu_offload.known_bandwidth_gbs("NVIDIA H100 PCIe") == gpu_offload.GPU_BANDWIDTH_GBS["H100 PCIe"]
    assert gpu_offload.known_bandwidth_gbs("NVIDIA H100 80GB HBM3") == gpu_offload.GPU_BANDWIDTH_GBS["H100"]
    assert gpu_offload.known_bandwidth_gbs("Some Card") is None


# --- the fleet parts: per-NUMA-node layouts and the RPC split (module_utils/fleet_sizing.py computes; sizing
# shows them and, on an RPC head, takes the split's fit)

GB = 10**9
# One socket of the seed's box: one NUMA node, 192 GB (test_fleet_sizing.py's ONE).
ONE = dict(SEED, sockets=1, cores=16, threads=32, numa_nodes=1, memory_channels=12, memory_total_bytes=192 * GB)


def test_layouts_show_aggregate_tokens_for_the_slots_on_two_nodes(profiles, headers):
    from ansible_collections.cpu_llm.infra.plugins.module_utils import fleet_sizing

    model = with_layers(profiles, headers, "qwen3-235b-a22b")
    result = size(SEED, model, context_tokens=4 * 4096, threads=32, overhead_bytes=GIB4, parallel=4)
    alone = fleet_sizing.instances_view(SEED, model, context_tokens=4 * 4096, parallel=4, threads=32,
                                        overhead_bytes=GIB4)
    assert result["layouts"]["per_node"]["tokens_per_second"] == alone["per_node"]["tokens_per_second"]
    lines = result["report"].splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("  Instances  "))
    assert lines[at:at + len(sizing_report.fleet_lines(alone))] == sizing_report.fleet_lines(alone)
    assert f"{alone['interleaved']['tokens_per_second']:.2f} tok/s for 4 stream(s)" in lines[at]
    best = alone["per_node"]["tokens_per_second"]
    how = next(line for line in lines if line.startswith("             how: throughput_model per layout"))
    assert f"likely {best * 0.95:.2f}-{best * 1.05:.2f} tok/s for the per node layout" in how
    assert any("ASSUMED, not calibrated on a measured batch sweep" in line for line in lines)
    assert result["rpc"] is None and result["fits"] is True


def test_layouts_are_left_out_where_they_would_repeat_the_tokens_line(profiles, headers):
    model = with_layers(profiles, headers, "qwen3-235b-a22b")
    one_slot = size(ONE, model, context_tokens=4096, threads=16, overhead_bytes=GIB4, parallel=1)
    assert one_slot["layouts"] is None and "Instances" not in one_slot["report"]
    # One node, four slots: the slots' aggregate is new, and the per-node line says it is the same layout.
    four = size(ONE, model, context_tokens=4 * 4096, threads=16, overhead_bytes=GIB4, parallel=4)
    assert "the same layout on a one-node host" in four["report"]
    assert four["layouts"]["interleaved"]["tokens_per_second"] > four["estimate"]["tokens_per_second"]
    # No speed estimate (a container without DMI): no layouts either, the Tokens/s line says what is missing.
    container = dict(SEED, memory_channels=None, memory_speed_mts=None)
    assert size(container, model, context_tokens=4096, threads=2, parallel=4)["layouts"] is None
    with pytest.raises(sizing.SizingError, match="parallel"):
        size(SEED, model, context_tokens=4096, threads=32, parallel=0)


def worker(address, hardware):
    return {"endpoint": f"{address}:50052", "hardware": hardware, "how": "preflight_rpc_worker_hardware"}


def test_a_model_too_big_for_the_head_that_fits_head_and_workers_goes_on(profiles, headers):
    """DeepSeek-V3 Q4_K_M (404.6 GB + KV + 4 GiB) on a 192 GB head: stopped alone, fits over three hosts."""
    model = with_layers(profiles, headers, "deepseek-v3")
    alone = size(ONE, model, context_tokens=4096, threads=16, overhead_bytes=GIB4, name="DeepSeek-V3")
    assert alone["ram_fits"] is False and alone["fits"] is False
    workers = [worker("10.0.1.21", {"memory_total_bytes": 192 * GB}), worker("10.0.1.22", dict(ONE))]
    # As configured by default (llama.cpp's: every layer on the workers) the two workers cannot hold it all:
    # stopped, naming the value that fits (the suggested --n-gpu-layers).
    default = size(ONE, model, context_tokens=4096, threads=16, overhead_bytes=GIB4, name="DeepSeek-V3",
                   host="llm-1", rpc_workers=workers)
    suggested = default["rpc"]["split"]["suggested"]["flags"]["head"]
    layers = int(suggested[suggested.index("--n-gpu-layers") + 1])
    assert default["fits"] is False and default["rpc"]["any_fits"] is True
    assert f"Set llama_server_rpc_layers: {layers} on the head" in default["failure"]
    assert "as configured (llama_server_rpc_layers -1" in default["failure"]
    split = size(ONE, model, context_tokens=4096, threads=16, overhead_bytes=GIB4, name="DeepSeek-V3",
                 host="llm-1", rpc_workers=workers, rpc_layers=layers)
    assert split["ram_fits"] is False, "the head alone still does not hold it: the RAM line says so"
    assert split["rpc"]["fits"] is True and split["fits"] is True and split["failure"] == ""
    suggested = split["rpc"]["split"]["suggested"]
    assert all(row["fits"] and row["total_bytes"] <= row["ram_bytes"] for row in suggested["hosts"])
    assert sum(row["weights_bytes"] for row in suggested["hosts"]) == split["rpc"]["split"]["model_bytes"]
    report = split["report"]
    assert "  RPC split  3 hosts (llm-1: llama-server; 10.0.1.21, 10.0.1.22: ggml-rpc-server)" in report
    assert "suggested: llama-server " + " ".join(suggested["flags"]["head"]) in report
    assert f"predicted {suggested['tokens_per_second']:.2f} tok/s" in report and "round trip(s)" in report
    assert "ASSUMED, not measured" in report and "the held-out error on the hosts' part" in report
    assert "assumed: 10.0.1.21:50052 built like the head" in report  # only its RAM was given
    assert f"fit: the split's as the service loads it (llama_server_rpc_layers {layers}), not the RAM line's: " \
           "fits every host" in report
    assert "Instances" not in report, "an RPC head shows the split, not one host's per-node layouts"
    # The split's speed is the sum of the hosts' shares and the network: below the head's own estimate.
    assert suggested["tokens_per_second"] < split["estimate"]["tokens_per_second"]


def test_a_model_bigger_than_head_and_workers_is_stopped_naming_the_split(profiles, headers):
    model = with_layers(profiles, headers, "deepseek-v3")
    result = size(ONE, model, context_tokens=4096, threads=16, overhead_bytes=GIB4, name="DeepSeek-V3",
                  host="llm-1", rpc_workers=[worker("10.0.1.21", {"memory_total_bytes": 192 * GB})])
    assert result["rpc"]["fits"] is False and result["fits"] is False
    assert "suggested: none; the hosts' RAM cannot hold the model + KV + overhead" in result["report"]
    failure = result["failure"]
    assert failure.startswith("DeepSeek-V3 does not fit its RPC split: 404.6 GB of weights")
    assert "head llm-1 192.0 GB, worker 10.0.1.21 192.0 GB; 384.0 GB in all" in failure
    assert "preflight_rpc_workers" in failure and "preflight_ignore_fit" in failure
    assert "of RAM (model" not in failure, "the head-alone message is not the reason on an RPC head"


def test_the_split_fit_is_computed_without_a_speed_when_the_layout_is_unknown(profiles, headers):
    model = with_layers(profiles, headers, "deepseek-v3")
    container = dict(ONE, memory_channels=None, memory_speed_mts=None)
    workers = [worker(f"10.0.1.2{i}", {"memory_total_bytes": 192 * GB}) for i in (1, 2)]
    result = size(container, model, context_tokens=4096, threads=2, overhead_bytes=GIB4, host="llm-1",
                  rpc_workers=workers, rpc_layers=40)
    assert result["fits"] is True and result["rpc"]["speed_unknowns"]
    rpc = result["report"].split("  RPC split")[1]
    assert "tok/s" not in rpc and "ms/token" not in rpc
    assert "speed: unknown (llm-1 memory_channels" in rpc and "preflight_rpc_worker_hardware" in rpc


def test_without_workers_the_report_and_fit_are_the_single_hosts(profiles, headers):
    model = with_layers(profiles, headers, "deepseek-v3")
    before = size(ONE, model, context_tokens=4096, threads=16, overhead_bytes=GIB4, name="m")
    for empty in (None, []):
        after = size(ONE, model, context_tokens=4096, threads=16, overhead_bytes=GIB4, name="m",
                     rpc_workers=empty, parallel=1)
        assert (after["report"], after["fits"], after["failure"]) == (before["report"], before["fits"],
                                                                     before["failure"])
    assert "needs 409.1 GB of RAM" in before["failure"]


def test_no_split_without_the_header_the_fit_is_the_heads(profiles):
    result = size(ONE, dict(profiles["deepseek-v3"]), context_tokens=4096, threads=16, overhead_bytes=GIB4,
                  rpc_workers=[worker("10.0.1.21", {"memory_total_bytes": 1000 * GB})])
    assert result["rpc"]["split"] is None and result["fits"] is False
    assert "RPC split  not computed: the model's per-layer bytes are unknown" in result["report"]


def test_a_worker_without_a_memory_size_names_the_setting(profiles, headers):
    model = with_layers(profiles, headers, "deepseek-v3")
    gone = {"endpoint": "10.0.1.21:50052", "hardware": {}, "how": "no inventory host has the address 10.0.1.21"}
    with pytest.raises(sizing.SizingError,
                       match=r"10\.0\.1\.21:50052.*no inventory host.*preflight_rpc_worker_hardware"):
        size(ONE, model, context_tokens=4096, threads=16, rpc_workers=[gone])


def test_worker_hardware_comes_from_what_is_given_else_the_inventory():
    endpoints = ["10.0.1.21:50052", "10.0.1.22:50052", "rpc-3:50052", "10.0.1.24:50052"]
    inventory = {
        "rpc-1": {"ansible_host": "10.0.1.21", "llm_hardware": dict(ONE)},
        "rpc-2": {"endpoint": "10.0.1.22:50052", "memtotal_mb": 196608, "processor_cores": 16, "processor_count": 1},
        "rpc-3": {},
        "llm-1": {"ansible_host": "10.0.1.11", "llm_hardware": dict(SEED)},
    }
    found = sizing.worker_hardware(endpoints, [], inventory)
    assert [w["hardware"].get("memory_total_bytes") for w in found] == [192 * GB, 196608 * 2**20, None, None]
    assert found[0]["how"] == "llm_hardware facts of rpc-1"
    assert found[1]["hardware"] == {"memory_total_bytes": 196608 * 2**20, "cores": 16, "sockets": 1}
    assert found[2]["how"] == "inventory host rpc-3 has no facts in this run"
    assert found[3]["how"] == "no inventory host has the address 10.0.1.24"
    given = sizing.worker_hardware(endpoints[:1], [{"memory_total_bytes": 5}], inventory)
    assert given == [{"endpoint": endpoints[0], "hardware": {"memory_total_bytes": 5},
                      "how": "preflight_rpc_worker_hardware"}]
    with pytest.raises(sizing.SizingError, match="preflight_rpc_worker_hardware must list one entry per worker"):
        sizing.worker_hardware(endpoints, [{"memory_total_bytes": 5}], inventory)


def test_size_takes_one_request_whose_options_are_named():
    request = sizing.SizingRequest(SEED, DENSE, context_tokens=4096, threads=32, overhead_bytes=GIB4, parallel=2)
    assert sizing.size(request) == size(SEED, DENSE, context_tokens=4096, threads=32, overhead_bytes=GIB4, parallel=2)
    with pytest.raises(TypeError):
        sizing.SizingRequest(SEED, DENSE, 4096, 32)  # the options are keywords: no positional mix-up
    with pytest.raises(sizing.SizingError, match="SizingRequest"):
        sizing.size(SEED)
