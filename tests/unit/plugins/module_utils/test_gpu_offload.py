"""gpu_offload: the placement planner and the hybrid speed, on the header-only files of real large models.

Expected values come from the tensor tables (summed here, by name), the published configs and llama.cpp's
placement rules (the last ngl-1 blocks and the output on the GPU; --n-cpu-moe N = the first N blocks'
experts in RAM), never from gpu_offload itself. Where a property is "the next bigger offload would not
fit", the test asks the planner for that bigger offload at a larger VRAM and checks it needs more than
the VRAM given.
"""

import itertools

import make_gguf  # tests/support/make_gguf.py (on the path through pytest.ini)
import pytest
from ansible_collections.cpu_llm.infra.plugins.module_utils import gguf_header as gh
from ansible_collections.cpu_llm.infra.plugins.module_utils import gpu_offload as go
from ansible_collections.cpu_llm.infra.plugins.module_utils import sizing_report
from ansible_collections.cpu_llm.infra.plugins.module_utils import throughput_model as tm

GiB = 1 << 30
CONTEXT = 4096
# The seed's box (tests/unit/plugins/module_utils/test_sizing.py): 2x EPYC 9124, 24 channels DDR5-4800.
HOST = {"cpu_model": "AMD EPYC 9124 16-Core Processor", "sockets": 2, "cores": 32, "threads": 64,
        "numa_nodes": 2, "memory_type": "DDR5", "memory_channels": 24, "memory_speed_mts": 4800}
RTX_4090_GBS = 1008.0  # NVIDIA's data sheet: 384-bit GDDR6X at 21 Gbps
MOE = ("deepseek-v3", "qwen3-235b-a22b", "gpt-oss-120b")


@pytest.fixture(scope="module")
def layers(headers):
    return {layout: gh.layer_bytes([header]) for layout, header in headers.items()}


@pytest.fixture(scope="module")
def tiny_moe(tmp_path_factory):
    [path] = make_gguf.write_tiny_moe(tmp_path_factory.mktemp("tiny") / "tiny-moe.gguf")
    return gh.layer_bytes([gh.read_header(path)])


def by_block(header):
    """{block: {"experts": bytes, "other": bytes}} and the non-block tensors, summed from the tensor table."""
    blocks, non_block = {}, {}
    for t in header["tensors"]:
        if t["name"].startswith("blk."):
            entry = blocks.setdefault(int(t["name"].split(".")[1]), {"experts": 0, "other": 0})
            entry["experts" if "_exps" in t["name"] else "other"] += t["nbytes"]
        else:
            non_block[t["name"]] = t["nbytes"]
    return blocks, non_block


def step_up(model, vram, key, **options):
    """The first plan at a larger VRAM (64 MiB steps) whose `key` differs: the next bigger offload."""
    start = go.plan(model, vram_bytes=vram, context_tokens=CONTEXT, **options)
    for step in range(1, 4000):
        bigger = go.plan(model, vram_bytes=vram + step * 64 * (1 << 20), context_tokens=CONTEXT, **options)
        if key(bigger) != key(start):
            return bigger
    raise AssertionError("no bigger offload within 250 GiB")


# ----------------------------------------------------------------------------- dense


def test_dense_takes_the_last_layers_and_the_output_as_llama_cpp_does(layers, headers):
    model, n_layer = layers["llama-3.1-405b"], 126
    offload = go.plan(model, vram_bytes=24 * GiB, context_tokens=CONTEXT)
    ngl = offload["ngl"]
    assert offload["mode"] == "ngl" and 1 < ngl < n_layer
    assert offload["args"] == ["--n-gpu-layers", str(ngl)]
    # src/llama-model.cpp: i_gpu_start = n_layer + 1 - ngl; the output layer is the first one offloaded.
    assert offload["gpu_blocks"] == list(range(n_layer + 1 - ngl, n_layer))
    assert offload["output_on_gpu"] is True and offload["ram_expert_blocks"] == []
    blocks, non_block = by_block(headers["llama-3.1-405b"])
    on_gpu = sum(blocks[il]["other"] for il in offload["gpu_blocks"])
    on_gpu += sum(size for name, size in non_block.items() if name != "token_embd.weight")
    assert offload["gpu"]["weights"] == on_gpu
    assert offload["ram"]["weights"] == sum(b["other"] for b in blocks.values()) + sum(non_block.values()) - on_gpu
    kv_per_layer = 2 * 8 * 128 * 2  # K and V, 8 KV heads of 128, F16 (Llama-3.1-405B config)
    assert offload["gpu"]["kv"] == (ngl - 1) * kv_per_layer * CONTEXT
    assert offload["ram"]["kv"] == (n_layer - ngl + 1) * kv_per_layer * CONTEXT
    # The compute buffer holds at least the logits of a 512-token batch and the largest weight left in RAM
    # (op offload copies it to the GPU for prompt processing): ffn_up/gate Q6_K, 16384 x 53248.
    largest_ffn = 16384 * 53248 // 256 * 210
    assert offload["gpu"]["compute"] >= 128256 * 512 * 4 + largest_ffn
    assert offload["gpu"]["margin"] == go.DEFAULT_MARGIN_BYTES


