"""The benchmark report: parsing real tool output, the ratios, the causes, the renderings."""

import json

import pytest
from ansible_collections.cpu_llm.infra.plugins.module_utils import bench_report as br

# Shapes as llama-bench -o json and likwid-bench print them (values from a CI host).
LLAMA_BENCH = json.dumps([
    {"n_prompt": 512, "n_gen": 0, "avg_ts": 802.5, "n_threads": 2},
    {"n_prompt": 0, "n_gen": 128, "avg_ts": 184.2, "n_threads": 2},
])
LIKWID = "Cycles:\t\t\t5033186\nMByte/s:\t\t44399.35\nMFlops/s:\t\t5549.92\n"
HW = {"cpu_model": "AMD EPYC", "cores": 2, "sockets": 1, "numa_nodes": 1, "peak_bandwidth_gbs": None}


def test_parses_tool_output():
    assert br.bandwidth_from_likwid(LIKWID) == 44.4
    assert br.llama_bench_results(LLAMA_BENCH) == {"pp_tps": 802.5, "tg_tps": 184.2}
    assert br.service_tps([{"timings": {"predicted_per_second": s}} for s in (160, 170, 150)]) == 160
    with pytest.raises(ValueError, match="no 'MByte/s:' line"):
        br.bandwidth_from_likwid("ERROR: cannot pin")


def report(**overrides):
    args = {"host": "h1", "hardware": HW, "measured_bw": 44.4, "bench": br.llama_bench_results(LLAMA_BENCH),
            "service": 176.0, "expected": {}, "from_measured": {"tokens_per_second": 200.0},
            "bytes_per_token": 138_000_000, "threads": 2}
    args.update(overrides)
    return br.build(**args)


def test_ratios_and_consistency():
    r = report(service=150.0)
    assert r["ratios"]["service_vs_llama_bench"] == pytest.approx(150 / 184.2, abs=1e-3)
    assert r["bandwidth"]["effective_gbs"] == pytest.approx(0.138 * 184.2, abs=0.01)
    assert r["bandwidth"]["effective_gbs"] <= r["bandwidth"]["measured_gbs"]
    assert r["ratios"]["predicted_vs_measured"] == pytest.approx(200 / 184.2, abs=1e-3)
    assert any("slower than llama-bench" in c for c in r["causes"])


def test_causes_point_at_what_to_fix():
    hw = dict(HW, cores=4, numa_balancing=True, peak_bandwidth_gbs=460.8)
    audit = [{"severity": "warning", "seen": "3 channels empty on socket 0", "action": "populate F, J, L"},
             {"severity": "info", "seen": "SMT on", "action": "nothing"}]
    r = report(hardware=hw, measured_bw=150.0, expected={"tokens_per_second": 400.0, "tokens_per_second_ceiling": 9},
               audit=audit, governor="powersave", service=184.2)
    text = " ".join(r["causes"])
    for expected in ("46% of the 400.00 tok/s", "33% of peak", "populate F, J, L", "powersave",
                     "numa_balancing is on", "2 threads on 4 physical cores"):
        assert expected in text, expected
    assert "SMT on" not in text


def test_markdown_and_svg():
    reports = [report(host="b", service=150.0), report(host="a", service=184.2)]
    md = br.markdown(reports)
    assert md.index("| a |") < md.index("| b |") and "## Likely causes" in md
    svg = br.svg(reports)
    assert svg.startswith("<svg") and svg.count("<rect") == 6 and ">a<" in svg


TUNING = {"measured_at": "2026-11-27T19:31:43+00:00", "noise_pct": 4.2, "seconds": 84.0,
          "default": {"config": {"threads": 2, "omp": False, "numa": "interleave"}, "tg": 100.0, "pp": 300.0},
          "chosen": {"config": {"threads": 2, "omp": True, "numa": "interleave"}, "tg": 150.0, "pp": 330.0},
          "alternatives": [{}, {}, {}, {}]}


def test_tuning_section_reports_default_chosen_and_gain():
    r = report(host="a", service=150.0, tuning=TUNING)
    t = r["tuning"]
    assert (t["gain_tg"], t["gain_pp"], t["changed"], t["trials"]) == (1.5, 1.1, {"omp": True}, 4)
    md = br.markdown([r, report(host="b", service=150.0)])
    assert "## Tuning (autotune)" in md and "| a | 100 | 150 | 1.5x | omp=True | 4.2% | 4 runs, 84 s |" in md
    assert "| b |" not in md.split("## Tuning")[1].split("## Likely")[0]  # untuned hosts have no row
    assert report(service=150.0)["tuning"] is None and "## Tuning" not in br.markdown([report(service=150.0)])
