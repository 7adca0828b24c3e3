"""The RPC worker's unit, its firewall unit and its nftables table as rendered, read back the way systemd and nft do."""

import re
import shutil
import subprocess
from pathlib import Path

import jinja2
import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar
from ansible_collections.cpu_llm.infra.plugins.filter.llm_input_checks import llm_allowed_networks, systemd_quote
from ansible_collections.cpu_llm.infra.plugins.filter.systemd_sandbox import systemd_sandbox
from ansible_collections.cpu_llm.infra.plugins.module_utils.systemd_syntax import exec_start, split_command_line
from role_vars import trusted  # tests/support (on the path through pytest.ini)

ROLE = Path(__file__).resolve().parents[2] / "roles" / "llm_rpc_worker"
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
BASE = {
    **DEFAULTS, "ansible_managed": "managed", "llm_rpc_worker_binary": "/opt/llama.cpp/current/bin/ggml-rpc-server",
    "llm_rpc_worker_address": "10.0.0.11", "llm_rpc_worker_allowed_sources": ["10.0.0.10"],
    "llm_rpc_worker_threads": 64,
}


def render(template, **overrides):
    # Not HTML: no autoescaping; trim_blocks as Ansible's template module renders.
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,  # noqa: S701
                             trim_blocks=True)
    env.filters["bool"] = lambda v: v if isinstance(v, bool) else str(v).lower() in ("1", "true", "yes", "on")
    env.filters["cpu_llm.infra.systemd_quote"] = systemd_quote
    env.filters["cpu_llm.infra.systemd_sandbox"] = systemd_sandbox
    env.filters["cpu_llm.infra.llm_allowed_networks"] = llm_allowed_networks
    return env.from_string((ROLE / "templates" / template).read_text()).render(**dict(BASE, **overrides))


def unit(**overrides):
    return render("llama-rpc-server.service.j2", **overrides)


def directive(text, key):
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(key + "=")]


def test_exec_start_listens_on_the_address_under_numactl():
    assert split_command_line(exec_start(unit())) == [
        "/usr/bin/numactl", "--interleave=all", "/opt/llama.cpp/current/bin/ggml-rpc-server",
        "-H", "10.0.0.11", "-p", "50052", "-t", "64"]


def test_cache_adds_c_and_its_directory_as_the_only_writable_place():
    text = unit(llm_rpc_worker_cache=True, llm_rpc_worker_numactl_args=[])
    assert split_command_line(exec_start(text)) == [
        "/opt/llama.cpp/current/bin/ggml-rpc-server", "-H", "10.0.0.11", "-p", "50052", "-t", "64", "-c"]
    assert directive(text, "CacheDirectory") == ["llama-rpc-server"]
    assert directive(text, "Environment") == ["LLAMA_CACHE=/var/cache/llama-rpc-server"]
    assert not directive(unit(), "CacheDirectory") and not directive(unit(), "Environment")


def test_values_arrive_as_one_argument_each():
    text = unit(llm_rpc_worker_binary="/opt/llama cpp/bin/ggml-rpc-server", llm_rpc_worker_port=6000,
                llm_rpc_worker_environment={"GGML_RPC_DEBUG": "1", "NOTE": "a b%"})
    argv = split_command_line(exec_start(text))
    assert argv[2] == "/opt/llama cpp/bin/ggml-rpc-server" and argv[argv.index("-p") + 1] == "6000"
    assert directive(text, "Environment") == ["GGML_RPC_DEBUG=1", '"NOTE=a b%%"']


def test_only_the_heads_addresses_and_only_its_port():
    text = unit(llm_rpc_worker_allowed_sources=["10.0.0.10", "10.0.1.0/24", "10.0.1.5", "fd00::10"])
    assert directive(text, "IPAddressDeny") == ["any"]
    assert directive(text, "IPAddressAllow") == ["10.0.0.10 10.0.1.0/24 fd00::10"]
    assert directive(text, "SocketBindAllow") == ["tcp:50052"] and directive(text, "SocketBindDeny") == ["any"]
    assert directive(text, "RestrictAddressFamilies") == ["AF_INET"]


def test_ordered_after_the_firewall_only_when_there_is_one():
    assert directive(unit(), "After") == ["network-online.target llama-rpc-server-firewall.service"]
    assert directive(unit(), "Wants") == ["network-online.target llama-rpc-server-firewall.service"]
    off = unit(llm_rpc_worker_nftables_enabled=False)
    assert directive(off, "After") == ["network-online.target"] and directive(off, "Wants") == ["network-online.target"]
    assert directive(off, "IPAddressAllow") == ["10.0.0.10"]  # the unit's own fence stays