def test_dense_largest_ngl_is_monotone_and_within_the_budget(layers):
    model = layers["llama-3.1-405b"]
    plans = [(vram, go.plan(model, vram_bytes=vram, context_tokens=CONTEXT))
             for vram in range(0, 400 * GiB, 6 * GiB)]
    ngls = [p["ngl"] for _, p in plans]
    assert ngls == sorted(ngls) and ngls[0] == 0 and ngls[-1] == 127
    for vram, offload in plans:
        assert offload["gpu_bytes"] <= vram
        assert offload["gpu_bytes"] + offload["ram_bytes"] >= offload["gpu"]["weights"] + offload["ram"]["weights"]
    for (small, low), (_, high) in itertools.pairwise(plans):
        if high["ngl"] > low["ngl"]:
            assert high["gpu_bytes"] > small, "a bigger offload that fits was passed over"


def test_dense_one_byte_decides(layers):
    model = layers["llama-3.1-405b"]
    offload = go.plan(model, vram_bytes=24 * GiB, context_tokens=CONTEXT)
    exact = go.plan(model, vram_bytes=offload["gpu_bytes"], context_tokens=CONTEXT)
    short = go.plan(model, vram_bytes=offload["gpu_bytes"] - 1, context_tokens=CONTEXT)
    assert exact["ngl"] == offload["ngl"] and short["ngl"] == offload["ngl"] - 1
    nxt = step_up(model, 24 * GiB, key=lambda p: p["ngl"])
    assert nxt["ngl"] == offload["ngl"] + 1 and nxt["gpu_bytes"] > 24 * GiB


def test_dense_whole_model_on_a_big_gpu(layers, profiles):
    offload = go.plan(layers["llama-3.1-405b"], vram_bytes=1000 * GiB, context_tokens=CONTEXT)
    assert offload["ngl"] == 127 and offload["output_on_gpu"]
    embd = 16384 * 128256 // 256 * 210  # token_embd Q6_K stays in RAM (input layer)
    assert offload["ram"]["weights"] == embd and offload["ram"]["kv"] == 0
    assert offload["gpu"]["weights"] == profiles["llama-3.1-405b"]["size_bytes"] - embd
    # Nothing left in RAM to copy: the compute buffer is only the activations.
    assert offload["gpu"]["compute"] < 1 * GiB


# ----------------------------------------------------------------------------- MoE


@pytest.mark.parametrize("layout", MOE)
def test_moe_keeps_the_experts_of_the_fewest_first_blocks_in_ram(layout, layers, headers):
    model, config = layers[layout], make_gguf.LAYOUTS[layout]
    n_layer, vram = config["n_layer"], 24 * GiB
    offload = go.plan(model, vram_bytes=vram, context_tokens=CONTEXT)
    k = offload["n_cpu_moe"]
    assert offload["mode"] == "n_cpu_moe" and 0 < k < n_layer
    assert offload["args"] == ["--n-gpu-layers", str(n_layer + 1), "--n-cpu-moe", str(k)]
    assert offload["gpu_blocks"] == list(range(n_layer)) and offload["output_on_gpu"]
    blocks, non_block = by_block(headers[layout])
    expert_blocks = [il for il in range(n_layer) if blocks[il]["experts"]]
    assert offload["ram_expert_blocks"] == [il for il in expert_blocks if il < k]
    in_ram = sum(blocks[il]["experts"] for il in range(k)) + non_block["token_embd.weight"]
    assert offload["ram"]["weights"] == in_ram
    total = sum(b["experts"] + b["other"] for b in blocks.values()) + sum(non_block.values())
    assert offload["gpu"]["weights"] == total - in_ram
    assert offload["gpu_bytes"] <= vram
    # Minimal: one block fewer in RAM needs more than the GPU has, and one byte less VRAM needs one more.
    fewer = step_up(model, vram, key=lambda p: p["n_cpu_moe"])
    assert fewer["n_cpu_moe"] < k and fewer["gpu_bytes"] > vram
    tighter = go.plan(model, vram_bytes=offload["gpu_bytes"] - 1, context_tokens=CONTEXT)
    assert tighter["mode"] == "cpu_moe" or tighter["n_cpu_moe"] > k


