"""The one rule for "does it fit" and "is the hardware known", and the report built on them."""

import pytest
from ansible_collections.cpu_llm.infra.plugins.module_utils import gguf_header, gpu_offload, sizing

SEED = {
    "cpu_model": "AMD EPYC 9124 16-Core Processor", "sockets": 2, "cores": 32, "threads": 64, "numa_nodes": 2,
    "memory_type": "DDR5", "memory_channels": 24, "memory_speed_mts": 4800, "memory_total_bytes": 412316860416,
}
DENSE = {"size_bytes": 300_000_000_000, "quant": "Q6_K"}
GIB4 = 4 * 2**30


def test_unknown_hardware_is_named_and_skips_the_estimate():
    container = dict(SEED, memory_channels=None, memory_speed_mts=None, dmi_status="dmidecode is not installed")
    result = sizing.size(container, DENSE, context_tokens=4096, threads=2, overhead_bytes=GIB4)
    assert result["unknowns"] == ["memory_channels", "memory_speed_mts"]
    assert result["estimate"] == {}
    assert "Tokens/s   unknown: memory_channels, memory_speed_mts unknown (dmidecode is not installed)" \
        in result["report"]
    assert sizing.hardware_unknowns(SEED) == []


def test_ram_fit_is_model_plus_kv_plus_overhead_and_one_byte_decides():
    mem = sizing.memory_need(DENSE, 4096, GIB4)
    assert mem["total"] == DENSE["size_bytes"] + mem["kv"] + GIB4 and mem["kv"] > 0
    exact = dict(SEED, memory_total_bytes=mem["total"])
    assert sizing.size(exact, DENSE, context_tokens=4096, threads=32, overhead_bytes=GIB4)["ram_fits"] is True
    short = dict(SEED, memory_total_bytes=mem["total"] - 1)
    result = sizing.size(short, DENSE, context_tokens=4096, threads=32, overhead_bytes=GIB4)
    assert result["ram_fits"] is False and result["fits"] is False
    assert "needs 306.3 GB of RAM" in result["failure"] and "preflight_ignore_fit" in result["failure"]
    assert "Disk" not in result["failure"]


def test_exact_kv_from_the_header_is_used_with_sliding_window_layers():
    model = dict(DENSE, kv_bytes_per_token=1000, kv_swa_bytes_per_token=10, kv_swa_window=128, kv_method="gqa+swa")
    kv, how = sizing.kv_cache(model, 4096)
    assert kv == 1000 * 4096 + 10 * 128
    assert "GGUF header" in how and "gqa+swa" in how
    assert sizing.kv_cache(model, 64)[0] == 1000 * 64 + 10 * 64


def test_disk_counts_only_what_is_missing_plus_the_margin():
    assert sizing.disk_need(60, 5) == 65
    assert sizing.disk_need(0, 5) == 5
    disk = {"free": 64, "missing": 60, "margin": 5, "path": "/srv/llm/models"}
    result = sizing.size(SEED, {"size_bytes": 100}, context_tokens=0, threads=32, disk=disk)
    assert result["disk_fits"] is False and result["fits"] is False
    assert "Disk: needs 0.0 GB free under /srv/llm/models" in result["failure"]
    assert "of RAM" not in result["failure"], "the RAM fits: the message must not blame it"
    assert sizing.size(SEED, {"size_bytes": 100}, context_tokens=0, threads=32,
                       disk=dict(disk, free=65))["disk_fits"] is True


def test_report_shows_experts_and_active_bytes_for_a_moe_model():
    moe = {"size_bytes": 404_000_000_000, "active_bytes": 24_000_000_000, "expert_count": 256,
           "expert_used_count": 8, "quant": "Q4_K_M"}
    result = sizing.size(SEED, moe, context_tokens=4096, threads=32, name="deepseek-ai/DeepSeek-V3")
    assert "Experts  mixture of experts: 8 of 256 used per token, 24.00 GB read per token" in result["report"]
    dense = sizing.size(SEED, DENSE, context_tokens=4096, threads=32)
    assert result["estimate"]["tokens_per_second"] > 5 * dense["estimate"]["tokens_per_second"]


def test_warnings_from_the_facts():
    facts = dict(SEED, numa_balancing=True, smt_active=True)
    warnings = sizing.size(facts, DENSE, context_tokens=0, threads=32)["warnings"]
    assert any("numa_balancing" in w for w in warnings) and any("SMT is on" in w for w in warnings)


