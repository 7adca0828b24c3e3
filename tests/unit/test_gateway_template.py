"""The llm_gateway role's haproxy.cfg and systemd drop-in, rendered with Ansible's Templar for several
inventories, checked by HAProxy itself (`haproxy -c`), run for real (keys at the edge, the gateway's own
/health, the metrics), and the drop-in's sandbox checked by systemd and by running HAProxy under exactly
its capabilities."""

import grp
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
from haproxy_lab import HAPROXY, ROLE, Haproxy, Node, free_port, render, role_variables, wait_until  # tests/support

CLIENT_KEY = "sk-alice-" + "0123456789abcdef" * 2
OTHER_KEY = "sk-bob-" + "fedcba9876543210" * 2
NODE_KEY = "node-key-" + "5a" * 12
THREE = {f"llm-{i}": {"ansible_host": f"10.0.0.{i}"} for i in (1, 2, 3)}
needs_haproxy = pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed (scripts/setup.sh installs it)")


def sections(config):
    """{'frontend llm': [directive lines without comments], ...}; the text before the first section is dropped."""
    found, current = {}, None
    for line in config.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" "):
            current = line.strip()
            found[current] = []
        elif current:
            found[current].append(line.strip())
    return found


def map_file_content(task_name, variables):
    """The content main.yml's copy task of that name writes, rendered from the task itself."""
    tasks = yaml.safe_load((ROLE / "tasks" / "main.yml").read_text())
    (task,) = [t for t in tasks if t["name"] == task_name]
    assert task["no_log"] is True and task["ansible.builtin.copy"]["mode"] == "0640"
    assert task["ansible.builtin.copy"]["owner"] == "root" and task["ansible.builtin.copy"]["group"] == "haproxy"
    templar = Templar(loader=DataLoader(), variables=variables)
    return templar.template(trust_as_template(task["ansible.builtin.copy"]["content"]))


def keyed(tmp_path, **overrides):
    """Variables with client keys and the nodes' key, their map files written where the config points, with
    the content the role's tasks write."""
    keys = [{"name": "alice", "key": CLIENT_KEY}, {"name": "bob", "key": OTHER_KEY}]
    keys_file, node_key_file = tmp_path / "llm-api-keys.map", tmp_path / "llm-backend-key.map"
    variables = {"llm_gateway_api_keys": keys, "llm_gateway_backend_api_key": NODE_KEY}
    keys_file.write_text(map_file_content("Write the client API keys (root:haproxy 0640, never logged)", variables))
    node_key_file.write_text(map_file_content("Write the nodes' API key (root:haproxy 0640, never logged)", variables))
    return {**variables, "__llm_gateway_api_keys_file": str(keys_file),
            "__llm_gateway_backend_key_file": str(node_key_file), **overrides}


def test_the_key_files_hold_one_key_and_its_name_per_line(tmp_path):
    keyed(tmp_path)
    assert (tmp_path / "llm-api-keys.map").read_text() == f"{CLIENT_KEY} alice\n{OTHER_KEY} bob\n"
    assert (tmp_path / "llm-backend-key.map").read_text() == f"nodes {NODE_KEY}\n"