def test_deepseek_v3_24gb_dense_blocks_and_shared_experts_stay_on_the_gpu(layers, headers):
    """Blocks 0-2 are dense and the shared experts are not routed: --n-cpu-moe moves neither."""
    offload = go.plan(layers["deepseek-v3"], vram_bytes=24 * GiB, context_tokens=CONTEXT)
    assert offload["n_cpu_moe"] > 3 and offload["ram_expert_blocks"][0] == 3
    names = [t["name"] for t in headers["deepseek-v3"]["tensors"]]
    assert "blk.3.ffn_gate_shexp.weight" in names and "blk.0.ffn_up.weight" in names
    # MLA: the KV cache is the 576-wide latent of 61 layers, all on the GPU.
    assert offload["gpu"]["kv"] == 61 * (512 + 64) * 2 * CONTEXT and offload["ram"]["kv"] == 0
    # The largest expert tensor left in RAM (ffn_down_exps Q6_K, 2048 x 7168 x 256) is in the compute buffer.
    assert offload["gpu"]["compute"] >= 2048 * 7168 * 256 // 256 * 210


def test_gpt_oss_sliding_window_layers_hold_window_plus_ubatch(layers):
    offload = go.plan(layers["gpt-oss-120b"], vram_bytes=24 * GiB, context_tokens=CONTEXT)
    per_layer = 2 * 8 * 64 * 2
    swa_cells = 768  # 128-token window + 512-token ubatch, padded to 256 (llama-kv-cache-iswa.cpp)
    assert offload["gpu"]["kv"] == 18 * per_layer * CONTEXT + 18 * per_layer * swa_cells


def test_moe_more_vram_never_keeps_more_in_ram(layers):
    model = layers["qwen3-235b-a22b"]
    previous_ram = None
    for vram in range(0, 200 * GiB, 4 * GiB):
        offload = go.plan(model, vram_bytes=vram, context_tokens=CONTEXT)
        assert offload["gpu_bytes"] <= vram
        if previous_ram is not None:
            assert offload["ram"]["weights"] <= previous_ram
        previous_ram = offload["ram"]["weights"]
    assert offload["mode"] == "ngl" and offload["ram_expert_blocks"] == []


def test_moe_whole_model_fits_means_plain_ngl(layers):
    offload = go.plan(layers["gpt-oss-120b"], vram_bytes=96 * GiB, context_tokens=CONTEXT)
    assert offload["mode"] == "ngl" and offload["args"] == ["--n-gpu-layers", "37"]


# ----------------------------------------------------------------------------- does not fit


@pytest.mark.parametrize("vram", [0, 512 << 20, go.DEFAULT_MARGIN_BYTES])
def test_too_little_vram_is_cpu_only(vram, layers, profiles):
    offload = go.plan(layers["deepseek-v3"], vram_bytes=vram, context_tokens=CONTEXT)
    assert offload["mode"] == "cpu" and offload["args"] == ["--n-gpu-layers", "0"]
    assert offload["gpu_bytes"] == 0 and offload["gpu_blocks"] == [] and not offload["output_on_gpu"]
    assert offload["ram"]["weights"] == profiles["deepseek-v3"]["size_bytes"]
    assert offload["ram"]["kv"] == gh.kv_cache_bytes(profiles["deepseek-v3"], CONTEXT)
    assert "nothing fits" in offload["why"]


