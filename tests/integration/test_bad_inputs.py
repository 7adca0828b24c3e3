"""A wrong inventory fails in the first seconds, before any change, naming the variable.

Each case runs the real site.yml (check mode, against this machine) with one bad value and
asserts: the play failed, the failing task is an input check (a role's argument spec or its
validate.yml), its message names the variable and the expected form, and no earlier task
reported a change.

The cases are hosts of one inventory (aliases of this machine, connection local), one bad value
each, all in one ansible-playbook run (one run per case took ~8 s each); every case still asserts
on its own host's tasks. Run alone, with the bad value as an extra var (-e) and localhost as the
play's only host: a shared setting (playbooks/vars/shared_settings.yml sets it from llm_*, which
an inventory value cannot override), and a case whose message names the play's hosts.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SHA = "0" * 64
GOOD = {
    "llm_hosts": "localhost",
    "ansible_become": False,
    "ansible_python_interpreter": sys.executable,
    "gguf_model_repo": "org/model-GGUF",
    # Nothing listens there: a case that passed validation would fail later, visibly, at the download.
    "gguf_model_endpoint": "http://127.0.0.1:9",
    "gguf_model_files": [{"name": "model-Q6_K.gguf", "sha256": SHA}],
}
SHARDS = [{"name": f"m-Q6_K-0000{i}-of-00003.gguf", "sha256": SHA} for i in (1, 3)]

CASES = [
    ({"gguf_model_repo": ""}, "gguf_model_repo must be '<org>/<name>'"),
    ({"gguf_model_repo": "just-a-name"}, "gguf_model_repo must be '<org>/<name>'"),
    ({"gguf_model_endpoint": "ftp://mirror.example"}, "gguf_model_endpoint must be an http:// or https:// URL"),
    ({"gguf_model_dir": "models"}, "gguf_model_dir must be an absolute path"),
    ({"gguf_model_files": [{"name": "model.bin"}]}, "gguf_model_files: every entry needs a name ending in .gguf"),
    ({"gguf_model_files": [{"name": "m.gguf", "sha256": "abc123"}]}, "sha256 of m.gguf must be 64 lowercase hex"),
    ({"gguf_model_files": SHARDS}, "incomplete shard set m-Q6_K: 3 shards expected, missing [2]"),
    ({"gguf_model_allow_unverified": "perhaps"}, "gguf_model_allow_unverified"),
    ({"llama_server_port": 70000}, "llama_server_port must be a whole number from 1 to 65535"),
    ({"llama_server_port": "http"}, "llama_server_port"),
    # YAML's yes/on/true arrive as a boolean, which Jinja's int filter would have taken as 1.
    ({"llama_server_port": True}, "llama_server_port must be a whole number from 1 to 65535 (a TCP port), got True"),
    ({"llama_server_threads": 4096}, "llama_server_threads must be a whole number from 1 to"),
    ({"llama_server_host": "0.0.0.0"}, "llama_server_api_key must be set"),  # noqa: S104 (refused, as it must be)
    ({"llama_server_host": "0.0.0.0", "llama_server_api_key": "short"}, "llama_server_api_key must be set"),  # noqa: S104
    ({"llama_server_tls_cert": "/etc/ssl/llama.pem"}, "llama_server_tls_cert and llama_server_tls_key must be set"),
    ({"llama_server_user": "root"}, "llama_server_user must be a system user name other than root"),
    ({"llama_server_ctx_size": 16}, "llama_server_ctx_size must be a whole number of at least 128"),
    ({"llama_cpp_source_type": "svn"}, "llama_cpp_source_type must be one of: tarball, git"),
    ({"llama_cpp_source_checksum": "md5:d41d8cd98f00b204e9800998ecf8427e"}, "llama_cpp_source_checksum must be"),
    ({"llama_cpp_source_url": "file:///etc/passwd"}, "llama_cpp_source_url must be an http:// or https:// URL"),
    ({"llama_cpp_prefix": "opt/llama.cpp"}, "llama_cpp_prefix must be an absolute path"),
    # Paths (module_utils/path_ownership.py): a file the role would overwrite or remove, a directory it would chmod,
    # two roles in one place. /etc/hostname and /var are on every host.
    ({"autotune_enabled": True, "autotune_file": "/etc/hostname"},
     "autotune_file: /etc/hostname exists and this role did not write it"),
    ({"llama_server_api_key_file": "/etc/hostname"},
     "llama_server_api_key_file: /etc/hostname exists and this role did not write it"),
    ({"llama_server_api_key_file": "/var/llm-api-key", "llama_server_api_key": "k-0123456789abcdef"},
     "llama_server_api_key_file (its directory): /var exists as root:root 0755"),
    ({"llama_cpp_ccache_dir": "/srv/llm/models"},
     "llama_cpp_ccache_dir (/srv/llm/models) and gguf_model_dir (/srv/llm/models) name the same path"),
    ({"os_tuning_sysctl_overrides": {"vm.swappiness; reboot": 1}}, "is not a sysctl key"),
    ({"llama_server_alias": "my model"}, "llama_server_alias must be a model name"),
    ({"gguf_model_download_connections": 65}, "gguf_model_download_connections must be a whole number from 1 to 64"),
    ({"gguf_model_download_connections": 0}, "gguf_model_download_connections must be a whole number from 1 to 64"),
    ({"gguf_model_download_connections": True}, "gguf_model_download_connections must be a whole number from 1 to 64 "
                                                "(connections per file), got True"),
    ({"gguf_model_progress_interval": 0}, "gguf_model_progress_interval must be a number from 1 to 3600 (seconds"),
    ({"autotune_budget_minutes": True}, "autotune_budget_minutes must be a number from 0.5 to 240 (minutes), got True"),
    # An unquoted off in YAML: the argument spec lets the boolean through where 'off' is a choice.
    ({"llama_server_gpu_offload": False}, "llama_server_gpu_offload must be one of: auto, off, got the YAML boolean "
                                          "False: write 'off' in quotes"),
    ({"gguf_model_fleet_source": "llm-9"}, "gguf_model_fleet_source must be a host of this play (localhost)"),
    ({"gguf_model_fleet_port": 0}, "gguf_model_fleet_port must be a whole number from 1 to 65535"),
    ({"gguf_model_fleet_address": "-llm-1"}, "gguf_model_fleet_address must be an IP address or a host name"),
    ({"llm_threads": 4096}, "llm_threads must be a whole number from 1 to"),
    ({"llm_service_user": "root"}, "llm_service_user must be a system user name other than root"),
    # Issue #28: an existing account of another service (every Debian and Ubuntu host has www-data).
    ({"llm_service_user": "www-data"}, "llama_server_user 'www-data' is an existing account the role did not create"),
    ({"llm_ctx_size": 16}, "llm_ctx_size must be a whole number of at least 128"),
    ({"llm_parallel": 0}, "llm_parallel must be a whole number of at least 1"),
    ({"llm_parallel": True}, "llm_parallel must be a whole number of at least 1 (slots), got True (a YAML true/false"),
    ({"llm_autotune_budget_minutes": 0}, "llm_autotune_budget_minutes must be a number from 0.5 to 240 (minutes)"),
    ({"llm_autotune": "sometimes"}, "llm_autotune"),
    ({"autotune_repetitions": 0}, "autotune_repetitions must be a whole number from 1 to 20"),
    ({"autotune_generate_tokens": 0}, "autotune_generate_tokens must be a whole number from 1 to 4096"),
    ({"autotune_file": "tuning.json"}, "autotune_file must be an absolute path"),
    ({"preflight_numa": "spread"}, "preflight_numa must be one of: interleave, distribute, isolate, none"),
    # Issue #12: flags the role sets, unit-file values, paths, URLs, secrets, hardware overrides.
    ({"llama_server_extra_args": ["--port", "9000"]}, "llama_server_extra_args[0]: '--port' sets the port"),
    ({"llama_server_extra_args": ["-hf", "org/other-GGUF"]}, "the role manages: set llama_server_model_path"),
    # Issue #28: the same settings through llama-server's environment variables, options that serve files, and
    # a flag with its value in one entry (systemd passes it as one argument).
    ({"llama_server_environment": {"LLAMA_ARG_PORT": "9000"}},
     "llama_server_environment: LLAMA_ARG_PORT sets llama-server's port, which the role manages"),
    ({"llama_server_extra_args": ["--path", "/srv/www"]}, "'--path' serves a directory's files over HTTP"),
    ({"llama_server_extra_args": ["--batch-size 512"]}, "'--batch-size' and its value must be two entries"),
    ({"llama_server_host": "127.0.0.1\nExecStartPre=/bin/sh"}, "llama_server_host must not contain control characters"),
    ({"llama_server_numactl_args": ["/bin/sh"]}, "llama_server_numactl_args must be numactl options"),
    ({"llama_server_model_path": "/srv/m/../m.gguf"}, "llama_server_model_path must be an absolute, normalized path"),
    ({"gguf_model_dir": "/srv"}, "gguf_model_dir must be a directory of its own"),
    ({"llama_cpp_prefix": "/opt/llama.cpp/"}, "llama_cpp_prefix must be an absolute, normalized path"),
    ({"benchmark_reports_dir": "reports"}, "benchmark_reports_dir must be an absolute path"),
    ({"llama_cpp_source_url": "https://x.example/a b.tar.gz"}, "llama_cpp_source_url must be an http:// or https://"),
    ({"llm_hardware_overrides": {"memory_speed_mts": 48000}},
     "llm_hardware_overrides.memory_speed_mts must be a whole number from 800 to 12800"),
    ({"llm_hardware_overrides": {"channels": 12}}, "llm_hardware_overrides: unknown key 'channels'"),
    ({"os_tuning_kernel_cmdline": ['quiet" ; reboot ; "']}, "os_tuning_kernel_cmdline must be kernel parameters"),
]
# Refused without the secret appearing anywhere in the output.
SECRET_CASES = [
    ({"gguf_model_endpoint": "https://bob:hunter2-secret@hf.example"}, "gguf_model_endpoint must not carry credentials",
     "hunter2-secret"),
    ({"llama_server_api_key": "with spaces secret-key-value"}, "llama_server_api_key must be printable ASCII",
     "secret-key-value"),
    ({"gguf_model_token": "hf_tok\tsecret-token"}, "gguf_model_token must be printable ASCII", "secret-token"),
    ({"llama_server_extra_args": ["--api-key=secret-on-the-command-line"]}, "'--api-key' sets the api key",
     "secret-on-the-command-line"),
]


SHARED = set(yaml.safe_load((ROOT / "playbooks" / "vars" / "shared_settings.yml").read_text()))


def alone(bad, message):
    """A case run by itself (see the module's docstring), not as a host of the batch."""
    return bool(SHARED & set(bad)) or "host of this play" in message


def run_site(extra, raw=False, hosts=None, tmp=None):
    """site.yml in check mode: against localhost with GOOD and `extra` as extra vars, or, given hosts
    ({host: its bad values}), against those hosts (aliases of localhost) with GOOD as the inventory's vars
    (extra vars would override the hosts' own values)."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_LOCALHOST_WARNING="0")
    if hosts is None:
        target = ["-i", "localhost,", "-c", "local", "-e", json.dumps(GOOD), "-e", json.dumps(extra)]
    else:
        inventory = Path(tmp) / "hosts.json"
        common = {k: v for k, v in GOOD.items() if k != "llm_hosts"}
        inventory.write_text(json.dumps({"all": {"vars": {**common, "ansible_connection": "local"}, "hosts": hosts}}))
        target = ["-i", str(inventory), "-f", "8", "-e", json.dumps({"llm_hosts": "all"})]
    out = subprocess.run(
        ["ansible-playbook", "site.yml", *target, "--check"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=600)
    return (out.returncode, json.loads(out.stdout)) + ((out.stdout + out.stderr,) if raw else ())


CASE_IDS = [next(iter(c[0])) + "-" + str(i) for i, c in enumerate(CASES)]
SECRET_IDS = [next(iter(c[0])) for c in SECRET_CASES]


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """(returncode, json result, output) of one site.yml run with every batched case as a host, and
    the good configuration as host "good"."""
    hosts = {f"case-{i}": bad for i, (bad, message) in enumerate(CASES) if not alone(bad, message)}
    hosts.update({f"secret-{i}": bad for i, (bad, _, _) in enumerate(SECRET_CASES) if not alone(bad, "")})
    hosts["good"] = {}
    rc, result, output = run_site({}, raw=True, hosts=hosts, tmp=tmp_path_factory.mktemp("bad_inputs"))
    assert set(result["stats"]) == set(hosts), output[-2000:]
    return rc, result, output


@pytest.mark.parametrize(("index", "bad", "message"), [(i, *c) for i, c in enumerate(CASES)], ids=CASE_IDS)
def test_bad_input_fails_before_any_change(request, index, bad, message):
    if alone(bad, message):
        check_refused(*run_site(bad), message)
    else:
        rc, result, _ = request.getfixturevalue("batch")
        check_refused(rc, result, message, f"case-{index}")


@pytest.mark.parametrize(("index", "bad", "message", "secret"), [(i, *c) for i, c in enumerate(SECRET_CASES)],
                         ids=SECRET_IDS)
def test_bad_secret_is_refused_without_being_shown(request, index, bad, message, secret):
    if alone(bad, message):
        rc, result, output = run_site(bad, raw=True)
        check_refused(rc, result, message)
    else:
        # The whole run's output: the secret appears nowhere, for no host.
        rc, result, output = request.getfixturevalue("batch")
        check_refused(rc, result, message, f"secret-{index}")
    assert secret not in output


def play_tasks(result, name="Check every host's inputs"):
    """The tasks of one of site.yml's plays (by default the first, where every host's inputs are checked)."""
    return next(p for p in result["plays"] if p["play"]["name"].startswith(name))["tasks"]


def check_refused(rc, result, message, host="localhost"):
    assert rc != 0
    tasks = play_tasks(result)
    failed = [(t, t["hosts"][host]) for t in tasks if t["hosts"].get(host, {}).get("failed")]
    assert failed, "the play did not fail"
    task, res = failed[0]
    text = json.dumps(res)
    assert message in text, f"{task['task']['name']}: {res.get('msg')}"
    # An input check failed: a role's argument spec or one of the validate.yml checks.
    assert task["task"]["name"].split(" : ")[-1].startswith(("Validating arguments", "Check ")), task["task"]["name"]
    before = tasks[: tasks.index(task)]
    assert not any(t["hosts"].get(host, {}).get("changed") for t in before)


def test_a_good_host_stops_when_another_hosts_inputs_are_wrong(batch):
    """In the batch every other host is refused: the good host passes all its checks, then stops at the input
    play's last task, which names the refused hosts; no later play runs on it."""
    rc, result, _ = batch
    assert rc != 0
    tasks = play_tasks(result)
    failed = [(t["task"]["name"], t["hosts"]["good"]) for t in tasks if t["hosts"].get("good", {}).get("failed")]
    assert [name for name, _ in failed] == ["Stop every host when any host's inputs are wrong"], failed
    assert "no host was changed" in failed[0][1]["msg"] and "case-0" in failed[0][1]["msg"]
    assert "good" not in failed[0][1]["msg"].split(":")[1]
    assert not any(t["hosts"].get("good", {}).get("changed") for t in tasks)
    later = [p for p in result["plays"] if not p["play"]["name"].startswith("Check every host's inputs")]
    assert not any("good" in t["hosts"] for p in later for t in p["tasks"])