def haproxy_check(config, tmp_path):
    path = tmp_path / "check.cfg"
    path.write_text(config)
    out = subprocess.run([HAPROXY, "-c", "-f", str(path)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout + out.stderr


def test_three_nodes_plain_http_without_keys(tmp_path):
    config = render("haproxy.cfg.j2", role_variables(THREE))
    parts = sections(config)
    assert list(parts) == ["global", "defaults", "frontend llm", "backend llm_servers", "frontend stats"]
    assert parts["frontend llm"] == ["bind 0.0.0.0:8080", "monitor-uri /health",
                                     "monitor fail if { nbsrv(llm_servers) lt 1 }", "default_backend llm_servers"]
    backend = parts["backend llm_servers"]
    assert backend[:5] == ["balance leastconn", "option httpchk", "http-check send meth GET uri /health",
                           "http-check expect status 200", "default-server check inter 2s fall 3 rise 2"]
    assert backend[5:] == ["server llm-1 10.0.0.1:8080", "server llm-2 10.0.0.2:8080", "server llm-3 10.0.0.3:8080"]
    defaults = parts["defaults"]
    for line in ("mode http", "option httplog", "option http-server-close", "option abortonclose", "timeout connect 5s",
                 "timeout client 1800s", "timeout server 1800s", "timeout http-request 10s", "timeout queue 1800s",
                 "retries 3", "retry-on conn-failure", "option redispatch 1"):
        assert line in defaults, line
    # Nothing that would log request headers, buffer a whole request or response, or replay a request.
    for word in ("capture request header", "log-format", "http-buffer-request", "compression", "all-retryable-errors",
                 "empty-response", "response-timeout", "ssl", "http_auth_bearer", "Authorization"):
        assert word not in "\n".join(defaults + parts["frontend llm"] + backend), word
    # The runtime API on a UNIX socket, the metrics and stats on loopback, nothing else listens.
    assert "stats socket /run/haproxy/admin.sock mode 660 level admin" in parts["global"]
    assert parts["frontend stats"][:3] == ["bind 127.0.0.1:8404", "http-request set-log-level silent",
                                           "http-request use-service prometheus-exporter if { path /metrics }"]
    assert not any(line.startswith("stats admin") for part in parts.values() for line in part)
    assert [line for line in config.splitlines() if line.strip().startswith("bind ")] == [
        "    bind 0.0.0.0:8080", "    bind 127.0.0.1:8404"]
    if HAPROXY:
        haproxy_check(config, tmp_path)


def test_tls_and_keys_at_the_edge_never_write_a_key_into_the_config(tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    pem = tmp_path / "gateway.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=gateway",
                    "-keyout", str(tmp_path / "k.pem"), "-out", str(tmp_path / "c.pem")],
                   check=True, capture_output=True)
    pem.write_text((tmp_path / "c.pem").read_text() + (tmp_path / "k.pem").read_text())
    config = render("haproxy.cfg.j2", role_variables(THREE, **keyed(tmp_path, llm_gateway_tls_cert_path=str(pem))))
    frontend = sections(config)["frontend llm"]
    assert frontend[0] == f"bind 0.0.0.0:443 ssl crt {pem} alpn h2,http/1.1"
    assert frontend[3:7] == [
        f"http-request set-var(txn.llm_client) http_auth_bearer,map_str({tmp_path}/llm-api-keys.map)",
        "http-request return status 401 content-type application/json string "
        """'{"error":{"code":401,"message":"Invalid API Key","type":"authentication_error"}}' """
        "hdr WWW-Authenticate Bearer unless { var(txn.llm_client) -m found }",
        "http-request capture var(txn.llm_client) len 64",
        f'http-request set-header Authorization "Bearer %[str(nodes),map_str({tmp_path}/llm-backend-key.map)]"']
    assert "ssl-min-ver TLSv1.2" in config
    for secret in (CLIENT_KEY, OTHER_KEY, NODE_KEY):
        assert secret not in config
    if HAPROXY:
        haproxy_check(config, tmp_path)


def test_ipv6_bind_nodes_by_name_and_port_and_their_slots(tmp_path):
    inventory = {"llm-1": {"ansible_host": "fd00::1", "llama_server_port": 8081, "llm_gateway_backend_maxconn": 2},
                 "llm-2": {"llm_gateway_backend_address": "fd00::2"}}
    variables = role_variables(inventory, llm_gateway_bind_address="::")
    config = render("haproxy.cfg.j2", variables)
    assert "    bind [::]:8080 v4v6\n" in config
    assert sections(config)["backend llm_servers"][5:] == ["server llm-1 [fd00::1]:8081 maxconn 2",
                                                           "server llm-2 [fd00::2]:8080"]
    # Several instances on one node, listed by hand, named <host>-<port>.
    variables["llm_gateway_backends"] = [{"name": f"llm-1-{p}", "address": "10.0.0.1", "port": p} for p in (8080, 8081)]
    config = render("haproxy.cfg.j2", variables)
    assert sections(config)["backend llm_servers"][5:] == ["server llm-1-8080 10.0.0.1:8080",
                                                           "server llm-1-8081 10.0.0.1:8081"]
    if HAPROXY:
        haproxy_check(config, tmp_path)


@pytest.mark.parametrize("nodes", [2, 4])
def test_a_per_node_server_is_one_backend_server_per_numa_node(tmp_path, nodes):
    inventory = {"llm-1": {"ansible_host": "10.0.0.1", "llama_server_instances": "per_node",
                           "llm_hardware": {"numa_nodes": nodes}},
                 "llm-2": {"ansible_host": "10.0.0.2"}}
    config = render("haproxy.cfg.j2", role_variables(inventory))
    assert sections(config)["backend llm_servers"][5:] == (
        [f"server llm-1-n{n} 10.0.0.1:{8080 + n}" for n in range(nodes)] + ["server llm-2 10.0.0.2:8080"])
    if HAPROXY:
        haproxy_check(config, tmp_path)


# --- The configuration running ------------------------------------------------------------------------

def request(port, path, key=None, host="127.0.0.1"):
    # One request per connection, closed at once: an idle kept-alive connection would hold an old worker
    # open after a reload (for timeout http-keep-alive).
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {key}"} if key else {})
        response = conn.getresponse()
        # HAProxy sends header names in lower case (HTTP/1 headers are case-insensitive).
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode()
    finally:
        conn.close()


@needs_haproxy
def test_keys_are_checked_at_the_edge_and_never_logged(tmp_path):
    node = Node("llm-1")
    port, stats_port, socket_path = free_port(), free_port(), str(tmp_path / "admin.sock")
    variables = role_variables({"llm-1": {"ansible_host": "127.0.0.1", "llama_server_port": node.port}},
                               **keyed(tmp_path, llm_gateway_bind_address="127.0.0.1", llm_gateway_port=port,
                                       llm_gateway_stats_port=stats_port, llm_gateway_check_interval=1,
                                       __llm_gateway_runtime_socket=socket_path))
    haproxy = Haproxy(render("haproxy.cfg.j2", variables), tmp_path, socket_path)
    try:
        assert request(port, "/health")[0] == 200  # the gateway's own health, no key needed
        status, headers, body = request(port, "/v1/models")
        assert status == 401 and headers["www-authenticate"] == "Bearer"
        assert json.loads(body) == {"error": {"code": 401, "message": "Invalid API Key",
                                              "type": "authentication_error"}}
        assert request(port, "/v1/models", key="sk-not-a-key-0000000000")[0] == 401
        status, _, body = request(port, "/v1/models", key=CLIENT_KEY)
        # The node sees its own key, never the client's.
        assert status == 200 and json.loads(body) == {"node": "llm-1", "authorization": f"Bearer {NODE_KEY}"}
        assert request(port, "/v1/models", key=OTHER_KEY)[0] == 200
        assert node.seen_authorization == [f"Bearer {NODE_KEY}"] * 2
        status, _, metrics = request(stats_port, "/metrics")
        assert status == 200 and 'haproxy_server_status{proxy="llm_servers",server="llm-1"' in metrics
    finally:
        node.stop()
        log = haproxy.stop()
    requests = [line for line in log.splitlines() if "GET /v1/models" in line]
    assert len(requests) == 4, log
    assert "{alice}" in requests[2] and "{bob}" in requests[3] and "{}" in requests[0]
    for secret in (CLIENT_KEY, OTHER_KEY, NODE_KEY, "Bearer"):
        assert secret not in log
    assert "GET /health" not in log and "/metrics" not in log  # monitor and stats requests are not logged


@needs_haproxy
def test_without_keys_the_clients_authorization_reaches_the_node_and_health_follows_the_nodes(tmp_path):
    node = Node("llm-1")
    port, socket_path = free_port(), str(tmp_path / "admin.sock")
    variables = role_variables({"llm-1": {"ansible_host": "127.0.0.1", "llama_server_port": node.port}},
                               llm_gateway_bind_address="127.0.0.1", llm_gateway_port=port,
                               llm_gateway_stats_port=free_port(), llm_gateway_check_interval=1,
                               __llm_gateway_runtime_socket=socket_path)
    haproxy = Haproxy(render("haproxy.cfg.j2", variables), tmp_path, socket_path)
    try:
        status, _, body = request(port, "/v1/models", key=CLIENT_KEY)
        assert status == 200 and json.loads(body)["authorization"] == f"Bearer {CLIENT_KEY}"
        node.health = 503  # loading: after fall (3) checks the gateway has no node and says so
        assert wait_until(lambda: request(port, "/health")[0] == 503)
        assert request(port, "/v1/models")[0] == 503
        node.health = 200
        assert wait_until(lambda: request(port, "/health")[0] == 200)
    finally:
        node.stop()
        haproxy.stop()


# --- The systemd drop-in ------------------------------------------------------------------------------

DEBIAN_UNIT = Path("/lib/systemd/system/haproxy.service")


def dropin(**overrides):
    return render("60-llm-gateway.conf.j2", role_variables(THREE, **overrides))


def directive(unit, key):
    return [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith(key + "=")]


@pytest.mark.parametrize(("overrides", "bind_cap"), [({}, False), ({"llm_gateway_port": 443}, True),
                                                     ({"llm_gateway_tls_cert_path": "/etc/haproxy/gw.pem"}, True),
                                                     ({"llm_gateway_stats_port": 404}, True)])
def test_the_dropin_grants_binding_below_1024_only_when_a_port_needs_it(overrides, bind_cap):
    caps = directive(dropin(**overrides), "CapabilityBoundingSet")[0].split()
    assert caps[:4] == ["CAP_SETUID", "CAP_SETGID", "CAP_SYS_CHROOT", "CAP_KILL"]
    assert ("CAP_NET_BIND_SERVICE" in caps) is bind_cap and len(caps) == 4 + bind_cap


def test_the_dropin_keeps_debians_start_and_reload():
    unit = dropin()
    for key in ("ExecStart", "ExecReload", "Type", "KillMode", "User", "ExecStartPre"):
        assert not directive(unit, key), key  # Debian's -Ws, Type=notify, `haproxy -c` then SIGUSR2 stay
    assert directive(unit, "Environment") == [
        '"PIDFILE=/run/haproxy/haproxy.pid" "EXTRAOPTS=-S /run/haproxy/master.sock"']
    assert directive(unit, "ReadWritePaths") == ["/run/haproxy"] and directive(unit, "ProtectSystem") == ["strict"]


@pytest.mark.skipif(not shutil.which("systemd-analyze") or not DEBIAN_UNIT.exists(),
                    reason="needs systemd-analyze and Debian's haproxy.service (the haproxy package)")
def test_systemd_accepts_the_dropin_on_debians_unit(tmp_path):
    shutil.copy(DEBIAN_UNIT, tmp_path / "haproxy.service")
    (tmp_path / "haproxy.service.d").mkdir()
    (tmp_path / "haproxy.service.d" / "60-llm-gateway.conf").write_text(dropin())
    env = dict(os.environ, SYSTEMD_UNIT_PATH=f"{tmp_path}:")
    verify = subprocess.run(["systemd-analyze", "verify", "--man=no", "--generators=no",
                             str(tmp_path / "haproxy.service")], env=env, capture_output=True, text=True, check=False)
    assert verify.returncode == 0 and "Unknown" not in verify.stderr and "60-llm-gateway" not in verify.stderr, \
        verify.stderr
    security = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager",
                               str(tmp_path / "haproxy.service")], env=env, capture_output=True, text=True, check=False)
    exposure = re.search(r"Overall exposure level for haproxy.service: ([\d.]+)", security.stdout)
    assert exposure, security.stdout + security.stderr
    # Debian's unit alone rates 9.6 (UNSAFE); with the drop-in 4.1 on systemd 252. A root master that
    # chroots, changes user and binds ports keeps some exposure by nature.
    assert float(exposure.group(1)) <= 4.5, security.stdout


