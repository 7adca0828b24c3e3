"""The llama-server unit as rendered for the options a container cannot exercise live."""

from pathlib import Path

import jinja2
import pytest
from ansible_collections.cpu_llm.infra.plugins.filter.llm_input_checks import systemd_quote

TEMPLATE = Path(__file__).resolve().parents[2] / "roles" / "llama_server" / "templates" / "llama-server.service.j2"
BASE = {
    "ansible_managed": "managed", "llama_server_model_path": "/srv/m/model-00001-of-00003.gguf",
    "llama_server_user": "llama", "llama_server_group": "llama", "llama_server_numactl_args": ["--interleave=all"],
    "llama_server_binary": "/opt/llama.cpp/current/bin/llama-server", "llama_server_host": "127.0.0.1",
    "llama_server_port": 8080, "llama_server_threads": 64, "llama_server_ctx_size": 4096, "llama_server_parallel": 2,
    "llama_server_metrics": True, "llama_server_mlock": False, "llama_server_api_key": "",
    "llama_server_api_key_file": "/etc/llama-server/api-key", "llama_server_tls_cert": "", "llama_server_tls_key": "",
    "llama_server_extra_args": [], "llama_server_alias": "",
}


def render(**overrides):
    # A systemd unit, not HTML: no autoescaping, exactly as Ansible's template module renders it.
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)  # noqa: S701
    env.filters["basename"] = lambda p: p.rsplit("/", 1)[-1]
    env.filters["bool"] = lambda v: v if isinstance(v, bool) else str(v).lower() in ("1", "true", "yes", "on")
    env.filters["cpu_llm.infra.systemd_quote"] = systemd_quote
    return env.from_string(TEMPLATE.read_text()).render(**dict(BASE, **overrides))


def directive(unit, key):
    return [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith(key + "=")]


def test_default_exec_line_interleaves_and_sizes_the_context_for_all_slots():
    unit = render()
    exec_line = unit[unit.index("ExecStart="):unit.index("Restart=")]
    assert exec_line.startswith("ExecStart=/usr/bin/numactl --interleave=all \\\n"
                                "  /opt/llama.cpp/current/bin/llama-server")
    assert "--ctx-size 8192" in exec_line and "--parallel 2" in exec_line and "--metrics" in exec_line
    assert "--mlock" not in exec_line and "--api-key" not in exec_line
    assert directive(unit, "CapabilityBoundingSet") == [""]
    assert not directive(unit, "LimitMEMLOCK")


def test_mlock_gets_the_memlock_limit_and_still_no_capability():
    unit = render(llama_server_mlock=True)
    assert "--load-mode mmap+mlock" in unit
    assert directive(unit, "LimitMEMLOCK") == ["infinity"]
    assert directive(unit, "CapabilityBoundingSet") == [""] and directive(unit, "AmbientCapabilities") == [""]


def test_api_key_goes_through_a_file_never_the_command_line():
    unit = render(llama_server_api_key="s3cret-s3cret-s3cret", llama_server_host="0.0.0.0")  # noqa: S104
    assert "--api-key-file /etc/llama-server/api-key" in unit
    assert "s3cret" not in unit


def test_tls_uses_llama_servers_own_options():
    unit = render(llama_server_tls_cert="/etc/ssl/llama.crt", llama_server_tls_key="/etc/ssl/llama.key")
    assert "--ssl-cert-file /etc/ssl/llama.crt" in unit and "--ssl-key-file /etc/ssl/llama.key" in unit


@pytest.mark.parametrize("key", ["NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices",
                                 "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
                                 "ProtectControlGroups", "RestrictAddressFamilies", "RestrictNamespaces",
                                 "LockPersonality", "SystemCallFilter", "Restart"])
def test_hardening_directive_present(key):
    assert directive(render(), key), key


def test_numactl_keeps_set_mempolicy():
    allowed = directive(render(), "SystemCallFilter")[0].split()
    assert "set_mempolicy" in allowed


def test_alias_is_one_argument():
    unit = render(llama_server_alias="bartowski/Meta-Llama-3.1-405B-Instruct-GGUF:Q6_K")
    assert "--alias bartowski/Meta-Llama-3.1-405B-Instruct-GGUF:Q6_K \\\n" in unit
    assert "--alias" not in render()


TUNED_TWO_NODES = {  # what autotune's service_settings gives for a 2-node host where distribute won
    "threads": 48, "numactl": [], "numa_flag": "distribute", "environment": {"OMP_WAIT_POLICY": "active"},
    "batch_size": 4096, "ubatch_size": 1024, "load_mode": "none",
    "comments": {"threads": "measured 2026-11-27: 48 threads 5.10 tok/s vs 64 threads 4.61"},
}


def test_measured_settings_replace_the_defaults_each_with_its_note():
    unit = render(llama_server_tuning=TUNED_TWO_NODES)
    exec_line = unit[unit.index("ExecStart="):unit.index("Restart=")]
    assert exec_line.startswith("ExecStart=/opt/llama.cpp/current/bin/llama-server")  # no numactl: distribute
    assert "--threads 48" in exec_line and "--numa distribute" in exec_line
    assert "--batch-size 4096" in exec_line and "--ubatch-size 1024" in exec_line
    assert "--load-mode none" in exec_line
    assert directive(unit, "Environment") == ["OMP_WAIT_POLICY=active"]
    assert "#   threads: measured 2026-11-27: 48 threads 5.10 tok/s vs 64 threads 4.61" in unit


def test_one_node_isolation_and_locking_a_model_read_into_ram():
    tuned = dict(TUNED_TWO_NODES, numactl=["--cpunodebind=0", "--membind=0"], numa_flag="", environment={})
    unit = render(llama_server_tuning=tuned, llama_server_mlock=True)
    assert "ExecStart=/usr/bin/numactl --cpunodebind=0 --membind=0 \\\n" in unit
    assert "--numa" not in unit and "--load-mode mlock" in unit and not directive(unit, "Environment")


def test_without_a_measurement_the_unit_is_as_before():
    assert render(llama_server_tuning={}) == render()
    exec_line = render()[render().index("ExecStart="):render().index("Restart=")]
    assert "Measured on this host" not in render() and "--load-mode" not in exec_line
