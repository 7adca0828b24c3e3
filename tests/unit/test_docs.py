"""ansible-doc renders every module and filter of the collection by FQCN, each filter with its own documentation."""

import importlib
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COLLECTION = "cpu_llm.infra"
PLUGINS = ROOT / "collections" / "ansible_collections" / "cpu_llm" / "infra" / "plugins"
MODULES = sorted(p.stem for p in (PLUGINS / "modules").glob("*.py"))
FILTERS = sorted(name for p in (PLUGINS / "filter").glob("*.py")
                 for name in importlib.import_module(f"ansible_collections.cpu_llm.infra.plugins.filter.{p.stem}")
                 .FilterModule().filters())
# A phrase from each plugin's documentation, where one is worth pinning.
EXPECT = {
    "llm_hardware_facts": "memory_channels",
    "llm_throughput": "tokens_per_second_ceiling",
    "gguf_model_plan": "first shard first",
    "llm_autotune": "OMP_WAIT_POLICY=active",
    "llm_haproxy_server": "qcur",
}


def ansible_doc(*args):
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    out = subprocess.run(["ansible-doc", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "ERROR" not in out.stderr and "WARNING" not in out.stderr, out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def docs():
    """{kind: {fqcn: ansible-doc's JSON}}, one ansible-doc run per plugin type."""
    return {kind: json.loads(ansible_doc("--json", "-t", kind, *(f"{COLLECTION}.{n}" for n in names)))
            for kind, names in (("module", MODULES), ("filter", FILTERS))}


def test_the_collection_has_what_the_roles_use():
    assert MODULES == ["gguf_download", "llm_async_watch", "llm_autotune", "llm_gguf_profile", "llm_haproxy_server",
                       "llm_hardware_facts", "llm_os_state", "llm_owned_paths", "llm_switch_link", "llm_wait_healthy"]
    assert {"llm_throughput", "llm_kv_cache_bytes", "llm_gguf_quant", "gguf_model_plan", "gguf_model_with_sizes",
            "llm_bios_audit", "llm_server_record", "llm_bench_report"} <= set(FILTERS)


@pytest.mark.parametrize(("kind", "name"), [("module", n) for n in MODULES] + [("filter", n) for n in FILTERS])
def test_every_plugin_has_its_own_documentation(docs, kind, name):
    entry = docs[kind][f"{COLLECTION}.{name}"]
    doc = entry["doc"]
    # Its own DOCUMENTATION, not that of another filter registered in the same file.
    assert doc["name" if kind == "filter" else "module"] == name
    assert doc["short_description"] and doc["description"]
    assert entry["examples"] and f"{COLLECTION}.{name}" in entry["examples"]
    assert entry["return"]


def test_short_descriptions_are_all_different(docs):
    descriptions = [entry["doc"]["short_description"] for kind in docs.values() for entry in kind.values()]
    assert len(set(descriptions)) == len(descriptions)


@pytest.mark.parametrize(("kind", "names"), [("module", MODULES), ("filter", FILTERS)])
def test_ansible_doc_renders_text(kind, names):
    text = ansible_doc("-t", kind, *(f"{COLLECTION}.{n}" for n in names))
    for name in names:
        assert f"{COLLECTION}.{name}" in text
    for name, phrase in EXPECT.items():
        if name in names:
            assert phrase in text
