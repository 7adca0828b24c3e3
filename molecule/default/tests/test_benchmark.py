"""playbooks/benchmark.yml against the converged container: the report exists and adds up."""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    inventory = os.environ.get("MOLECULE_INVENTORY_FILE") or str(
        Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "inventory")
    run = subprocess.run(["ansible-playbook", "-i", inventory, str(ROOT / "playbooks" / "benchmark.yml"),
                          "-e", f"benchmark_reports_dir={out}"], capture_output=True, text=True, check=False,
                         timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
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
