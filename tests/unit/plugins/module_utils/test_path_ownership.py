"""Each role touches only its own paths: on one host no two roles share one, and what is on disk already is
written over or chmod'ed only when the role made it. Real files and directories in tmp_path."""

import grp
import os
import pwd
import stat
from pathlib import Path

import jinja2
import pytest
import yaml
from ansible_collections.cpu_llm.infra.plugins.module_utils import path_ownership as po

ROOT = Path(__file__).resolve().parents[4]
SERVER = ["preflight", "os_tuning", "llama_cpp", "gguf_model", "autotune", "llama_server"]
DEFAULTS = {
    "preflight_tuning_file": "/etc/llama-server/tuning.json",
    "os_tuning_sysctl_file": "/etc/sysctl.d/60-llm-inference.conf",
    "llama_cpp_prefix": "/opt/llama.cpp", "llama_cpp_ccache_dir": "", "llama_cpp_cuda_toolkit_dir": "",
    "gguf_model_dir": "/srv/llm/models", "autotune_file": "/etc/llama-server/tuning.json",
    "autotune_llama_bench": "/opt/llama.cpp/current/bin/llama-bench",
    "autotune_model_path": "/srv/llm/models/current/m-Q6_K.gguf",
    "llama_server_api_key_file": "/etc/llama-server/api-key",
    "llama_server_binary": "/opt/llama.cpp/current/bin/llama-server",
    "llama_server_model_path": "/srv/llm/models/current/m-Q6_K.gguf", "llama_server_tls_cert": "",
    "llama_server_tls_key": "", "llm_rpc_worker_binary": "/opt/llama.cpp/current/bin/rpc-server",
    "llm_gateway_tls_cert_path": "",
}
ALL = [*SERVER, "llm_rpc_worker", "llm_gateway"]


def conflicts(**changes):
    return po.conflicts("h1", ALL, {**DEFAULTS, **changes})


def test_the_roles_defaults_share_no_path():
    """A server that is also a worker and a gateway, every path at its default: the tuning document is written by
    autotune and read by preflight, the binaries and the model live in the trees of the roles that make them."""
    assert conflicts() == []


def test_every_path_variable_is_a_setting_of_its_role():
    for role, entries in po.ROLE_PATHS.items():
        defaults = yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text())
        for source, access, what in entries:
            name = source.split("|")[0]
            assert name.startswith("/") or name in defaults, (role, name)
            assert access in (po.WRITE, po.TREE, po.DIR, po.READ, po.PRODUCT, po.CONTROL) and what, (role, source)


@pytest.mark.parametrize(("changes", "expected"), [
    # Two roles managing one directory: ccache's cleanup and gguf_model's prune in one place.
    ({"llama_cpp_ccache_dir": "/srv/llm/models"},
     "llama_cpp_ccache_dir (/srv/llm/models) and gguf_model_dir (/srv/llm/models) name the same path"),
    # A file in a directory another role creates and removes entries of.
    ({"autotune_file": "/srv/llm/models/tuning.json"},
     "autotune_file (/srv/llm/models/tuning.json) is inside gguf_model_dir (/srv/llm/models)"),
    ({"gguf_model_dir": "/opt/llama.cpp/models"}, "gguf_model_dir (/opt/llama.cpp/models) is inside llama_cpp_prefix"),
    # A role writing over another setting's input: the API key over the TLS key.
    ({"llama_server_api_key_file": "/etc/ssl/private/llm.key", "llama_server_tls_key": "/etc/ssl/private/llm.key"},
     "llama_server_api_key_file (/etc/ssl/private/llm.key) is llama_server_tls_key, an input the llama_server role"),
    # Two files written by two roles, and a variable onto a fixed path of another role.
    ({"autotune_file": "/etc/llama-server/api-key"},
     "autotune_file (/etc/llama-server/api-key) and llama_server_api_key_file (/etc/llama-server/api-key) name the"),
    ({"llama_server_api_key_file": "/etc/haproxy/haproxy.cfg"},
     "llama_server_api_key_file (/etc/haproxy/haproxy.cfg) and /etc/haproxy/haproxy.cfg name the same path"),
    # The key's directory is chmod'ed: it must not be a directory another role manages.
    ({"llama_server_api_key_file": "/srv/llm/models/key"},
     "gguf_model_dir (/srv/llm/models) and the directory of llama_server_api_key_file (/srv/llm/models) name the"),
    ({"llama_cpp_cuda_toolkit_dir": "/opt/llama.cpp"},
     "llama_cpp_prefix (/opt/llama.cpp) is llama_cpp_cuda_toolkit_dir"),
])
def test_a_shared_path_is_refused_naming_both_variables(changes, expected):
    problems = conflicts(**changes)
    assert problems and all(p.startswith("h1: ") for p in problems), problems
    assert any(expected in p for p in problems), problems
    # One message per pair: the key file inside the model directory is a second one in its case.
    assert len(problems) == (2 if "/srv/llm/models/key" in str(changes) else 1), problems


