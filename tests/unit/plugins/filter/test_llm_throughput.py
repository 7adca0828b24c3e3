"""llm_throughput: held-out calibration targets, the physics it must respect, and bad input."""

import json
import math
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.cpu_llm.infra.plugins.filter.llm_throughput import (
    FilterModule,
    llm_gguf_quant,
    llm_kv_cache_bytes,
)
from ansible_collections.cpu_llm.infra.plugins.filter.llm_throughput import llm_throughput as throughput
from ansible_collections.cpu_llm.infra.plugins.module_utils import throughput_model

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures"
RAW = [json.loads((FIXTURES / name).read_text()) for name in ("throughput_calibration.json", "throughput_more.json")]
POINTS = throughput_model.calibration_points(*RAW)

SEED = {"cpu_model": "AMD EPYC 9124 16-Core Processor", "sockets": 2, "cores": 32, "numa_nodes": 2,
        "memory_channels": 24, "memory_speed_mts": 4800, "memory_total_bytes": 384 << 30}
MODEL = {"size_bytes": 300e9, "quant": "Q6_K"}
# DeepSeek-V3-shaped profile (671B, 37B active, 8 of 256 experts) at ~4.85 bits per weight.
DEEPSEEK = {"architecture": "deepseek2", "params": 671e9, "size_bytes": 407e9, "active_bytes": 21.9e9,
            "active_params": 37e9, "n_layer": 61, "n_embd": 7168, "n_head": 128, "n_head_kv": 128,
            "expert_count": 256, "expert_used_count": 8, "kv_bytes_per_token": 70272,
            "quant_mix": {"Q4_K": 330e9, "Q6_K": 77e9}, "dense": False}


@pytest.fixture(scope="module")
def held_out():
    return throughput_model.leave_one_out(POINTS)


def test_every_fixture_point_says_whether_it_calibrates_mainline_and_why():
    for fixture in RAW:
        for point in fixture["points"]:
            assert isinstance(point.get("use"), bool) and len(point.get("why", "")) > 20, point["source"]
    assert len(POINTS) >= 10


def test_held_out_error_targets(held_out):
    """Each point predicted with constants refitted without it: the targets of issue #11."""
    summary = throughput_model.error_summary(held_out)
    assert summary["points"] == len(POINTS)
    assert summary["median_abs_error"] <= 0.15
    assert summary["within_40"] >= 0.80
    assert summary["max_ratio"] < 2.0


def test_module_constants_are_what_the_fixtures_give(held_out):
    """FITTED, the range percentiles and the coverage are recomputed here: a fixture change cannot leave them stale."""
    assert throughput_model.fit(POINTS) == throughput_model.FITTED
    low, high = throughput_model.ratio_percentiles(held_out)
    assert (throughput_model.LOO_RATIO_P10, throughput_model.LOO_RATIO_P90) == (round(low, 2), round(high, 2))
    assert throughput_model.coverage(POINTS) == throughput_model.CALIBRATION_COVERAGE


def test_fit_moves_with_the_data():
    """fit() really fits: on points whose measurements are halved, the barrier or expert constant moves."""
    slower = [dict(p, measured=p["measured"] / 2) for p in POINTS]
    assert throughput_model.fit(slower) != throughput_model.fit(POINTS)


def test_beats_the_naive_formula(held_out):
    """peak / bytes is right on dual-channel desktops and far off on servers; the model must win held out."""
    naive = []
    for p in POINTS:
        peak = p["hardware"]["memory_channels"] * p["hardware"]["memory_speed_mts"] * 8e6
        naive.append(p["measured"] / (peak / throughput_model.model_profile(p["model"])["active"]))
    ours, base = throughput_model.error_summary(held_out), throughput_model.error_summary(naive)
    assert ours["median_abs_error"] < base["median_abs_error"] / 3
    assert ours["max_ratio"] < base["max_ratio"]


def test_result_keys_and_consistency():
    result = throughput(SEED, MODEL)
    for key in ("peak_bandwidth_gbs", "effective_bandwidth_gbs", "tokens_per_second", "tokens_per_second_ceiling",
                "seconds_per_token", "bound", "warnings"):
        assert key in result
    assert result["peak_bandwidth_gbs"] == 921.6
    assert result["effective_bandwidth_gbs"] < result["peak_bandwidth_gbs"]
    assert result["tokens_per_second"] < result["tokens_per_second_ceiling"]
    assert result["seconds_per_token"] == pytest.approx(1 / result["tokens_per_second"], rel=1e-3)
    assert result["bound"] in ("memory", "compute")
    assert "fits_in_memory" not in result, "RAM fit has one rule: module_utils/memory_fit.py"
    # The seed thread's claim: 1-2 tokens/s for a 400B Q6_K model on this build.
    assert 1.0 <= result["tokens_per_second"] <= 2.5


