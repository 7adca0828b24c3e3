"""The fleet source's runtime unit (roles/gguf_model/templates/gguf-model-seed.service.j2) as the role renders it."""

import shutil
import subprocess
from pathlib import Path

import jinja2
import pytest
import yaml
from ansible_collections.cpu_llm.infra.plugins.filter.systemd_sandbox import systemd_sandbox
from ansible_collections.cpu_llm.infra.plugins.module_utils import fleet

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "roles" / "gguf_model" / "templates" / "gguf-model-seed.service.j2"
ROLE_VARS = yaml.safe_load((ROOT / "roles" / "gguf_model" / "vars" / "main.yml").read_text())
FILES = [{"name": "m-Q6_K.gguf", "path": "Q6_K/m-Q6_K.gguf", "sha256": "1" * 64, "size": 1000}]


def declaration(number, **overrides):
    return {"source": "llm-1", "repo": "org/m-GGUF", "revision": "main", "files": FILES, "port": 8089,
            "dir": "/srv/my models/org--m-GGUF/main", "address": f"10.0.0.{number}", "connections": 8,
            "addresses": [f"10.0.0.{number}", f"fd00::{number}"], "needs": True, **overrides}


def render(per_host=None):
    declarations = {f"llm-{n}": declaration(n, **(per_host or {}).get(n, {})) for n in (1, 2, 3)}
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)  # noqa: S701 (a unit)
    env.filters["cpu_llm.infra.systemd_sandbox"] = systemd_sandbox
    return env.from_string(TEMPLATE.read_text()).render(
        ansible_managed="managed", __gguf_model_seed_dir=ROLE_VARS["__gguf_model_seed_dir"],
        __gguf_model_fleet=fleet.plan(declarations, "llm-1"))


def directive(unit, key):
    return [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith(key + "=")]


def test_it_admits_only_the_hosts_that_fetch_and_listens_on_one_port():
    unit = render({3: {"needs": False}})
    assert directive(unit, "IPAddressDeny") == ["any"]
    assert directive(unit, "IPAddressAllow") == ["localhost 10.0.0.1 10.0.0.2 fd00::1 fd00::2"]
    assert directive(unit, "SocketBindDeny") == ["any"] and directive(unit, "SocketBindAllow") == ["tcp:8089"]
    assert directive(unit, "RestrictAddressFamilies") == ["AF_INET AF_INET6"]
    assert directive(unit, "TasksMax") == [str(8 + 2 + 8)]


def test_nothing_from_the_inventory_is_written_as_text():
    """The model's directory, repository and files go to the manifest (JSON), never into the unit."""
    unit = render()
    assert "my models" not in unit and "org/m-GGUF" not in unit and "m-Q6_K" not in unit
    assert directive(unit, "ExecStart") == [
        "/usr/bin/python3 -I -B /run/gguf-model-seed/gguf_model_seed.py /run/gguf-model-seed/manifest.json"]


@pytest.mark.parametrize(("key", "value"), [
    ("DynamicUser", "yes"), ("ProtectSystem", "strict"), ("PrivateTmp", "yes"), ("NoNewPrivileges", "yes"),
    ("CapabilityBoundingSet", ""), ("PrivateDevices", "yes"), ("MemoryDenyWriteExecute", "yes"),
    ("RuntimeMaxSec", "604800")])
def test_hardening_directive(key, value):
    assert directive(render(), key) == [value]


needs_systemd = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")


@needs_systemd
def test_systemd_accepts_it_and_rates_it_well_protected(tmp_path):
    path = tmp_path / "gguf-model-seed.service"
    path.write_text(render())
    verify = subprocess.run(["systemd-analyze", "verify", "--man=no", "--generators=no", str(path)],
                            capture_output=True, text=True, check=False)
    assert verify.returncode == 0 and "gguf-model-seed.service" not in verify.stderr, verify.stderr
    security = subprocess.run(["systemd-analyze", "security", "--offline=true", "--threshold=20", str(path)],
                              capture_output=True, text=True, check=False)
    score = float(security.stdout.rsplit("Overall exposure level for gguf-model-seed.service: ", 1)[1].split()[0])
    assert score <= 1.5, security.stdout  # llama-server.service, for comparison: <= 2.0 (README, "Security")