@pytest.mark.parametrize("changes", [
    {"llama_cpp_ccache_dir": "/opt/llama.cpp/ccache"},  # inside the same role's tree
    {"llama_server_api_key_file": "/etc/llm/api-key", "autotune_file": "/etc/llm/tuning.json",
     "preflight_tuning_file": "/etc/llm/tuning.json"},  # a directory both create, a file one writes and one reads
    {"llama_server_tls_cert": "/srv/llm/models/cert.pem"},  # an input inside a tree: read, never pruned
    {"gguf_model_dir": "/srv/llm/models/", "llama_cpp_prefix": "/opt//llama.cpp"},  # spelled differently, apart
])
def test_paths_that_may_meet_pass(changes):
    assert conflicts(**changes) == []


def test_only_the_roles_the_host_runs_are_compared():
    values = {**DEFAULTS, "llama_server_api_key_file": "/etc/haproxy/haproxy.cfg"}
    assert po.conflicts("h1", SERVER, values) == []
    assert po.conflicts("h1", [*SERVER, "llm_gateway"], values)
    assert po.variables(["llm_gateway"]) == ["llm_gateway_tls_cert_path"]


# ---- what is on disk

def _names(path):
    info = os.stat(path)
    return pwd.getpwuid(info.st_uid).pw_name, grp.getgrgid(info.st_gid).gr_name


def test_absent_paths_and_the_roles_own_pass(tmp_path):
    mine = tmp_path / "etc-llm"
    mine.mkdir(mode=0o750)
    os.chmod(mine, 0o750)  # noqa: S103 (a test directory, the mode the role sets)
    key = mine / "api-key"
    key.write_text("k" * 32)
    os.chmod(key, 0o640)
    owner, group = _names(key)
    assert po.owned_problems([
        {"name": "a", "path": str(tmp_path / "missing" / "file"), "kind": "file", "owner": "root", "mode": "0640"},
        {"name": "b", "path": str(tmp_path / "missing"), "kind": "dir", "owner": "root", "mode": "0750"},
        {"name": "c", "path": str(key), "kind": "file", "owner": owner, "group": group, "mode": "0640"},
        {"name": "d", "path": str(mine), "kind": "dir", "owner": owner, "group": group, "mode": "0750"},
    ]) == []


def test_a_shared_directory_is_not_chmodded():
    """/var is on every host, root:root 0755: a key file directly in it would make it root:llama 0750."""
    problem, = po.owned_problems([{"name": "llama_server_api_key_file (its directory)", "path": "/var", "kind": "dir",
                                   "owner": "root", "group": "llama", "mode": "0750"}])
    assert problem.startswith("llama_server_api_key_file (its directory): /var exists as root:root 0755")
    assert "would make it root:llama 0750" in problem


def test_a_file_the_role_did_not_write_is_not_overwritten(tmp_path):
    theirs = tmp_path / "99-custom.conf"
    theirs.write_text("vm.swappiness = 1\n")
    problem, = po.owned_problems([{"name": "os_tuning_sysctl_file", "path": str(theirs), "marker": "LLM inference"}])
    assert problem.startswith(f"os_tuning_sysctl_file: {theirs} exists and this role did not write it")
    assert "'LLM inference'" in problem
    # Another mode than the role writes: someone else's file.
    os.chmod(theirs, 0o600)
    problem, = po.owned_problems([{"name": "k", "path": str(theirs), "mode": "0640"}])
    assert "0600 where the role writes *:* 0640" in problem


def test_a_directory_where_a_file_goes_and_a_file_where_a_directory_goes(tmp_path):
    afile = tmp_path / "f"
    afile.write_text("")
    problems = po.owned_problems([{"name": "x_file", "path": str(tmp_path), "kind": "file"},
                                  {"name": "x_dir", "path": str(afile), "kind": "dir", "mode": "0755"}])
    assert problems[0].startswith("x_file: ") and "is not a regular file" in problems[0]
    assert problems[1].startswith("x_dir: ") and "is not a directory" in problems[1]