def test_more_channels_faster_and_empty_channels_warned():
    half = throughput(dict(SEED, memory_channels=12), MODEL)
    full = throughput(SEED, MODEL)
    assert half["tokens_per_second"] < full["tokens_per_second"]
    assert any("12 of 24 memory channels" in w for w in half["warnings"])


def test_numa_placement_order_on_two_sockets():
    speeds = {mode: throughput(SEED, MODEL, numa=mode)["tokens_per_second"] for mode in
              ("interleave", "distribute", "isolate", "none")}
    assert speeds["interleave"] > speeds["isolate"] > speeds["none"]
    assert any("numactl --interleave" in w for w in throughput(SEED, MODEL, numa="none")["warnings"])


def test_single_socket_numa_modes_agree():
    one = dict(SEED, sockets=1, cores=16, numa_nodes=1, memory_channels=12)
    speeds = {throughput(one, MODEL, numa=m)["tokens_per_second"] for m in ("interleave", "distribute", "none")}
    assert len(speeds) == 1


def test_moe_active_bytes_drive_the_estimate():
    """A 671B MoE with 37B active is far faster than a dense model of the same size, and slower than a dense
    model of its active size (routing nodes and expert reads cost something)."""
    dense_same_size = dict(DEEPSEEK, active_bytes=DEEPSEEK["size_bytes"] * 0.99, active_params=660e9,
                           expert_count=0, expert_used_count=0, dense=True)
    dense_active_size = dict(dense_same_size, size_bytes=DEEPSEEK["active_bytes"] / 0.99,
                             active_bytes=DEEPSEEK["active_bytes"], active_params=37e9)
    moe = throughput(SEED, DEEPSEEK)["tokens_per_second"]
    assert moe > 8 * throughput(SEED, dense_same_size)["tokens_per_second"]
    assert moe < throughput(SEED, dense_active_size)["tokens_per_second"]
    fewer_experts = throughput(SEED, dict(DEEPSEEK, expert_used_count=4))["tokens_per_second"]
    assert fewer_experts > moe  # fewer routing nodes per layer


def test_range_contains_the_estimate():
    for model in (MODEL, DEEPSEEK):
        result = throughput(SEED, model)
        assert result["tokens_per_second_low"] < result["tokens_per_second"] < result["tokens_per_second_high"]


def test_inside_the_calibration_no_coverage_warning():
    # numa distribute on two sockets is calibrated (llama.cpp #11744); interleave is not (see the next test).
    result = throughput(SEED, DEEPSEEK, numa="distribute")
    assert not [w for w in result["warnings"] if w.startswith("Outside the calibration")], result["warnings"]


@pytest.mark.parametrize(("hardware", "model", "options", "expected"), [
    (SEED, MODEL, {"threads": 2}, "2 threads"),
    (dict(SEED, sockets=4, numa_nodes=4), MODEL, {}, "4 sockets"),
    (dict(SEED, memory_type="DDR3"), MODEL, {}, "DDR3 memory"),
    (dict(SEED, cpu_model="Ampere Altra Max M128-30"), MODEL, {}, "CPU vendor"),
    (SEED, {"size_bytes": 1.5e12, "quant": "Q8_0"}, {}, "GB of weights per token"),
    (SEED, dict(DEEPSEEK, expert_count=512, expert_used_count=4), {}, "4 of 512 experts"),
    (SEED, {"size_bytes": 19e9, "quant": "IQ2_XXS"}, {}, "quant type IQ2_XXS"),
    (SEED, MODEL, {"numa": "isolate"}, "numa 'isolate' on 2 sockets"),
    (SEED, MODEL, {}, "numa 'interleave' on 2 sockets"),
])
def test_outside_the_calibration_is_warned(hardware, model, options, expected):
    warnings = throughput(hardware, model, **options)["warnings"]
    assert any(w.startswith("Outside the calibration") and expected in w for w in warnings), warnings


def test_old_style_model_dicts_still_work_and_say_so():
    result = throughput(SEED, MODEL)
    assert 1.0 <= result["tokens_per_second"] <= 2.5
    assert any("No model profile" in w for w in result["warnings"])
    assert throughput(SEED, {"size_gb": 300, "quant": "Q6_K"})["tokens_per_second"] == result["tokens_per_second"]
    with_shape = throughput(SEED, dict(MODEL, params=400e9, layers=126))
    assert with_shape["tokens_per_second"] > 0
    old_moe = throughput(SEED, {"size_bytes": 400e9, "active_bytes": 20e9, "quant": "Q4_K_M"})
    assert any("Mixture-of-experts counts unknown" in w for w in old_moe["warnings"])


def test_profile_kv_bytes_drive_the_kv_cache():
    assert llm_kv_cache_bytes(DEEPSEEK, 1000) == 70272 * 1000
    slower = throughput(SEED, DEEPSEEK, context=32768)
    assert slower["bytes_per_token"] == math.floor(21.9e9 + 70272 * 32768)


