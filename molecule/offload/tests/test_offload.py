"""Partial offload on a real Vulkan device (Mesa's lavapipe): the planned split is what llama.cpp loads.

The expected flags are recomputed here from the served model's GGUF header, the budget in host_vars and
the unit's context, with the planner the role uses; llama.cpp's own log then says where each tensor went.
"""

import json
import os
import re
import shlex
from pathlib import Path

import pytest
import yaml
from ansible_collections.cpu_llm.infra.plugins.module_utils import gguf_header, gpu_offload

CACHE = Path(os.environ.get("LLM_CACHE_DIR", "/var/cache/llm-cpu-infra"))
HOST_VARS = yaml.safe_load((Path(__file__).resolve().parents[1] / "host_vars" / "llm-offload.yml").read_text())
PORT = HOST_VARS["llama_server_port"]
EXPERT = re.compile(r"^blk\.(\d+)\.ffn_(up|down|gate|gate_up)_(ch|)exps\.weight$")

HTTP = """
import json, sys, urllib.request
url, body = sys.argv[1], sys.argv[2]
req = urllib.request.Request(url, data=body.encode() or None, headers={"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=300) as r:
    print(json.dumps({"status": r.status, "body": json.load(r)}))
"""


def http(host, path, body=""):
    url = f"http://127.0.0.1:{PORT}{path}"
    return json.loads(host.check_output(f"python3 -c {shlex.quote(HTTP)} {shlex.quote(url)} {shlex.quote(body)}"))


@pytest.fixture(scope="module")
def execstart(host):
    return host.check_output("systemctl show --property ExecStart --value llama-server.service")


@pytest.fixture(scope="module")
def header():
    manifest = json.loads((CACHE / "manifest.json").read_text())
    [model] = manifest["models"]["moe"]
    return gguf_header.read_header(str(CACHE / "www" / manifest["moe_repo"] / "resolve" / "main" / model["name"]))


@pytest.fixture(scope="module")
def plan(header, execstart):
    """The plan for this model, budget and the service's context, as the role's planner makes it."""
    ctx = int(re.search(r"--ctx-size (\d+)", execstart).group(1))
    parallel = int(re.search(r"--parallel (\d+)", execstart).group(1))
    return gpu_offload.plan(gguf_header.layer_bytes([header]), vram_bytes=HOST_VARS["llm_gpu_vram_bytes"],
                            context_tokens=ctx, parallel=parallel)


@pytest.fixture(scope="module")
def log(host):
    """llama-server's output since the unit last started (its journal)."""
    since = host.check_output("systemctl show --property ActiveEnterTimestamp --value llama-server.service")
    return host.check_output(f"journalctl -u llama-server.service --no-pager -o cat --since {shlex.quote(since)}")


def test_the_budget_makes_a_split_with_experts_in_ram(plan):
    """The scenario exercises the interesting case: every layer on the device, some experts in RAM."""
    assert plan["mode"] == "n_cpu_moe" and plan["ngl"] == plan["n_layer"] + 1, plan["why"]
    assert 0 < len(plan["ram_expert_blocks"]) < plan["n_layer"]


def test_the_service_runs_with_the_planned_flags(execstart, plan):
    assert " ".join(plan["args"]) in execstart, execstart


def buffers(log, kind):
    """{buffer: MiB} from llama.cpp's "<buffer> <kind> buffer size = N MiB" lines; the last of each wins (the
    real load, not --fit's probe before it)."""
    return {name: float(mib) for name, mib in re.findall(rf"\s(\S+) {kind} buffer size =\s+([\d.]+) MiB", log)}


def test_the_vulkan_device_is_lavapipe(log):
    assert re.search(r"using device Vulkan0 \(llvmpipe", log), "llama.cpp did not use lavapipe as Vulkan0"


def test_the_device_holds_the_planned_bytes(log, plan):
    """Weights and KV cache on the device are the plan's to the byte (llama.cpp prints MiB with 2 decimals)."""
    mib = 1 << 20
    assert buffers(log, "model")["Vulkan0"] == pytest.approx(plan["gpu"]["weights"] / mib, abs=0.01)
    assert buffers(log, "KV")["Vulkan0"] == pytest.approx(plan["gpu"]["kv"] / mib, abs=0.01)
    # The compute buffer is an estimate: it must not be short, nor far over.
    measured = buffers(log, "compute")["Vulkan0"]
    assert measured <= plan["gpu"]["compute"] / mib <= 1.5 * measured, (measured, plan["gpu"]["compute"] / mib)


def test_the_planned_layers_are_on_the_device(log, plan):
    found = re.search(r"offloaded (\d+)/(\d+) layers to GPU", log)
    assert found, "no offload line in llama-server's log"
    assert (int(found.group(1)), int(found.group(2))) == (plan["ngl"], plan["n_layer"] + 1)


def test_the_planned_experts_stay_on_the_cpu_and_no_others(log, plan, header):
    """llama.cpp's debug line per overridden tensor (--log-verbosity 5 in host_vars): exactly the planned ones,
    each to host memory (CPU, or Vulkan_Host: RAM the device can read, which the CPU backend computes on)."""
    moved = dict(re.findall(r"tensor (\S+) \([^)]*\) buffer type overridden to (\S+)", log))
    assert all(buft in ("CPU", "CPU_Mapped") or buft.endswith("_Host") for buft in moved.values()), moved
    overridden = set(moved)
    planned = {t["name"] for t in header["tensors"]
               if (m := EXPERT.match(t["name"])) and int(m.group(1)) in plan["ram_expert_blocks"]}
    assert planned and overridden == planned
    assert any(EXPERT.match(t["name"]) and t["name"] not in planned for t in header["tensors"])  # others on GPU


def test_props_report_the_served_model_and_slots(host, execstart):
    props = http(host, "/props")["body"]
    assert props["model_path"] in execstart
    assert props["total_slots"] == int(re.search(r"--parallel (\d+)", execstart).group(1))


def test_it_answers_a_chat_completion(host):
    body = json.dumps({"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 8, "temperature": 0})
    reply = http(host, "/v1/chat/completions", body)
    assert reply["status"] == 200 and reply["body"]["usage"]["completion_tokens"] > 0, reply


def test_lavapipe_needs_no_device_node_but_write_execute_memory(host):
    show = host.check_output("systemctl show --property PrivateDevices,MemoryDenyWriteExecute,DeviceAllow "
                             "llama-server.service")
    assert "PrivateDevices=yes" in show and "MemoryDenyWriteExecute=no" in show, show


def test_unit_exposure_at_most_2_5(host):
    out = host.check_output("systemd-analyze security llama-server.service --no-pager 2>&1 | tail -n 1")
    score = float(re.search(r"exposure level for llama-server\.service:\s*([\d.]+)", out).group(1))
    assert score <= 2.5, out
