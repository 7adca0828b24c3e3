"""Every unit whose hardening block module_utils/systemd_sandbox.py writes, scored by systemd itself.

`systemd-analyze security --offline=true` rates the unit file alone (no running system needed). The bounds
are the ones the rest of the project holds each unit to: llama-server.service <= 2.0 on a CPU host and
<= 2.5 with a GPU's devices (molecule's default and offload scenarios); the RPC worker and its firewall
<= 2.5, the fleet source <= 1.5, haproxy.service with the gateway's drop-in <= 4.5 (their template tests).
A directive dropped from the shared block raises every unit's score; this test is where that shows.
"""

import re
import shutil
import subprocess

import pytest
import test_gateway_template as gateway  # the other template tests' renderers (tests/unit)
import test_gguf_model_seed_unit as seed
import test_rpc_worker_template as rpc
import test_unit_template as server

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")

# haproxy.service as Debian's package writes it, less what does not bear on the sandbox (its comments and
# EnvironmentFile= lines): the drop-in is the sandbox.
HAPROXY_SERVICE = """[Unit]
Description=HAProxy Load Balancer
After=network-online.target rsyslog.service
Wants=network-online.target

[Service]
BindReadOnlyPaths=/dev/log:/var/lib/haproxy/dev/log
Environment="CONFIG=/etc/haproxy/haproxy.cfg" "PIDFILE=/run/haproxy.pid" "EXTRAOPTS=-S /run/haproxy-master.sock"
ExecStart=/usr/sbin/haproxy -Ws -f $CONFIG -p $PIDFILE $EXTRAOPTS
ExecReload=/usr/sbin/haproxy -Ws -f $CONFIG -c -q $EXTRAOPTS
ExecReload=/bin/kill -USR2 $MAINPID
KillMode=mixed
Restart=always
SuccessExitStatus=143
Type=notify

[Install]
WantedBy=multi-user.target
"""
RADEON = dict(server.NVIDIA, name="AMD Radeon RX 7900 XTX", vendor="amd", backend="vulkan", source="vulkaninfo")


@pytest.fixture(scope="module")
def tiny_moe(tmp_path_factory):
    import make_gguf  # tests/support/make_gguf.py (on the path through pytest.ini)
    from ansible_collections.cpu_llm.infra.plugins.module_utils import gguf_header

    [path] = make_gguf.write_tiny_moe(tmp_path_factory.mktemp("tiny") / "tiny-moe.gguf")
    return {"layers": gguf_header.layer_bytes([gguf_header.read_header(path)])}


def llama_server(backend=None, gpus=(), **kwargs):
    def text(model):
        offload = server.offload(model, backend, list(gpus), **kwargs) if backend else {}
        return server.render_as_ansible(__llama_server_offload=offload)
    return text


def per_node(model):
    [first, _] = server.instances("per_node", 2)
    return server.render_as_ansible(__llama_server_instance=first)


# (unit name, its text from the tiny model, the bound)
UNITS = {
    "llama-server cpu": ("llama-server", llama_server(), 2.0),
    "llama-server per_node": ("llama-server", per_node, 2.0),
    "llama-server mlock": ("llama-server", lambda _: server.render_as_ansible(llama_server_mlock=True), 2.0),
    "llama-server cuda": ("llama-server", llama_server("cuda", [server.NVIDIA]), 2.5),
    "llama-server vulkan card": ("llama-server", llama_server("vulkan", [RADEON]), 2.5),
    "llama-server lavapipe": ("llama-server", llama_server("vulkan", [server.LAVAPIPE], vram_bytes=2 << 30), 2.5),
    "llama-rpc-server": ("llama-rpc-server", lambda _: rpc.unit(), 2.5),
    "llama-rpc-server cache": ("llama-rpc-server", lambda _: rpc.unit(llm_rpc_worker_cache=True), 2.5),
    "llama-rpc-server-firewall": ("llama-rpc-server-firewall",
                                  lambda _: rpc.render("llama-rpc-server-firewall.service.j2"), 2.5),
    "gguf-model-seed": ("gguf-model-seed", lambda _: seed.render(), 1.5),
    "haproxy with the gateway's drop-in": ("haproxy", lambda _: HAPROXY_SERVICE + "\n" + gateway.dropin(), 4.5),
    "haproxy with the drop-in, port 443": ("haproxy", lambda _: HAPROXY_SERVICE + "\n" + gateway.dropin(
        llm_gateway_port=443), 4.5),
}


def exposure(name, text, tmp_path):
    path = tmp_path / f"{name}.service"
    path.write_text(text)
    out = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(path)],
                         capture_output=True, text=True, check=False)
    found = re.search(rf"Overall exposure level for {re.escape(name)}\.service:\s*([\d.]+)", out.stdout)
    assert found, out.stdout + out.stderr
    return float(found.group(1)), out.stdout


@pytest.mark.parametrize("variant", UNITS)
def test_exposure_stays_within_the_units_bound(variant, tiny_moe, tmp_path):
    name, text, bound = UNITS[variant]
    score, report = exposure(name, text(tiny_moe), tmp_path)
    assert score <= bound, report


def test_the_score_sees_a_directive_go(tmp_path):
    """The measurement can fail: the worker without ProtectSystem= scores worse than with it."""
    unit = rpc.unit()
    assert "ProtectSystem=strict\n" in unit
    with_it, _ = exposure("llama-rpc-server", unit, tmp_path)
    without, _ = exposure("llama-rpc-server", unit.replace("ProtectSystem=strict\n", ""), tmp_path)
    assert without > with_it
