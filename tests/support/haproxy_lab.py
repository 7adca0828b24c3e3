"""A real HAProxy in front of small local HTTP nodes, for the llm_gateway tests.

Node: an HTTP server on 127.0.0.1 (ephemeral port) in a thread, standing in for llama-server: /health
answers `health` (200, or 503 while "loading"), /stream sends server-sent events until released (a long
generation), anything else answers the node's name and the Authorization header it received.

Haproxy: runs `haproxy -db -f <cfg>` on a configuration rendered from the role's template, with what a
test process cannot or should not do changed: the log goes to stdout (so a test can read it) instead of
/dev/log, and without root the chroot/user/group lines are dropped. Everything listens on loopback ports
the kernel picks, and the runtime socket lives in the test's temporary directory.
"""

import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
from ansible_collections.cpu_llm.infra.plugins.filter.systemd_sandbox import systemd_sandbox
from ansible_collections.cpu_llm.infra.plugins.module_utils.gateway_config import default_backends
from fleet_plans import plan  # tests/support
from role_vars import trusted  # tests/support

HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
ROLE = Path(__file__).resolve().parents[2] / "roles" / "llm_gateway"


def role_variables(inventory=None, **overrides):
    """The llm_gateway role's variables as Ansible sees them on the gateway host.

    inventory: {host: its hostvars} of the llm_servers group. llm_gateway_backends is computed from their
    fleet plans (as site.yml's first play makes them) by the function behind the role's default (the
    cpu_llm.infra.llm_gateway_backends filter, which a bare Templar cannot load) unless given. overrides win over
    everything, private variables too (the tests move the runtime socket and the key files into a temporary
    directory).
    """
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    private = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
    inventory = inventory or {}
    defaults["llm_gateway_backends"] = default_backends(list(inventory), [plan(h, v) for h, v in inventory.items()])
    return {**trusted(defaults), "groups": {"llm_servers": list(inventory)}, "hostvars": inventory,
            "inventory_hostname": "gateway-1", "ansible_managed": "Ansible managed", **trusted(private), **overrides}


def render(template, variables):
    """roles/llm_gateway/templates/<template> rendered as the template module renders it (trim_blocks)."""
    text = trust_as_template((ROLE / "templates" / template).read_text())
    templar = Templar(loader=DataLoader(), variables=variables)
    # The collection's filters the templates use: a bare Templar has no collection loader to find them (and its
    # public `environment` is deprecated since ansible-core 2.19, hence the engine's).
    templar._engine.environment.filters["cpu_llm.infra.systemd_sandbox"] = systemd_sandbox
    return templar.template(text, escape_backslashes=False,
                            overrides={"trim_blocks": True, "lstrip_blocks": False, "newline_sequence": "\n"})


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Node:
    """A stand-in llama-server."""

    def __init__(self, name, health=200):
        self.name, self.health = name, health
        self.release = threading.Event()
        self.streams = 0
        self.seen_authorization = []
        node = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                if self.path == "/health":
                    body = b'{"status":"ok"}' if node.health == 200 else b'{"error":{"code":503}}'
                    self._answer(node.health, body)
                elif self.path == "/stream":
                    node.streams += 1
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    try:
                        while not node.release.wait(0.1):
                            self.wfile.write(b"data: token\n\n")
                            self.wfile.flush()
                        self.wfile.write(b"data: [DONE]\n\n")
                        self.wfile.flush()
                    except OSError:
                        pass
                    self.close_connection = True
                else:
                    node.seen_authorization.append(self.headers.get("Authorization"))
                    body = json.dumps({"node": node.name, "authorization": self.headers.get("Authorization")})
                    self._answer(200, body.encode())

            do_POST = do_GET  # noqa: N815 (http.server's name)

            def _answer(self, status, body):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # HAProxy's checks close their connections abruptly

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def for_test_process(config):
    """The rendered configuration, runnable by this test process (see the module's docstring)."""
    config = re.sub(r"(?m)^    log /dev/log local0$", "    log stdout format raw local0", config)
    config = re.sub(r"(?m)^    log /dev/log local1 notice\n", "", config)
    if os.geteuid() != 0:
        config = re.sub(r"(?m)^    (chroot|user|group) .*\n", "", config)
    return config


class Haproxy:
    """haproxy -db on a configuration file; stop() ends it and returns what it wrote (its log)."""

    def __init__(self, config, folder, socket_path):
        self.path = folder / "haproxy.cfg"
        self.path.write_text(for_test_process(config))
        self.socket_path = str(socket_path)
        self.log = folder / "haproxy.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen([HAPROXY, "-db", "-f", str(self.path)], stdout=out, stderr=subprocess.STDOUT)
        for _ in range(100):
            if os.path.exists(self.socket_path):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"haproxy did not start: {self.log.read_text()}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        return self.log.read_text()


def wait_until(condition, timeout=15.0, interval=0.1):
    """Poll condition() until true; returns its last value (False at the timeout)."""
    end = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > end:
            return value
        time.sleep(interval)