def test_good_input_passes_every_check():
    """The baseline, alone: with nothing wrong, the run gets past all checks (and every role's spec) and
    only fails where it first needs the network (GOOD points the endpoint at a closed port)."""
    rc, result = run_site({})
    assert rc != 0
    checks = play_tasks(result)
    assert not any(t["hosts"].get("localhost", {}).get("failed") for t in checks)
    names = [t["task"]["name"] for t in checks if "localhost" in t["hosts"]]
    for role in ("llm", "os_tuning", "llama_cpp", "gguf_model", "llama_server", "preflight"):
        assert any(n.startswith(f"{role} : Validating arguments") for n in names), role
    tasks = play_tasks(result, "Prepare the servers")
    failed = [t for t in tasks if t["hosts"].get("localhost", {}).get("failed")]
    assert [t["task"]["name"] for t in failed] == ["gguf_model : List the repository at its revision"]


def _vulkan_candidate():
    out = subprocess.run(["apt-cache", "policy", "libvulkan-dev"], capture_output=True, text=True, check=False)
    header = Path("/usr/include/vulkan/vulkan_core.h")
    installed = next((line.split()[-1] for line in (header.read_text().splitlines() if header.exists() else [])
                      if line.startswith("#define VK_HEADER_VERSION ")), "")
    return installed, out.stdout