def test_mixture_of_experts_reads_only_active_bytes():
    dense = throughput(SEED, {"size_bytes": 400e9, "quant": "Q4_K_M"})
    moe = throughput(SEED, {"size_bytes": 400e9, "active_bytes": 20e9, "quant": "Q4_K_M"})
    assert moe["tokens_per_second"] > 5 * dense["tokens_per_second"]


def test_low_bit_quant_on_few_cores_is_compute_bound():
    desktop = {"cpu_model": "AMD Ryzen 9 7950X 16-Core Processor", "sockets": 1, "cores": 16, "numa_nodes": 1,
               "memory_channels": 2, "memory_speed_mts": 6000, "cpu_flags": ["avx2", "avx512f"]}
    result = throughput(desktop, {"size_bytes": 19e9, "quant": "IQ2_XXS"}, threads=4)
    assert result["bound"] == "compute"
    assert any("Compute-bound" in w for w in result["warnings"])


def test_smt_threads_and_downclocked_dimms_are_warned():
    result = throughput(dict(SEED, memory_speed_mts=4400, memory_speed_rated_mts=4800), MODEL, threads=64)
    joined = " ".join(result["warnings"])
    assert "exceeds the 32 physical cores" in joined and "below their rated 4800" in joined


def test_context_adds_kv_reads():
    q8 = {"size_bytes": 75e9, "quant": "Q8_0"}
    assert throughput(SEED, q8)["bound"] == "memory"
    assert throughput(SEED, q8, context=32768)["tokens_per_second"] < throughput(SEED, q8)["tokens_per_second"]
    assert llm_kv_cache_bytes(MODEL, 8192) == 2 * llm_kv_cache_bytes(MODEL, 4096) > 0


@pytest.mark.parametrize(
    ("hardware", "model", "options", "message"),
    [
        ({k: v for k, v in SEED.items() if k != "memory_channels"}, MODEL, {}, "hardware.memory_channels is required"),
        (dict(SEED, memory_speed_mts=-4800), MODEL, {}, "hardware.memory_speed_mts must be >= 1"),
        (dict(SEED, cores="many"), MODEL, {}, "hardware.cores must be a number"),
        (SEED, {"quant": "Q6_K"}, {}, "model.size_bytes is required"),
        (SEED, {"size_bytes": -1}, {}, "model.size_bytes must be >= 1"),
        (SEED, MODEL, {"numa": "spread"}, "numa must be one of interleave, distribute, isolate, none"),
        (SEED, MODEL, {"threads": 0}, "options.threads must be >= 1"),
        ("not a dict", MODEL, {}, "hardware must be a dict"),
        (SEED, "not a dict", {}, "model must be a dict"),
        (SEED, dict(DEEPSEEK, n_layer="sixty"), {}, "model.n_layer must be a number"),
        (SEED, dict(DEEPSEEK, active_bytes=500e9), {}, "model.active_bytes .* must not exceed model.size_bytes"),
        (SEED, dict(DEEPSEEK, expert_used_count=300), {}, "model.expert_used_count .* must not exceed"),
        (SEED, dict(DEEPSEEK, kv_bytes_per_token=-1), {}, "model.kv_bytes_per_token must be >= 0"),
        (SEED, {"size_gb": -3}, {}, "model.size_gb must be >= 1e-09"),
    ],
)
def test_bad_input_names_the_field(hardware, model, options, message):
    with pytest.raises(AnsibleFilterError, match=message):
        throughput(hardware, model, **options)


def test_registered_as_filters():
    assert set(FilterModule().filters()) == {"llm_throughput", "llm_kv_cache_bytes", "llm_gguf_quant"}


@pytest.mark.parametrize(("name", "quant"), [
    ("SmolLM2-135M-Instruct-Q6_K-00001-of-00003.gguf", "Q6_K"),
    ("Meta-Llama-3.1-405B-Instruct-Q4_K_M.gguf", "Q4_K_M"),
    ("model.Q4_1.gguf", "Q4_1"),
    ("qwen2.5-72b-instruct-iq4_xs-00001-of-00010.gguf", "IQ4_XS"),
    ("Llama-3.1-70B-F16.gguf", "F16"),
    ("plain-model.gguf", None),
])
def test_quant_tag_from_file_name(name, quant):
    assert llm_gguf_quant(name) == quant


def test_measured_bandwidth_replaces_the_channel_estimate():
    vm = {"sockets": 1, "cores": 2, "numa_nodes": 1, "cpu_flags": ["avx512f"]}
    small = {"size_bytes": 138e6, "quant": "Q6_K"}
    result = throughput(vm, small, bandwidth_gbs=44.4)
    assert result["effective_bandwidth_gbs"] == 44.4
    assert result["peak_bandwidth_gbs"] is None and result["tokens_per_second_ceiling"] is None
    assert throughput(vm, small, bandwidth_gbs=22.2)["tokens_per_second"] < result["tokens_per_second"]
    with pytest.raises(AnsibleFilterError, match=r"hardware\.memory_channels is required"):
        throughput(vm, small)