def test_vram_below_the_non_expert_part_is_cpu_moe_with_partial_ngl(layers, headers):
    model = layers["deepseek-v3"]
    blocks, non_block = by_block(headers["deepseek-v3"])
    non_expert = sum(b["other"] for b in blocks.values()) + non_block["output.weight"]
    vram = 8 * GiB
    assert vram < non_expert
    offload = go.plan(model, vram_bytes=vram, context_tokens=CONTEXT)
    ngl = offload["ngl"]
    assert offload["mode"] == "cpu_moe" and 1 <= ngl < 62
    assert offload["args"] == ["--n-gpu-layers", str(ngl), "--cpu-moe"]
    assert offload["gpu_blocks"] == list(range(62 - ngl, 61))
    assert offload["ram_expert_blocks"] == [il for il in range(61) if blocks[il]["experts"]]
    assert offload["gpu"]["weights"] == sum(blocks[il]["other"] for il in offload["gpu_blocks"]) + sum(
        size for name, size in non_block.items() if name != "token_embd.weight")
    assert offload["gpu_bytes"] <= vram
    nxt = step_up(model, vram, key=lambda p: (p["ngl"], p["mode"]))
    assert nxt["gpu_bytes"] > vram


def test_only_the_non_expert_part_fits_is_cpu_moe_with_every_layer(layers):
    model = layers["qwen3-235b-a22b"]
    offload = go.plan(model, vram_bytes=8 * GiB, context_tokens=CONTEXT)
    assert offload["mode"] == "cpu_moe" and offload["args"] == ["--n-gpu-layers", "95", "--cpu-moe"]
    assert len(offload["ram_expert_blocks"]) == 94 and offload["n_cpu_moe"] is None
    nxt = step_up(model, 8 * GiB, key=lambda p: (p["mode"], p["n_cpu_moe"]))
    assert nxt["mode"] == "n_cpu_moe" and nxt["gpu_bytes"] > 8 * GiB


# ----------------------------------------------------------------------------- the molecule scenario's model


def test_tiny_moe_with_a_small_budget_keeps_the_first_experts_in_ram(tiny_moe):
    """The scenario stands a VRAM budget in for a card; with the margin at 0 the tiny model splits too."""
    whole = go.plan(tiny_moe, vram_bytes=1 << 30, context_tokens=CONTEXT, margin_bytes=0)
    assert whole["mode"] == "ngl" and whole["args"] == ["--n-gpu-layers", "4"]
    budget = whole["gpu_bytes"] - 1
    offload = go.plan(tiny_moe, vram_bytes=budget, context_tokens=CONTEXT, margin_bytes=0)
    assert offload["mode"] == "n_cpu_moe" and offload["args"] == ["--n-gpu-layers", "4", "--n-cpu-moe", "1"]
    one_expert_tensor = 64 * 32 // 32 * 34  # Q8_0
    assert offload["ram"]["weights"] == 3 * 8 * one_expert_tensor + 96 * 64 * 2  # block 0's experts + token_embd
    # With llama.cpp's default 1 GiB margin a few-hundred-MB budget offloads nothing.
    assert go.plan(tiny_moe, vram_bytes=256 << 20, context_tokens=CONTEXT)["mode"] == "cpu"


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"vram_bytes": -1}, "vram_bytes"),
    ({"vram_bytes": "24GB"}, "vram_bytes"),
    ({"vram_bytes": True}, "vram_bytes"),
    ({"context_tokens": None}, "context_tokens"),
    ({"context_tokens": 1.5}, "context_tokens"),
    ({"parallel": 0}, "parallel"),
    ({"margin_bytes": -5}, "margin_bytes"),
    ({"n_ubatch": 0}, "n_ubatch"),
    ({"op_offload": "yes"}, "op_offload"),
])
def test_bad_plan_input_names_the_argument(kwargs, named, tiny_moe):
    arguments = {"vram_bytes": GiB, "context_tokens": CONTEXT, **kwargs}
    with pytest.raises(go.OffloadError, match=named):
        go.plan(tiny_moe, **arguments)
    assert issubclass(go.OffloadError, ValueError)


