"""Each role reads only its own variables, Ansible's facts and the documented exports of other roles.

A role that reads another role's variable copies its default or depends on its internals; the copy
drifts. Shared settings are llm_* (roles/llm) and reach the roles only through the
playbook (playbooks/vars/shared_settings.yml), so no role may name them either.

The same holds for what a role reads of another host (hostvars[host].name, map('extract', hostvars, 'name')):
another host's settings reach a role through the fleet plan site.yml's first play sets (llm_server_plan,
module_utils/fleet_plan.py), never as that host's role variables; and a role hands all of hostvars to a filter
only where the filter is listed below with what it reads.
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
# Facts site.yml's first play sets on each server for every role (module_utils/fleet_plan.py).
PLAN = {"llm_server_plan"}
# Filters a role may give all of hostvars, with what they read of each host (none reads a role variable).
HOSTVARS_FILTERS = {
    # ansible_host, the llm_rpc_worker_endpoint export and Ansible's facts (its FACT_KEYS).
    "llm_rpc_worker_hardware",
}
# What a role reads of another host: hostvars[x].name, hostvars[x]['name'], extract with a name, or an
# attribute of extracted hostvars.
HOSTVARS_READS = (
    re.compile(r"hostvars\[[^\]]+\]\s*\.\s*(\w+)"),
    re.compile(r"hostvars\[[^\]]+\]\s*\[\s*['\"](\w+)['\"]\s*\]"),
    re.compile(r"extract['\"]\s*,\s*hostvars\s*,\s*['\"](\w+)['\"]"),
    re.compile(r"extract['\"]\s*,\s*hostvars\s*\)(?:\s*\|\s*\w+\([^)]*\))*?\s*\|\s*(?:map|selectattr|rejectattr)"
               r"\(\s*(?:attribute\s*=\s*)?['\"](\w+)['\"]"),
)
# All of hostvars given to a filter: cpu_llm.infra.<filter>(..., hostvars) or hostvars | cpu_llm.infra.<filter>.
HOSTVARS_WHOLE = re.compile(r"cpu_llm\.infra\.(\w+)\((?:[^()]|\([^()]*\))*\bhostvars\b(?!\s*[\[.,]\s*['\"])"
                            r"(?:[^()]|\([^()]*\))*\)|\bhostvars\s*\|\s*cpu_llm\.infra\.(\w+)")


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


def role_files(role):
    for sub in ("tasks", "templates", "defaults", "vars", "handlers"):
        yield from sorted((ROOT / "roles" / role / sub).glob("*"))


def hostvars_reads(role):
    """(file, name) for every name the role reads of a host through hostvars, private ones (__x) too."""
    found = []
    for path in role_files(role):
        text = code(path)
        for pattern in HOSTVARS_READS:
            found += [(str(path.relative_to(ROOT)), name) for name in pattern.findall(text)]
    return found


def whole_hostvars(role):
    """(file, filter) for every filter the role gives all of hostvars to."""
    found = []
    for path in role_files(role):
        for match in HOSTVARS_WHOLE.finditer(code(path)):
            found.append((str(path.relative_to(ROOT)), match.group(1) or match.group(2)))
    return found


def owner(name, role):
    """The other role whose variable (or private __variable) name is, or None."""
    bare = name.lstrip("_")
    for other in ROLES:
        if other != role and bare.startswith(PREFIX[other]) and not bare.startswith(PREFIX[role]):
            return other
    return None


def foreign(role):
    """Names of other roles' variables the role uses that those roles do not export, and what it reads of other
    hosts' role variables or hands them through all of hostvars."""
    bad = []
    for path, name in names_used(role):
        other = owner(name, role)
        if other is None or name in FACTS or name in GROUPS or name in PLAN or name in exports(other):
            continue
        bad.append(f"{path}: {name} (owned by {other})")
    for path, name in hostvars_reads(role):
        other = owner(name, role)
        if other is None or name in FACTS or name in PLAN or (name in exports(other) and not name.startswith("_")):
            continue
        bad.append(f"{path}: hostvars[...].{name} (owned by {other})")
    for path, name in whole_hostvars(role):
        if name not in HOSTVARS_FILTERS:
            bad.append(f"{path}: all of hostvars given to {name} (pass the fleet plan, or list what it reads)")
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


@pytest.mark.parametrize(("line", "found"), [
    ("port: '{{ hostvars[host].llama_server_port }}'", "hostvars[...].llama_server_port (owned by llama_server)"),
    ("port: \"{{ hostvars[host]['llama_server_port'] }}\"", "hostvars[...].llama_server_port (owned by llama_server)"),
    ("ports: \"{{ groups.x | map('extract', hostvars, 'llama_server_port') }}\"",
     "hostvars[...].llama_server_port (owned by llama_server)"),
    ("ports: \"{{ groups.x | map('extract', hostvars) | map(attribute='llama_server_port') }}\"",
     "hostvars[...].llama_server_port (owned by llama_server)"),
    ("modes: \"{{ groups.x | map('extract', hostvars) | selectattr('__llama_server_plan', 'defined') }}\"",
     "hostvars[...].__llama_server_plan (owned by llama_server)"),
    ("backends: \"{{ groups.x | cpu_llm.infra.llm_gateway_backends(hostvars) }}\"",
     "all of hostvars given to llm_gateway_backends (pass the fleet plan, or list what it reads)"),
])
def test_the_check_finds_what_a_role_reads_of_another_host(tmp_path, monkeypatch, line, found):
    """hostvars[x].name hid a foreign read from the name check (a name after '.' is an attribute): the gateway
    read every server's llama_server_port and llama_server_instances that way."""
    role = tmp_path / "roles" / "llm_gateway" / "defaults"
    role.mkdir(parents=True)
    (role / "main.yml").write_text(line + "\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    # A quoted name is also caught as a name the role uses; the read of another host is named either way.
    assert f"roles/llm_gateway/defaults/main.yml: {found}" in foreign("llm_gateway")


def test_what_a_role_may_read_of_another_host_passes(tmp_path, monkeypatch):
    """The fleet plan, Ansible's variables, exports and the role's own variables of another host are fine."""
    role = tmp_path / "roles" / "llm_gateway" / "defaults"
    role.mkdir(parents=True)
    (role / "main.yml").write_text(
        "a: \"{{ groups.x | map('extract', hostvars) | map(attribute='llm_server_plan', default={}) }}\"\n"
        "b: \"{{ hostvars[h].ansible_host }}\"\n"
        "c: \"{{ hostvars[h].llm_gateway_port }}\"\n"
        "d: \"{{ hostvars[h].llm_hardware }}\"\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    assert foreign("llm_gateway") == []