def master_cli(path, line):
    """The first answer of the master CLI (-S), which keeps the connection open after a command."""
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(2)
            sock.connect(str(path))
            sock.sendall(line.encode() + b"\n")
            return sock.recv(65536).decode()
    except OSError:
        return ""


def children(pid):
    """Processes whose parent is pid."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


@needs_haproxy
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")
def test_haproxy_starts_reloads_and_stops_under_the_dropins_capabilities(tmp_path):
    """The drop-in's capability set, no-new-privileges, supplementary group and umask are enough for the
    master-worker HAProxy of Debian's unit (-W, pid file and master socket in a haproxy:haproxy 2775
    directory, workers chrooted as haproxy): it starts, serves, reloads (the old worker exits) and stops
    (no worker left behind). Found by removing capabilities one by one: without CAP_KILL the reload
    leaves the old worker and the stop orphans the new one."""
    try:
        gid = grp.getgrnam("haproxy").gr_gid
    except KeyError:
        pytest.skip("no haproxy group (the haproxy package creates it)")
    run_dir = tmp_path / "run"  # as Debian's tmpfiles.d makes /run/haproxy
    run_dir.mkdir()
    shutil.chown(run_dir, "haproxy", "haproxy")
    run_dir.chmod(0o2775)
    tmp_path.chmod(0o755)
    node, port, socket_path = Node("llm-1"), free_port(), str(run_dir / "admin.sock")
    variables = role_variables({"llm-1": {"ansible_host": "127.0.0.1", "llama_server_port": node.port}},
                               llm_gateway_bind_address="127.0.0.1", llm_gateway_port=port,
                               llm_gateway_stats_port=free_port(), __llm_gateway_runtime_socket=socket_path)
    config = tmp_path / "haproxy.cfg"
    config.write_text(render("haproxy.cfg.j2", variables).replace("log /dev/log", "log stdout format raw"))
    unit = dropin(llm_gateway_port=port)
    caps = ",".join(["-all"] + ["+" + cap.removeprefix("CAP_").lower()
                                for cap in directive(unit, "CapabilityBoundingSet")[0].split()])
    assert directive(unit, "NoNewPrivileges") == ["yes"] and directive(unit, "SupplementaryGroups") == ["haproxy"]
    umask = int(directive(unit, "UMask")[0], 8)
    master = subprocess.Popen(["setpriv", f"--bounding-set={caps}", "--no-new-privs", f"--groups={gid}",
                               HAPROXY, "-W", "-f", str(config), "-p", str(run_dir / "haproxy.pid"),
                               "-S", str(run_dir / "master.sock")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, umask=umask)
    seen = set()

    def workers():
        found = children(master.pid)
        seen.update(found)
        return found

    try:
        assert wait_until(lambda: len(workers()) == 1 and os.path.exists(socket_path)), "no worker"
        [worker] = workers()
        assert os.stat(f"/proc/{worker}").st_uid == os.stat(run_dir).st_uid  # the worker runs as haproxy
        assert wait_until(lambda: request(port, "/v1/models")[0] == 200)
        assert oct(os.stat(socket_path).st_mode & 0o777) == "0o660"
        assert os.stat(socket_path).st_gid == gid  # root:haproxy, through the setgid directory
        # systemd sends the reload only once the master said READY=1 (Type=notify); here: once its CLI answers.
        assert wait_until(lambda: "master" in master_cli(run_dir / "master.sock", "show proc"))
        master.send_signal(signal.SIGUSR2)  # what ExecReload sends after `haproxy -c`
        assert wait_until(lambda: workers() and worker not in workers()), "the old worker did not exit after the reload"
        assert request(port, "/v1/models")[0] == 200
    finally:
        node.stop()
        master.terminate()
        try:
            output = master.communicate(timeout=15)[0].decode()
        except subprocess.TimeoutExpired:
            master.kill()
            output = "the master did not stop: " + master.communicate()[0].decode()
        time.sleep(0.5)
        leftover = [pid for pid in seen if os.path.exists(f"/proc/{pid}")]
        for pid in leftover:  # what systemd's KillMode=mixed would SIGKILL; the test cleans up after itself
            os.kill(pid, signal.SIGKILL)
    assert not leftover, f"worker(s) {leftover} outlived the master: {output}"
