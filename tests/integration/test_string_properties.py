"""Every string variable of every role, given a newline, a leading '-' or a space: refused or safe.

For each `type: str` / `path` / list-of-str option of every role's argument spec, three values
derived from a good one: with a newline inside, with a '-' in front, with a space inside. Each is
either refused by an input check naming the variable (the checks of site.yml, run through
tests/validate.yml against one inventory host per value, all in one ansible-playbook run; the
newline values of a role share a host, since its control-character check names them all), or it
passes and then it must be safe where it goes:
- rendered into a unit file (llama-server's, or the RPC worker's for its role): the unit renders (with the
  collection's systemd_quote), passes
  `systemd-analyze verify`, and systemd's splitting of its ExecStart gives the value back intact as
  one argument;
- otherwise, the variable is listed in NOT_RENDERED with where it goes (module arguments and argv
  lists, never a shell line or a file's syntax), so a new variable must be judged before it passes.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest
import yaml
from ansible_collections.cpu_llm.infra.plugins.filter.llm_input_checks import llm_allowed_networks, systemd_quote
from ansible_collections.cpu_llm.infra.plugins.filter.systemd_sandbox import systemd_sandbox
from ansible_collections.cpu_llm.infra.plugins.module_utils.systemd_syntax import exec_start, split_command_line
from llama_server_unit import VARS_FILE, with_commands  # tests/support (on the path through pytest.ini)
from playbook_json import first_failures
from role_vars import trusted

ROOT = Path(__file__).resolve().parents[2]
SHARED = set(yaml.safe_load((ROOT / "playbooks" / "vars" / "shared_settings.yml").read_text()))
# A complete, valid configuration (every optional feature on), so a mutated value is refused for
# its own sake and not because a companion setting is missing.
GOOD = {
    "gguf_model_repo": "org/model-GGUF", "gguf_model_endpoint": "http://127.0.0.1:9", "gguf_model_revision": "main",
    "gguf_model_quant": "Q6_K", "gguf_model_dir": "/srv/llm/models", "gguf_model_token": "hf_abcdefghijklmnop",
    "gguf_model_files": [{"name": "model-Q6_K.gguf", "sha256": "0" * 64}],
    "llama_cpp_version": "0c1e57098bba43ac29e6e3b677cdceebdd22334f", "llama_cpp_source_type": "git",
    "llama_cpp_ccache_dir": "/var/cache/ccache",
    "llama_cpp_source_url": "https://github.com/ggml-org/llama.cpp/archive/0c1e57098bba.tar.gz",
    "llama_server_binary": "/opt/llama.cpp/current/bin/llama-server",
    "llama_server_model_path": "/srv/llm/models/current/model-Q6_K.gguf", "llama_server_host": "0.0.0.0",  # noqa: S104
    "llama_server_api_key": "k" * 24, "llama_server_tls_cert": "/etc/ssl/llama.crt",
    "llama_server_tls_key": "/etc/ssl/private/llama.key", "llama_server_extra_args": ["--batch-size", "512"],
    "llama_server_group": "llama", "llama_server_numactl_args": ["--interleave=all"],
    "llama_server_alias": "org/model-GGUF:Q6_K",
    "llama_server_api_key_file": "/etc/llama-server/api-key", "llama_server_backend": "cpu",
    "llm_gateway_server": "llm-1",
    "preflight_model_name": "Model Q6_K", "preflight_disk_path": "/srv/llm/models",
    "benchmark_reports_dir": "/srv/reports", "benchmark_bandwidth_working_set": "2GB",
    "autotune_llama_bench": "/opt/llama.cpp/current/bin/llama-bench",
    "autotune_model_path": "/srv/llm/models/current/model-Q6_K.gguf",
    "llama_server_rpc_workers": ["10.0.0.11:50052"],
    # site.yml passes the head's llama_server_rpc_workers here (its preflight include); checked on its own too.
    "preflight_rpc_workers": ["10.0.0.11:50052"],
    # Loopback: on every inventory host without reading its addresses.
    "llm_rpc_worker_address": "127.0.0.1", "llm_rpc_worker_allowed_sources": ["127.0.0.1"],
    "llm_rpc_worker_binary": "/opt/llama.cpp/current/bin/ggml-rpc-server",
    # A host of the test's inventory (the gguf_model newline cases run there), as a fleet source must be.
    "gguf_model_fleet_source": "newline-gguf_model", "gguf_model_fleet_address": "192.0.2.10",
}
# Where a variable that is not rendered into a unit goes, when a value with a space or a leading
# '-' passes its checks. None of these reaches a shell line or a file's syntax.
NOT_RENDERED = {
    "llm_gateway_server": "the llm_haproxy_server module's server argument (drain.yml and ready.yml check its form "
                          "first; the runtime API command is built in Python); control characters refused here",
    "gguf_model_token": "an HTTP Authorization header (a leading '-' is a valid token character)",
    "llama_server_api_key": "a root-owned file read by --api-key-file (a leading '-' is a valid key character)",
    "llama_cpp_cmake_options": "cmake's argv (command: argv); a space inside one option is kept",
    "preflight_model_name": "the sizing report's text only",
    "gguf_model_dir": "module arguments (file, gguf_download) and the rendered model path, checked as such",
    "llama_cpp_prefix": "module arguments (file, command argv) and the rendered binary path, checked as such",
    "llama_cpp_ccache_dir": "the CCACHE_DIR environment variable of the build",
    "preflight_disk_path": "a shell line through the quote filter (preflight main.yml)",
    "benchmark_reports_dir": "module arguments on the control machine (file, copy)",
    "autotune_file": "the llm_autotune module's path argument (read and written by Python, no shell)",
    "autotune_llama_bench": "stat, and the llm_autotune module, which runs it as an argv (no shell)",
    "autotune_model_path": "stat, and llama-bench's -m in the module's argv (no shell)",
    "preflight_tuning_file": "slurp's src (module argument)",
    "benchmark_tuning_file": "slurp's src (module argument)",
}
UNIT = ROOT / "roles" / "llama_server" / "templates" / "llama-server.service.j2"
UNIT_VALUES = {
    "ansible_managed": "managed", "llama_server_user": "llama", "llama_server_port": 8080,
    "llama_server_threads": 8, "llama_server_ctx_size": 4096, "llama_server_parallel": 1,
    "llama_server_metrics": True, "llama_server_mlock": False,
}
# The units values are rendered into, per role: (template, the variables' prefix, the values GOOD lacks).
UNITS = {
    "llama_server": (UNIT, "llama_server_", UNIT_VALUES),
    "llm_rpc_worker": (ROOT / "roles" / "llm_rpc_worker" / "templates" / "llama-rpc-server.service.j2",
                       "llm_rpc_worker_", {"ansible_managed": "managed", "llm_rpc_worker_threads": 8}),
}


def string_options():
    """(role, variable, batchable) for every str/path/list-of-str option, but those site.yml sets from llm_*.

    batchable: its newline case can share a host with the role's other ones, because the role's
    control-character check names every variable at once (not for choices, which the argument
    spec refuses one at a time, nor for secrets, which have their own check).
    """
    found = []
    for spec in sorted((ROOT / "roles").glob("*/meta/argument_specs.yml")):
        options = yaml.safe_load(spec.read_text())["argument_specs"]["main"]["options"]
        for name, option in options.items():
            kind = option.get("type", "str")
            if (kind in ("str", "path") or (kind == "list" and option.get("elements") == "str")) and name not in SHARED:
                found.append((spec.parts[-3], name, not option.get("choices") and not option.get("no_log")))
    return found


def base_value(role, name):
    if name in GOOD:
        return GOOD[name]
    defaults = yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text())
    return defaults[name]


def mutate(value, how):
    """value with a newline inside, a '-' in front, or a space inside (lists: their first entry)."""
    if isinstance(value, list):
        return [mutate(value[0], how), *value[1:]]
    middle = len(value) // 2
    return {"newline": value[:middle] + "\n" + value[middle:], "dash": "-" + value,
            "space": value[:middle] + " " + value[middle:]}[how]


CASES = [(role, name, how, mutate(base_value(role, name), how))
         for role, name, _ in string_options() for how in ("newline", "dash", "space")]
BATCHED = {name for _, name, batchable in string_options() if batchable}


def host_of(role, name, how):
    """The inventory host of a case: one per role for the batched newline cases, else one each."""
    if how == "newline" and name in BATCHED:
        return f"newline-{role}"
    return f"{name}-{how}"


def render_unit(role="llama_server", **values):
    template, prefix, extra = UNITS[role]
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,  # noqa: S701 (a unit)
                             trim_blocks=True)
    env.filters["basename"] = lambda p: p.rsplit("/", 1)[-1]
    env.filters["bool"] = lambda v: v if isinstance(v, bool) else str(v).lower() in ("1", "true", "yes", "on")
    env.filters["cpu_llm.infra.systemd_quote"] = systemd_quote
    env.filters["cpu_llm.infra.systemd_sandbox"] = systemd_sandbox
    env.filters["cpu_llm.infra.llm_allowed_networks"] = llm_allowed_networks
    # The role's own file: its templates (llama_server_tuning's default) are templated, as Ansible does.
    defaults = trusted(yaml.safe_load((template.parents[1] / "defaults" / "main.yml").read_text()))
    rendered = {k: v for k, v in {**defaults, **GOOD}.items() if k.startswith(prefix)}
    variables = {**rendered, **extra, **values}
    if role == "llama_server":  # its command is built by vars/main.yml's filter, the template joins it
        variables = with_commands(variables)
    return env.from_string(template.read_text()).render(**variables)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """{host: (failed task name or None, its result)} from one run of tests/validate.yml."""
    hosts = {}
    for role, name, how, value in CASES:
        hosts.setdefault(host_of(role, name, how), {})[name] = value
    inventory = {"all": {"vars": {**GOOD, "ansible_connection": "local", "ansible_become": False,
                                  "ansible_python_interpreter": sys.executable}, "hosts": hosts}}
    path = tmp_path_factory.mktemp("inv") / "hosts.json"
    path.write_text(json.dumps(inventory))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_LOCALHOST_WARNING="0")
    # ~6 min on an idle 2-core CI host for ~200 hosts; the bound only stops a hung run, so it leaves room
    # for a busy one (CI's own limit is 90 min).
    out = subprocess.run(["ansible-playbook", "tests/validate.yml", "-i", str(path), "-f", "32"], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=False, timeout=1800)
    result = json.loads(out.stdout)
    assert set(result["stats"]) == set(hosts)
    return first_failures(result, hosts)


def test_the_light_playbook_checks_what_site_yml_checks():
    site = next(play for play in yaml.safe_load((ROOT / "playbooks" / "site.yml").read_text())
                if play["name"].startswith("Check every host's inputs"))
    light = yaml.safe_load((ROOT / "tests" / "validate.yml").read_text())[0]
    assert site["vars_files"] == ["vars/shared_settings.yml"] and light["vars_files"][0].endswith(site["vars_files"][0])
    assert [r["role"] for r in site["roles"]] == [r["role"] for r in light["roles"]]

    def roles(play, task):  # a loop of role names, or "{{ a play variable }}" holding one
        loop = task.get("loop", [task["ansible.builtin.include_role"]["name"]])
        return play["vars"][loop.strip("{} ")] if isinstance(loop, str) else loop

    def checked(play):  # every role whose validate entry point the play includes
        return {role for task in play["tasks"] if task.get("ansible.builtin.include_role", {}).get("tasks_from") ==
                "validate" for role in roles(play, task)}
    assert checked(site) == checked(light)
    server = next(t for t in site["tasks"] if t["name"] == "Check the server's inputs")
    assert roles(site, server) == light["tasks"][0]["loop"]


def test_the_good_configuration_passes(outcomes):
    """Every case's other variables are good: a refusal is about the mutated value."""
    assert any(task is None for task, _ in outcomes.values())


