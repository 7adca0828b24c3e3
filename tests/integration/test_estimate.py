"""playbooks/estimate.yml: the sizing report for hardware given as variables (nothing is contacted)."""

import json
import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def estimate(extra=None):
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    out = subprocess.run(["ansible-playbook", "playbooks/estimate.yml", "-e", json.dumps(extra or {})], cwd=ROOT,
                         env=env, capture_output=True, text=True, check=False, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_seed_build_report():
    report = estimate()
    assert "24 of 24 channels populated, 4800 MT/s" in report
    assert "peak 921.6 GB/s" in report
    expected = float(re.search(r"expected ([\d.]+) \(ceiling ([\d.]+)\)", report).group(1))
    assert 1.0 <= expected <= 2.5  # the seed thread's "1-2 tok/s"
    assert "RAM        needs" in report and "has 412.3 GB" in report


def test_half_populated_single_socket_warns_and_is_slower():
    half = estimate({"estimate_hardware": {"cpu_model": "AMD EPYC 9454P 48-Core Processor", "sockets": 1,
                                           "cores": 48, "numa_nodes": 1, "memory_channels": 6,
                                           "memory_speed_mts": 4800, "memory_total_bytes": 412316860416}})
    assert "6 of 12 channels populated" in half
    assert "WARNING    6 of 12 memory channels are populated" in half
    assert float(re.search(r"expected ([\d.]+)", half).group(1)) < 1.0
