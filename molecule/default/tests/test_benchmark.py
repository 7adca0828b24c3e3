"""playbooks/benchmark.yml against the converged container: the report exists and adds up."""

import json

import playbook  # molecule/shared/playbook.py (pytest.ini: pythonpath)
import pytest


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    rc, _, failures = playbook.run(playbook.ROOT / "playbooks" / "benchmark.yml", {"benchmark_reports_dir": str(out)})
    assert rc == 0, failures
    return out


def test_report_is_well_formed_and_consistent(reports):
    report = json.loads((reports / "llm-default.json").read_text())
    tps, bw, ratios = report["tokens_per_second"], report["bandwidth"], report["ratios"]
    for value in (tps["llama_bench"], tps["prompt_llama_bench"], tps["service"],
                  tps["expected_from_measured_bandwidth"], bw["measured_gbs"], bw["effective_gbs"],
                  report["bytes_per_token"]):
        assert value > 0
    # What generation pulls through memory cannot exceed what the machine can stream.
    assert bw["effective_gbs"] <= bw["measured_gbs"]
    assert 0 < ratios["bandwidth_fraction"] <= 1
    assert ratios["service_vs_llama_bench"] == pytest.approx(tps["service"] / tps["llama_bench"], abs=0.002)
    assert ratios["predicted_vs_measured"] > 0
    assert report["threads"] >= 1 and isinstance(report["causes"], list)


def test_fleet_summary_is_written(reports):
    summary = (reports / "summary.md").read_text()
    assert summary.startswith("# Token generation: measured vs expected")
    assert "| llm-default |" in summary


def test_check_mode_on_the_converged_host_reports_no_change():
    rc, changed, failures = playbook.run(playbook.ROOT / "site.yml", {}, "--check", "--diff")
    assert rc == 0, failures
    assert not changed, changed