def test_a_vulkan_build_this_host_cannot_make_is_refused_before_any_change():
    """llama_cpp_backend vulkan, decided read-only from what this host has or would install: on Debian 12
    (libvulkan-dev 1.3.239) refused at the input play, naming the variable; where the headers are new enough
    (Debian 13), the build's check passes."""
    from ansible_collections.cpu_llm.infra.plugins.module_utils.input_checks import vulkan_headers
    installed, candidate = _vulkan_candidate()
    expected = vulkan_headers(installed, candidate, 272, "libvulkan-dev")
    rc, result = run_site({"llama_cpp_backend": "vulkan"})
    tasks = play_tasks(result)
    name = "Check the Vulkan headers are new enough for this llama.cpp"
    [check] = [t for t in tasks if t["task"]["name"].endswith(name)]
    res = check["hosts"]["localhost"]
    if expected:
        check_refused(rc, result, "llama_cpp_backend vulkan: ")
        assert res.get("failed") and expected[0] in res["msg"]
    else:
        assert not res.get("failed"), res.get("msg")


def test_a_model_directory_whose_current_is_not_a_link_is_refused_before_any_change(tmp_path):
    """gguf_model_dir pointed at a directory that already holds a real 'current' (someone's data): refused at the
    input play, not after the download when the switch would refuse to replace it."""
    (tmp_path / "models" / "current").mkdir(parents=True)
    check_refused(*run_site({"gguf_model_dir": str(tmp_path / "models")}),
                  f"gguf_model_dir: {tmp_path / 'models' / 'current'} exists and is not a symlink")