def test_a_profile_without_layers_is_refused_and_one_with_them_accepted(profiles, layers):
    with pytest.raises(go.OffloadError, match=r"layer_bytes\(headers\)"):
        go.plan(profiles["deepseek-v3"], vram_bytes=24 * GiB, context_tokens=CONTEXT)
    carried = dict(profiles["deepseek-v3"], layers=layers["deepseek-v3"])
    assert go.plan(carried, vram_bytes=24 * GiB, context_tokens=CONTEXT) == go.plan(
        layers["deepseek-v3"], vram_bytes=24 * GiB, context_tokens=CONTEXT)


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"gpu_bandwidth_gbs": 0}, "gpu_bandwidth_gbs"),
    ({"cpu_estimate": {}}, "cpu_estimate.tokens_per_second"),
    ({"cpu_estimate": None}, "cpu_estimate"),
    ({"pcie_gbs": -1}, "pcie_gbs"),
    ({"kv_tokens": -1}, "kv_tokens"),
])
def test_bad_predict_input_names_the_argument(kwargs, named, tiny_moe):
    offload = go.plan(tiny_moe, vram_bytes=GiB, context_tokens=CONTEXT, margin_bytes=0)
    arguments = {"cpu_estimate": {"tokens_per_second": 10.0}, "gpu_bandwidth_gbs": RTX_4090_GBS, **kwargs}
    with pytest.raises(go.OffloadError, match=named):
        go.predict(offload, **arguments)
    with pytest.raises(go.OffloadError, match="offload_plan"):
        go.predict({}, cpu_estimate={"tokens_per_second": 10.0}, gpu_bandwidth_gbs=RTX_4090_GBS)


# ----------------------------------------------------------------------------- prediction


def test_nothing_offloaded_predicts_the_cpu_only_speed(layers, profiles):
    estimate = tm.estimate(HOST, profiles["deepseek-v3"], threads=32)
    offload = go.plan(layers["deepseek-v3"], vram_bytes=0, context_tokens=CONTEXT)
    speed = go.predict(offload, cpu_estimate=estimate, gpu_bandwidth_gbs=RTX_4090_GBS)
    assert speed["tokens_per_second"] == pytest.approx(estimate["tokens_per_second"])
    assert speed["speedup"] == pytest.approx(1.0)
    assert speed["seconds_per_token_parts"]["gpu"] == speed["seconds_per_token_parts"]["transfer"] == 0


def test_moe_hybrid_parts_follow_the_bytes_read(layers, profiles, headers):
    """GPU part = bytes in VRAM / bandwidth; RAM part = CPU-only time x the RAM share of its weighted reads."""
    profile = profiles["deepseek-v3"]
    estimate = tm.estimate(HOST, profile, threads=32)
    offload = go.plan(layers["deepseek-v3"], vram_bytes=24 * GiB, context_tokens=CONTEXT)
    speed = go.predict(offload, cpu_estimate=estimate, gpu_bandwidth_gbs=RTX_4090_GBS)
    blocks, _ = by_block(headers["deepseek-v3"])
    share = 8 / 256
    ram_experts = sum(blocks[il]["experts"] for il in offload["ram_expert_blocks"]) * share
    all_experts = sum(b["experts"] for b in blocks.values()) * share
    dense = profile["active_bytes"] - all_experts  # everything read per token but the routed experts
    gpu_read = dense + all_experts - ram_experts
    parts = speed["seconds_per_token_parts"]
    assert parts["gpu"] == pytest.approx(gpu_read / (RTX_4090_GBS * 1e9 * go.GPU_EFFICIENCY), rel=1e-6)
    efficiency = tm.FITTED["expert_efficiency"]
    cpu_time = 1 / estimate["tokens_per_second"]
    expected_ram = cpu_time * (ram_experts / efficiency) / (dense + all_experts / efficiency)
    assert parts["ram"] == pytest.approx(expected_ram, rel=1e-6)
    # Hops: token_embd -> GPU, two per block whose experts are in RAM, the logits back.
    assert speed["hops"] == 2 + 2 * len(offload["ram_expert_blocks"])
    assert speed["speedup"] > 1 and speed["tokens_per_second"] > estimate["tokens_per_second"]


def test_faster_gpu_memory_helps_and_slow_gpu_memory_hurts(layers, profiles):
    estimate = tm.estimate(HOST, profiles["gpt-oss-120b"], threads=32)
    offload = go.plan(layers["gpt-oss-120b"], vram_bytes=24 * GiB, context_tokens=CONTEXT)
    speeds = [go.predict(offload, cpu_estimate=estimate, gpu_bandwidth_gbs=bw)["tokens_per_second"]
              for bw in (10, 100, 448, 1008, 3350)]
    assert speeds == sorted(speeds)
    assert speeds[0] < estimate["tokens_per_second"] < speeds[-1]  # a GPU slower than RAM is a loss


