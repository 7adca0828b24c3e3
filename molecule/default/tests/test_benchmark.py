"""playbooks/benchmark.yml against the converged container: the report exists and adds up."""

import json
import os
from pathlib import Path

import playbook  # molecule/shared/playbook.py (on the path through pytest.ini)
import pytest

CACHE = Path(os.environ.get("LLM_CACHE_DIR", "/var/cache/llm-cpu-infra"))
MANIFEST = json.loads((CACHE / "manifest.json").read_text())


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    rc, _, failures = playbook.run(playbook.ROOT / "playbooks" / "benchmark.yml", {"benchmark_reports_dir": str(out)})
    assert rc == 0, failures
    return out


def test_report_is_well_formed_and_consistent(reports):
    report = json.loads((reports / "llm-default.json").read_text())
    tps, bw, ratios = report["tokens_per_second"], report["bandwidth"], report["ratios"]
    # A 135M model generates tens to hundreds of tokens/s on any x86-64 core: real measurements.
    for value in (tps["llama_bench"], tps["prompt_llama_bench"], tps["service"]):
        assert value > 5, tps
    # Bytes read per token: the whole served model (small models tie the embedding to the output).
    served = sum(f["size"] for f in MANIFEST["models"]["sharded"])
    assert 0.9 * served <= report["bytes_per_token"] <= 1.1 * served, (report["bytes_per_token"], served)
    # What generation pulls through memory cannot exceed what the machine can stream.
    assert 0 < bw["effective_gbs"] <= bw["measured_gbs"] < 2000
    assert 0 < ratios["bandwidth_fraction"] <= 1
    assert ratios["service_vs_llama_bench"] == pytest.approx(tps["service"] / tps["llama_bench"], abs=0.002)
    assert ratios["predicted_vs_measured"] == pytest.approx(
        (tps["expected"] or tps["expected_from_measured_bandwidth"]) / tps["llama_bench"], rel=0.01)
    assert report["threads"] >= 1 and isinstance(report["causes"], list)


def test_fleet_summary_is_written(reports):
    summary = (reports / "summary.md").read_text()
    assert summary.startswith("# Token generation: measured vs expected")
    assert "| llm-default |" in summary


def test_check_mode_on_the_converged_host_reports_no_change():
    rc, changed, failures = playbook.run(playbook.ROOT / "site.yml", {}, "--check", "--diff")
    assert rc == 0, failures
    assert not changed, changed
