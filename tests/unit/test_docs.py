"""ansible-doc renders the project's module and filters (their DOCUMENTATION parses)."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("kind", "name", "expect"), [
    ("module", "cpu_llm.infra.llm_hardware_facts", "memory_channels"),
    ("filter", "cpu_llm.infra.llm_throughput", "tokens_per_second_ceiling"),
    ("filter", "cpu_llm.infra.gguf_model_plan", "first shard first"),
])
def test_ansible_doc(kind, name, expect):
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    out = subprocess.run(["ansible-doc", "-t", kind, name], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert "ERROR" not in out.stderr
    assert expect in out.stdout