def test_kv_reads_count_where_the_cache_is(layers):
    offload = go.plan(layers["llama-3.1-405b"], vram_bytes=24 * GiB, context_tokens=CONTEXT)
    cold = go.predict(offload, cpu_estimate={"tokens_per_second": 1.0}, gpu_bandwidth_gbs=RTX_4090_GBS)
    warm = go.predict(offload, cpu_estimate={"tokens_per_second": 1.0}, gpu_bandwidth_gbs=RTX_4090_GBS,
                      kv_tokens=CONTEXT)
    kv_per_layer = 2 * 8 * 128 * 2
    gpu_layers = offload["ngl"] - 1
    assert warm["gpu_read_bytes_per_token"] - cold["gpu_read_bytes_per_token"] == gpu_layers * kv_per_layer * CONTEXT
    assert warm["ram_read_bytes_per_token"] - cold["ram_read_bytes_per_token"] == (
        (126 - gpu_layers) * kv_per_layer * CONTEXT)


def test_render_lines_show_the_split_flags_and_speeds(layers, profiles):
    estimate = tm.estimate(HOST, profiles["deepseek-v3"], threads=32)
    offload = go.plan(layers["deepseek-v3"], vram_bytes=24 * GiB, context_tokens=CONTEXT)
    speed = go.predict(offload, cpu_estimate=estimate, gpu_bandwidth_gbs=RTX_4090_GBS)
    text = "\n".join(sizing_report.offload_lines(offload, speed))
    assert f"--n-gpu-layers 62 --n-cpu-moe {offload['n_cpu_moe']}" in text
    assert f"{offload['gpu_bytes'] / 1e9:.1f} GB on GPU" in text
    assert f"{offload['ram_bytes'] / 1e9:.1f} GB in RAM" in text
    assert f"predicted {speed['tokens_per_second']:.1f} tok/s vs {estimate['tokens_per_second']:.1f} CPU-only" in text
    assert all(line.startswith("  ") for line in text.splitlines())
    cpu_only = sizing_report.offload_lines(go.plan(layers["deepseek-v3"], vram_bytes=0, context_tokens=CONTEXT))
    assert "nothing offloaded (--n-gpu-layers 0)" in cpu_only[0] and len(cpu_only) == 2


# ----------------------------------------------------------------------------- the service's plan
# llm_hardware's gpus as the detection writes them (tests/unit/plugins/module_utils/test_gpu_detection.py).
RTX = {"name": "NVIDIA GeForce RTX 4090", "vendor": "nvidia", "backend": "cuda", "source": "nvidia-smi",
       "type": "discrete", "vram_bytes": 24 * GiB, "vram_free_bytes": 23 * GiB}
RADEON = {"name": "AMD Radeon RX 7900 XTX (RADV NAVI31)", "vendor": "amd", "backend": "vulkan",
          "source": "vulkaninfo", "type": "discrete", "vram_bytes": 24 * GiB, "vram_free_bytes": None}
LAVAPIPE = {"name": "llvmpipe (LLVM 19.1.7, 256 bits)", "vendor": "mesa", "backend": "vulkan",
            "source": "vulkaninfo", "type": "cpu", "vram_bytes": None, "vram_free_bytes": None}


def test_a_cpu_build_gets_no_flag_and_keeps_the_sandbox(tiny_moe):
    for gpus in ([], [RTX]):
        got = go.service_plan({"layers": tiny_moe}, backend="cpu", gpus=gpus, context_tokens=CONTEXT)
        assert got["args"] == [] and got["mode"] == "none" and got["device_allow"] == []
        assert got["memory_deny_write_execute"] is True


def test_offload_off_on_a_gpu_build_keeps_everything_in_ram(tiny_moe):
    got = go.service_plan({"layers": tiny_moe}, backend="cuda", gpus=[RTX], offload="off", context_tokens=CONTEXT)
    assert got["args"] == ["--n-gpu-layers", "0"] and got["device_allow"] == []