def test_restarts_always_since_the_server_exits_0_when_it_cannot_listen():
    assert directive(unit(), "Restart") == ["always"]
    restart_sec = int(directive(unit(), "RestartSec")[0])
    assert 10 / restart_sec < 5  # fewer starts in 10 s than the default StartLimitBurst


@pytest.mark.parametrize(("key", "value"), [
    ("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
    ("PrivateDevices", "yes"), ("PrivateUsers", "yes"), ("ProtectKernelTunables", "yes"),
    ("ProtectKernelModules", "yes"), ("ProtectKernelLogs", "yes"), ("ProtectControlGroups", "yes"),
    ("ProtectProc", "invisible"), ("RestrictNamespaces", "yes"), ("LockPersonality", "yes"),
    ("MemoryDenyWriteExecute", "yes"), ("DevicePolicy", "closed"), ("CapabilityBoundingSet", ""),
    ("AmbientCapabilities", ""), ("User", "llama"), ("Group", "llama"),
])
def test_hardening_directive(key, value):
    assert directive(unit(), key) == [value]


def test_numactl_keeps_set_mempolicy():
    assert "set_mempolicy" in directive(unit(), "SystemCallFilter")[0].split()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize(("name", "text"), [
    ("llama-rpc-server", lambda: unit()), ("llama-rpc-server", lambda: unit(llm_rpc_worker_cache=True)),
    # root with CAP_NET_ADMIN, for the moment nft runs
    ("llama-rpc-server-firewall", lambda: render("llama-rpc-server-firewall.service.j2")),
], ids=["worker", "worker-with-cache", "firewall"])
def test_exposure_at_most_2_5(name, text, tmp_path):
    """systemd's own score of the unit file (--offline: the file alone)."""
    path = tmp_path / f"{name}.service"
    path.write_text(text())
    out = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(path)],
                         capture_output=True, text=True, check=False).stdout
    score = float(re.search(rf"exposure level for {name}\.service:\s*([\d.]+)", out).group(1))
    assert score <= 2.5, out


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_both_units(tmp_path):
    (tmp_path / "llama-rpc-server.service").write_text(unit(llm_rpc_worker_cache=True).replace(
        "/usr/bin/numactl", "/bin/true"))
    (tmp_path / "llama-rpc-server-firewall.service").write_text(
        render("llama-rpc-server-firewall.service.j2").replace("/usr/sbin/nft", "/bin/true"))
    units = [str(tmp_path / f"{name}.service") for name in ("llama-rpc-server", "llama-rpc-server-firewall")]
    out = subprocess.run(["systemd-analyze", "verify", "--man=no", "--generators=no", *units],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0 and "llama-rpc-server" not in out.stderr, out.stderr


# ----------------------------------------------------------------------------- the firewall

def test_the_firewall_unit_loads_the_table_and_follows_the_hosts_firewall():
    text = render("llama-rpc-server-firewall.service.j2")
    assert directive(text, "ExecStart") == ["/usr/sbin/nft -f /etc/llama-rpc-server/nftables.nft"]
    assert directive(text, "ExecReload") == directive(text, "ExecStart")
    assert directive(text, "ExecStop") == ["-/usr/sbin/nft delete table inet llm_rpc_worker"]
    assert directive(text, "PartOf") == ["nftables.service"]
    assert directive(text, "ReloadPropagatedFrom") == ["nftables.service"]
    assert "nftables.service" in directive(text, "After")[0]


def table(**overrides):
    return render("nftables.nft.j2", **overrides)


def test_the_table_admits_the_sources_of_both_families_and_drops_the_rest():
    text = table(llm_rpc_worker_allowed_sources=["10.0.0.10", "10.0.2.0/24", "fd00::10"])
    assert "elements = { 10.0.0.10, 10.0.2.0/24 }" in text and "elements = { fd00::10 }" in text
    rules = [line.strip() for line in text.splitlines() if line.strip().startswith("tcp dport")]
    assert rules == ["tcp dport 50052 ip saddr @heads_ipv4 accept", "tcp dport 50052 ip6 saddr @heads_ipv6 accept",
                     "tcp dport 50052 counter drop"]
    assert "flush ruleset" not in text and "flush" not in re.sub(r"#.*", "", text)
    # Replacing only its own table: create it if missing, delete it, define it, in one file (one transaction).
    code = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert code[:3] == ["table inet llm_rpc_worker", "delete table inet llm_rpc_worker", "table inet llm_rpc_worker {"]


def test_an_empty_family_has_an_empty_set():
    text = table()
    assert text.count("elements") == 1 and "elements = { 10.0.0.10 }" in text


def nft_check(path):
    """`nft -c -f` in a network namespace of its own (unprivileged: a user namespace too): the kernel
    checks the table there, and nothing of this host's ruleset is read or changed."""
    base = ["unshare", "--net"] if subprocess.run(["id", "-u"], capture_output=True, text=True).stdout.strip() == "0" \
        else ["unshare", "--user", "--map-root-user", "--net"]
    return subprocess.run([*base, "nft", "-c", "-f", str(path)], capture_output=True, text=True, check=False)


@pytest.mark.skipif(shutil.which("nft") is None or shutil.which("unshare") is None, reason="nft is not installed")
@pytest.mark.parametrize("sources", [["10.0.0.10"], ["10.0.0.10", "10.0.2.0/24", "fd00::10"], ["127.0.0.1"],
                                     ["fd00::/64"]])
def test_nft_accepts_the_table(sources, tmp_path):
    path = tmp_path / "nftables.nft"
    path.write_text(table(llm_rpc_worker_allowed_sources=sources))
    out = nft_check(path)
    if "Operation not permitted" in out.stderr or "unshare failed" in out.stderr:
        pytest.skip(f"no network namespace for nft -c here: {out.stderr.strip()}")
    assert out.returncode == 0, out.stderr


@pytest.mark.skipif(shutil.which("nft") is None or shutil.which("unshare") is None, reason="nft is not installed")
def test_nft_check_can_fail(tmp_path):
    path = tmp_path / "nftables.nft"
    path.write_text(table().replace("ip saddr", "ip sadr"))
    out = nft_check(path)
    if "Operation not permitted" in out.stderr or "unshare failed" in out.stderr:
        pytest.skip(f"no network namespace for nft -c here: {out.stderr.strip()}")
    assert out.returncode != 0


def test_the_role_checks_the_table_with_nft_before_installing_it():
    tasks = yaml.safe_load((ROLE / "tasks" / "main.yml").read_text())
    block = next(t for t in tasks if t["name"] == "Install the nftables table that admits only the head")["block"]
    (write,) = [t["ansible.builtin.template"] for t in block if t.get("ansible.builtin.template", {}).get(
        "src") == "nftables.nft.j2"]
    assert write["validate"] == "/usr/sbin/nft -c -f %s"


# ----------------------------------------------------------------------------- the role's vars

def role_var(name, **settings):
    role_vars = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
    variables = {**trusted(DEFAULTS), **BASE, **settings, **trusted(role_vars)}
    value = Templar(loader=DataLoader(), variables=variables).template(variables[name])
    return value.strip() if isinstance(value, str) else value


def test_listening_is_read_from_proc_net_tcp():
    pattern = re.compile(role_var("__llm_rpc_worker_listening") + " ", re.M)
    # /proc/net/tcp as the kernel writes it: 10.0.0.11:50052 listening, and a client connected to the
    # head's 10.0.0.10:50052 (a remote port of 50052 is not this worker listening).
    listening = "   0: 0B00000A:C384 00000000:0000 0A 00000000:00000000 00:00000000 00000000   997  0 4242 1\n"
    other = "   1: 0B00000A:9C40 0A00000A:C384 01 00000000:00000000 00:00000000 00000000   997  0 4343 1\n"
    assert pattern.search(listening) and not pattern.search(other)
    assert role_var("__llm_rpc_worker_listening", llm_rpc_worker_port=8080).startswith("[0-9A-F]{8}:1F90 ")


def test_packages_follow_the_features():
    assert role_var("__llm_rpc_worker_packages") == ["numactl", "nftables"]
    assert role_var("__llm_rpc_worker_packages", llm_rpc_worker_numactl_args=[],
                    llm_rpc_worker_nftables_enabled=False) == []


def test_the_worker_restarts_on_a_switched_build():
    assert role_var("__llm_rpc_worker_switches") == []
    switched = {"link": "/opt/llama.cpp/current", "previous": "a", "current": "b", "what": "llama.cpp build"}
    assert role_var("__llm_rpc_worker_switches", llama_cpp_switched=switched) == [switched]