@pytest.mark.parametrize(("role", "name", "how", "value"), CASES, ids=[f"{c[1]}-{c[2]}" for c in CASES])
def test_refused_or_safe(outcomes, role, name, how, value, tmp_path):
    task, res = outcomes[host_of(role, name, how)]
    if task is not None:
        assert task.split(" : ")[-1].startswith(("Validating arguments", "Check ")), task
        assert name in json.dumps(res), f"{task}: {res.get('msg')}"
        return
    assert how != "newline", f"{name} with a newline passed every check"
    template = UNITS.get(role, (UNIT,))[0]
    # Rendered as a value: by the template, or (llama-server's command) passed as is to server_command by
    # vars/main.yml (not llama_server_api_key, of which the command gets only whether it is set).
    inputs = VARS_FILE.read_text() if template == UNIT else ""
    if re.search(rf"{{{{ {name}\b|in {name} %}}|else {name}\)* %}}", template.read_text()) or re.search(
            rf'"{{{{ {name}( \| default\([^)]*\))? }}}}"', inputs):
        unit = render_unit(role if role in UNITS else "llama_server", **{name: value})
        argv = split_command_line(exec_start(unit))
        for item in value if isinstance(value, list) else [value]:
            assert item in argv, (name, item, argv)
        # systemd's own parser accepts it (binaries that exist; the arguments are what is checked).
        unit_file = tmp_path / template.name.removesuffix(".j2")
        unit_file.write_text(unit.replace("/usr/bin/numactl", "/bin/true"))
        verify = subprocess.run(["systemd-analyze", "verify", "--man=no", "--generators=no", str(unit_file)],
                                capture_output=True, text=True, check=False)
        assert verify.returncode == 0 and unit_file.name not in verify.stderr, verify.stderr
        return
    assert name in NOT_RENDERED, f"{name}={value!r} passed its checks, is not rendered in a unit: judge where it goes"


pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
