"""The one rule for "does it fit" and "is the hardware known", and the report built on them."""

import pytest
from ansible_collections.cpu_llm.infra.plugins.module_utils import sizing

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