@pytest.mark.parametrize("model", [{}, {"size_bytes": "lots"}, {"size_bytes": -1}])
def test_bad_model_names_the_field(model):
    with pytest.raises(ValueError, match="size_bytes"):
        sizing.size(SEED, model, context_tokens=0, threads=32)


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
    chosen, table = sizing.choose_quant(candidates, SEED["memory_total_bytes"], {"kv_bytes_per_token": 516096}, 8192,
                                        GIB4)
    # Q8_0 needs 425 GB + 4.2 GB KV + 4.3 GB > 412 GB; Q6_K fits.
    assert chosen == "Q6_K"
    assert [row["fits"] for row in table] == [False, True, True]
    assert table[1]["memory_needed_bytes"] == 330 * 10**9 + 516096 * 8192 + GIB4
    assert sizing.choose_quant(candidates, 100 * 10**9, {"kv_bytes_per_token": 516096}, 8192, GIB4)[0] is None

    profile = {"size_bytes": 330 * 10**9, "quant": "Q6_K", "kv_bytes_per_token": 516096}
    result = sizing.size(SEED, profile, context_tokens=8192, threads=32, overhead_bytes=GIB4,
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
    table = sizing.choose_quant(candidates, 10**9, swa, 4096, 0)[1]
    assert table[0]["memory_needed_bytes"] == 1000 + 10 * 4096 + 10 * 128


TUNING = {"measured_at": "2026-11-27T19:31:43+00:00", "effective_bandwidth_bytes_per_s": 412e9,
          "tokens_per_second": {"tg": 1.37, "pp": 30.0}}


def test_a_measured_bandwidth_gives_a_second_expectation_next_to_the_dimm_arithmetic():
    result = sizing.size(SEED, DENSE, context_tokens=4096, threads=32, overhead_bytes=GIB4, tuning=TUNING)
    assert result["measured"]["tokens_per_second"] == pytest.approx(412e9 / 300e9)
    line = next(x for x in result["report"].splitlines() if x.startswith("  Measured"))
    assert "expected 1.37 tok/s from the measured 412.0 GB/s effective (autotune 2026-11-27" in line
    assert f"DIMM arithmetic says {result['estimate']['peak_bandwidth_gbs']} GB/s peak" in line


def test_a_container_without_dmi_still_gets_the_measured_expectation():
    container = dict(SEED, memory_channels=None, memory_speed_mts=None, dmi_status="dmidecode failed")
    moe = {"size_bytes": 404e9, "active_bytes": 24e9}
    result = sizing.size(container, moe, context_tokens=4096, threads=2, overhead_bytes=GIB4, tuning=TUNING)
    assert "Tokens/s   unknown" not in result["report"]  # the measurement answers it
    assert "expected 17.17 tok/s from the measured 412.0 GB/s" in result["report"]  # active bytes, not size
    assert "no DIMM arithmetic (memory layout unknown)" in result["report"]
    assert sizing.size(container, moe, context_tokens=4096, threads=2, tuning={})["measured"] is None


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
    result = sizing.size(dict(SEED, gpus=[LAVAPIPE]), with_layers(profiles, headers, "deepseek-v3"),
                         context_tokens=4096, threads=32)
    assert result["offload"] is None
    assert "GPU" not in result["report"]


def test_a_detected_card_gets_the_plan_and_a_prediction_from_its_data_sheet(profiles, headers):
    model = with_layers(profiles, headers, "deepseek-v3")
    result = sizing.size(dict(SEED, gpus=[LAVAPIPE, RTX4090]), model, context_tokens=4096, threads=32)
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
    small = sizing.size(SEED, model, context_tokens=4096, threads=32, gpu_vram_bytes=16 * 10**9)
    large = sizing.size(SEED, model, context_tokens=4096, threads=32, gpu_vram_bytes=80 * 10**9)
    assert small["offload"]["gpu"]["how"] == "the given budget"
    assert 0 < small["offload"]["plan"]["ngl"] < large["offload"]["plan"]["ngl"]
    assert small["offload"]["prediction"] is None and "no speed prediction" in small["report"]
    given = sizing.size(SEED, model, context_tokens=4096, threads=32, gpu_vram_bytes=16 * 10**9, gpu_bandwidth_gbs=936)
    assert given["offload"]["prediction"]["tokens_per_second"] > given["estimate"]["tokens_per_second"]


def test_no_per_layer_bytes_no_offload(profiles):
    result = sizing.size(dict(SEED, gpus=[RTX4090]), dict(profiles["deepseek-v3"]), context_tokens=4096, threads=32)
    assert result["offload"] is None


def test_a_bad_budget_names_the_setting(profiles, headers):
    with pytest.raises(sizing.SizingError, match="vram_bytes"):
        sizing.size(SEED, with_layers(profiles, headers, "deepseek-v3"), context_tokens=4096, threads=32,
                    gpu_vram_bytes=-1)


def test_known_bandwidth_reads_the_longest_name_first():
    assert gpu_offload.known_bandwidth_gbs("NVIDIA H100 PCIe") == gpu_offload.GPU_BANDWIDTH_GBS["H100 PCIe"]
    assert gpu_offload.known_bandwidth_gbs("NVIDIA H100 80GB HBM3") == gpu_offload.GPU_BANDWIDTH_GBS["H100"]
    assert gpu_offload.known_bandwidth_gbs("Some Card") is None