def test_a_link_is_judged_by_what_it_points_to(tmp_path):
    """file: state=directory with a mode changes the link's target."""
    target = tmp_path / "shared"
    target.mkdir()
    os.chmod(target, 0o755)  # noqa: S103 (a test directory, as /var is)
    link = tmp_path / "link"
    link.symlink_to(target)
    problem, = po.owned_problems([{"name": "d", "path": str(link), "kind": "dir", "mode": "0750"}])
    assert f"{link} exists as" in problem and "0755" in problem


def test_the_sysctl_file_the_role_writes_is_its_own(tmp_path):
    """The template carries os_tuning's marker: a second run may rewrite its own file."""
    role = ROOT / "roles" / "os_tuning"
    marker = yaml.safe_load((role / "vars" / "main.yml").read_text())["__os_tuning_sysctl_marker"]
    text = jinja2.Template((role / "templates" / "sysctl.conf.j2").read_text()).render(
        ansible_managed="Ansible managed", __os_tuning_sysctl_marker=marker, __os_tuning_sysctl={"vm.swappiness": 10})
    written = tmp_path / "60-llm-inference.conf"
    written.write_text(text)
    assert po.owned_problems([{"name": "os_tuning_sysctl_file", "path": str(written), "marker": marker}]) == []
    assert stat.S_ISREG(written.stat().st_mode)


# ---- every pair, not a sample: each changing path of one role against every path of another.

def _entries():
    return [(role, source, access) for role, entries in po.ROLE_PATHS.items()
            for source, access, _what in entries if access != po.CONTROL]


def _assign(values, source, path):
    """Set values so that source (a variable, '<variable>|dirname' or a fixed path) names path; False when the
    entry is a fixed path other than path."""
    name, _, derived = source.partition("|")
    if name.startswith("/"):
        return name == path
    values[name] = path + "/file" if derived else path
    return True


def _pairs():
    out = []
    for i, (role_a, a, access_a) in enumerate(_entries()):
        for role_b, b, access_b in _entries()[i + 1:]:
            if access_a in po.CHANGES and (access_b in po.CHANGES or access_b == po.READ) \
                    and not (access_a == access_b == po.DIR) and a.split("|")[0] != b.split("|")[0] \
                    and not (a.startswith("/") and b.startswith("/")):  # two fixed paths: the last test
                out.append((role_a, a, role_b, b))
    return out


@pytest.mark.parametrize(("role_a", "a", "role_b", "b"), _pairs(), ids=lambda v: str(v).split("|")[0].strip("/"))
def test_any_two_changing_paths_on_one_host_are_refused(role_a, a, role_b, b):
    """Both roles on one host, the two settings naming one path (a variable moved onto the other's, or onto its
    fixed path): refused, whichever pair, naming the path."""
    fixed = next((s for s in (a, b) if s.startswith("/")), None)
    target = fixed or "/srv/shared/x"
    values = {k: f"/srv/apart/{k}" for k in po.variables(ALL)}
    assert _assign(values, a, target) and _assign(values, b, target)
    problems = po.conflicts("h1", sorted({role_a, role_b}), values)
    assert problems and target in " ".join(problems), (a, b, values)


@pytest.mark.parametrize(("role", "source"), [(r, s) for r, s, acc in _entries() if acc in po.CHANGES
                                              and not s.startswith("/")], ids=lambda v: str(v).split("|")[0])
def test_anything_a_role_changes_inside_another_roles_tree_is_refused(role, source):
    values = {k: f"/srv/apart/{k}" for k in po.variables(ALL)}
    trees = [(r, s) for r, s, acc in _entries() if acc == po.TREE and r != role]
    for tree_role, tree in trees:
        inside = dict(values)
        _assign(inside, source, inside[tree] + "/sub")
        problems = po.conflicts("h1", sorted({role, tree_role}), inside)
        assert any("is inside" in p and tree in p for p in problems), (source, tree, problems)


def test_the_two_fixed_paths_of_the_table_are_apart():
    fixed = [s for _r, s, _a in _entries() if s.startswith("/")]
    assert len(fixed) == len(set(fixed))
    assert po.conflicts("h1", ALL, {k: f"/srv/apart/{k}" for k in po.variables(ALL)}) == []


def test_a_current_link_may_only_be_a_link(tmp_path):
    """The switch replaces <dir>/current by rename(2): a directory or a file there is someone's, refused up front."""
    versions = tmp_path / "v1"
    versions.mkdir()
    link = tmp_path / "current"
    item = {"name": "gguf_model_dir", "path": str(link), "kind": "link"}
    assert po.owned_problems([item]) == []  # absent
    link.symlink_to(versions)
    assert po.owned_problems([item]) == []
    link.unlink()
    link.mkdir()
    problem, = po.owned_problems([item])
    assert problem.startswith(f"gguf_model_dir: {link} exists and is not a symlink")
