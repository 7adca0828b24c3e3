"""Each role reads only its own variables, Ansible's facts and the documented exports of other roles.

A role that reads another role's variable copies its default or depends on its internals; the copy
drifts. Shared settings are llm_* (roles/llm) and reach the roles only through the
playbook (playbooks/vars/shared_settings.yml), so no role may name them either.
"""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "meta" / "argument_specs.yml").exists())
# The variable prefix each role owns.
PREFIX = {role: f"{role}_" for role in ROLES}
# Facts set by the collection's modules, which any role may read (they are Ansible facts).
FACTS = {"llm_hardware"}
# Inventory group names the playbooks use: data, not variables (llm_gateway's defaults name them).
GROUPS = {"llm_servers", "llm_gateway"}


def exports(role):
    path = ROOT / "roles" / role / "meta" / "exports.yml"
    return set(yaml.safe_load(path.read_text()) or {}) if path.exists() else set()


def code(path):
    """What Ansible evaluates: YAML without its comments; in templates, what is inside {{ }} and {% %}."""
    text = path.read_text()
    if path.suffix == ".j2":
        return "\n".join(re.findall(r"\{\{.*?\}\}|\{%.*?%\}", text, re.S))
    return "\n".join(re.sub(r"(^|\s)#(\s.*)?$", "", line) for line in text.splitlines())


def names_used(role):
    """(file, variable) for every variable-looking name in the role's tasks, templates, defaults and vars."""
    found = []
    for sub in ("tasks", "templates", "defaults", "vars", "handlers"):
        for path in sorted((ROOT / "roles" / role / sub).glob("*")):
            text = code(path)
            # Not preceded by '.' or a word character: FQCNs (cpu_llm.infra.llm_throughput) are not variables.
            for name in re.findall(r"(?<![.\w])([a-z][a-z0-9]*(?:_[a-z0-9]+)+)\b", text):
                found.append((str(path.relative_to(ROOT)), name))
    return found


def foreign(role):
    """Names of other roles' variables the role uses that those roles do not export."""
    bad = []
    for path, name in names_used(role):
        for other in ROLES:
            if other == role or not name.startswith(PREFIX[other]) or name.startswith(PREFIX[role]):
                continue
            if name in FACTS or name in GROUPS or name in exports(other):
                continue
            bad.append(f"{path}: {name} (owned by {other})")
    return sorted(set(bad))


@pytest.mark.parametrize("role", ROLES)
def test_role_reads_only_its_own_variables_and_documented_exports(role):
    assert foreign(role) == []


def test_exports_are_set_by_their_role():
    for role in ROLES:
        text = "\n".join(p.read_text() for p in (ROOT / "roles" / role / "tasks").glob("*.yml"))
        for name in exports(role):
            assert re.search(rf"^\s+{name}:", text, re.M), f"{role} exports {name} but never sets it"


def test_the_check_finds_a_foreign_variable(tmp_path, monkeypatch):
    """The check itself can fail: a default copied from another role is caught."""
    role = tmp_path / "roles" / "preflight" / "defaults"
    role.mkdir(parents=True)
    (role / "main.yml").write_text("# set from llm_threads\npreflight_threads: '{{ llama_server_threads }}'\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    assert foreign("preflight") == ["roles/preflight/defaults/main.yml: llama_server_threads (owned by llama_server)"]