def test_cuda_service_gets_the_plan_for_the_cards_free_vram_and_only_nvidia_devices(layers):
    model = {"layers": layers["deepseek-v3"]}
    got = go.service_plan(model, backend="cuda", gpus=[LAVAPIPE, RTX], context_tokens=CONTEXT)
    expected = go.plan(layers["deepseek-v3"], vram_bytes=23 * GiB, context_tokens=CONTEXT)
    assert got["args"] == expected["args"] and got["mode"] == "n_cpu_moe"
    assert got["gpu"]["name"] == RTX["name"] and got["gpu"]["vram_bytes"] == 23 * GiB
    assert got["device_allow"] and all(d.startswith("char-nvidia") for d in got["device_allow"])
    assert got["memory_deny_write_execute"] is True and got["supplementary_groups"] == []


def test_a_budget_replaces_the_free_vram(layers):
    model = {"layers": layers["deepseek-v3"]}
    small = go.service_plan(model, backend="cuda", gpus=[RTX], vram_bytes=12 * GiB, context_tokens=CONTEXT)
    large = go.service_plan(model, backend="cuda", gpus=[RTX], context_tokens=CONTEXT)
    assert small["gpu"]["vram_bytes"] == 12 * GiB and small["gpu"]["how"] == "the given budget"
    assert small["plan"]["ram_bytes"] > large["plan"]["ram_bytes"]


def test_vulkan_card_opens_its_render_node_and_needs_a_budget_without_a_memory_reading(layers):
    model = {"layers": layers["deepseek-v3"]}
    with pytest.raises(go.OffloadError, match="vram_bytes"):
        go.service_plan(model, backend="vulkan", gpus=[RADEON | {"vram_bytes": None}], context_tokens=CONTEXT)
    got = go.service_plan(model, backend="vulkan", gpus=[LAVAPIPE, RADEON], vram_bytes=24 * GiB,
                          context_tokens=CONTEXT)
    assert got["gpu"]["name"] == RADEON["name"]  # the card before the software device
    assert got["device_allow"] == ["char-drm rw"] and got["supplementary_groups"] == ["render"]
    assert got["memory_deny_write_execute"] is True


def test_lavapipe_needs_no_device_node_but_write_execute_memory(tiny_moe):
    budget = 2 * GiB
    got = go.service_plan({"layers": tiny_moe}, backend="vulkan", gpus=[LAVAPIPE], vram_bytes=budget,
                          context_tokens=CONTEXT)
    assert got["mode"] != "cpu" and got["device_allow"] == [] and got["memory_deny_write_execute"] is False
    # Nothing planned onto it: the sandbox stays whole.
    none = go.service_plan({"layers": tiny_moe}, backend="vulkan", gpus=[LAVAPIPE], vram_bytes=1,
                           context_tokens=CONTEXT)
    assert none["mode"] == "cpu" and none["memory_deny_write_execute"] is True


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"backend": "rocm"}, "backend"), ({"offload": "on"}, "offload"), ({"vram_bytes": -1}, "vram_bytes"),
    ({"backend": "cuda", "gpus": []}, "no cuda device"),
])
def test_bad_service_input_names_the_problem(kwargs, named, tiny_moe):
    args = {"backend": "vulkan", "gpus": [LAVAPIPE], "vram_bytes": GiB, "context_tokens": CONTEXT} | kwargs
    with pytest.raises(go.OffloadError, match=named):
        go.service_plan({"layers": tiny_moe}, **args)


def test_compute_buffer_holds_the_kq_mask_and_one_output_row_per_slot(tiny_moe):
    """llama.cpp's F16 KQ mask (a slot's cells x the ubatch) is in the compute buffer; logits only per slot."""
    def compute(context, parallel=1):
        return go.plan(tiny_moe, vram_bytes=64 * GiB, context_tokens=context, parallel=parallel)["gpu"]["compute"]

    assert compute(8192) - compute(4096) == 4096 * go.DEFAULT_UBATCH * 2
    # Two slots over the same cells: each stream's mask covers half of them (the mask of 4096 cells on one
    # slot), and at most one more logits row.
    logits_row = (tiny_moe["output_width"] + tiny_moe["n_embd"]) * 4
    assert 0 <= compute(8192, parallel=2) - compute(4096) <= logits_row
