"""The llama-server unit as rendered for the options a container cannot exercise live."""

import re
import shutil
import subprocess
from pathlib import Path

import jinja2
import pytest
from ansible_collections.cpu_llm.infra.plugins.filter.llm_input_checks import systemd_quote
from ansible_collections.cpu_llm.infra.plugins.filter.systemd_sandbox import systemd_sandbox
from ansible_collections.cpu_llm.infra.plugins.module_utils import server_instances, systemd_syntax
from llama_server_unit import with_commands  # tests/support (on the path through pytest.ini)

ROLE = Path(__file__).resolve().parents[2] / "roles" / "llama_server"
TEMPLATE = ROLE / "templates" / "llama-server.service.j2"
BASE = {
    "ansible_managed": "managed", "llama_server_model_path": "/srv/m/model-00001-of-00003.gguf",
    "llama_server_user": "llama", "llama_server_group": "llama", "llama_server_numactl_args": ["--interleave=all"],
    "llama_server_binary": "/opt/llama.cpp/current/bin/llama-server", "llama_server_host": "127.0.0.1",
    "llama_server_port": 8080, "llama_server_threads": 64, "llama_server_ctx_size": 4096, "llama_server_parallel": 2,
    "llama_server_metrics": True, "llama_server_mlock": False, "llama_server_api_key": "",
    "llama_server_api_key_file": "/etc/llama-server/api-key", "llama_server_tls_cert": "", "llama_server_tls_key": "",
    "llama_server_extra_args": [], "llama_server_alias": "", "llama_server_rpc_layers": -1,
}


def context(overrides):
    """The template's variables: the role's, and the instance's command as vars/main.yml builds it."""
    return with_commands(dict(BASE, **overrides))


def render(trim_blocks=False, **overrides):
    # A systemd unit, not HTML: no autoescaping.
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,  # noqa: S701
                             trim_blocks=trim_blocks)
    env.filters["basename"] = lambda p: p.rsplit("/", 1)[-1]
    env.filters["bool"] = lambda v: v if isinstance(v, bool) else str(v).lower() in ("1", "true", "yes", "on")
    env.filters["cpu_llm.infra.systemd_quote"] = systemd_quote
    env.filters["cpu_llm.infra.systemd_sandbox"] = systemd_sandbox
    return env.from_string(TEMPLATE.read_text()).render(**context(overrides))


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


# ----------------------------------------------------------------------------- GPU offload
# The service's offload as the role computes it (gpu_offload.service_plan), for the tiny MoE's header.
NVIDIA = {"name": "NVIDIA GeForce RTX 4090", "vendor": "nvidia", "backend": "cuda", "source": "nvidia-smi",
          "type": "discrete", "vram_bytes": 24 << 30, "vram_free_bytes": 23 << 30}
LAVAPIPE = {"name": "llvmpipe (LLVM 19.1.7, 256 bits)", "vendor": "mesa", "backend": "vulkan",
            "source": "vulkaninfo", "type": "cpu", "vram_bytes": None, "vram_free_bytes": None}


@pytest.fixture(scope="module")
def tiny_moe(tmp_path_factory):
    import make_gguf  # tests/support/make_gguf.py (on the path through pytest.ini)
    from ansible_collections.cpu_llm.infra.plugins.module_utils import gguf_header

    [path] = make_gguf.write_tiny_moe(tmp_path_factory.mktemp("tiny") / "tiny-moe.gguf")
    return {"layers": gguf_header.layer_bytes([gguf_header.read_header(path)])}


def offload(model, backend, gpus, **kwargs):
    from ansible_collections.cpu_llm.infra.plugins.module_utils import gpu_offload

    return gpu_offload.service_plan(model, backend=backend, gpus=gpus, context_tokens=8192, parallel=2, **kwargs)


def exec_args(unit):
    return unit[unit.index("ExecStart="):unit.index("Restart=")]


def test_a_cpu_build_renders_the_unit_as_before(tiny_moe):
    assert render(__llama_server_offload=offload(tiny_moe, "cpu", [NVIDIA])) == render()
    unit = render()
    assert directive(unit, "PrivateDevices") == ["yes"] and directive(unit, "MemoryDenyWriteExecute") == ["yes"]
    assert not directive(unit, "DeviceAllow") and "--n-gpu-layers" not in unit


def test_cuda_gets_the_plans_flags_and_only_the_nvidia_devices(tiny_moe):
    # A budget that leaves the first blocks' experts in RAM: the window is a few expert tensors wide.
    plan = next(p for b in range(1 << 30, (1 << 30) + (200 << 20), 4096)
                if (p := offload(tiny_moe, "cuda", [NVIDIA], vram_bytes=b))["mode"] == "n_cpu_moe")
    unit = render(__llama_server_offload=plan)
    assert "  " + " ".join(plan["args"]) + "\n" in exec_args(unit)
    assert directive(unit, "PrivateDevices") == ["no"] and directive(unit, "DevicePolicy") == ["closed"]
    assert directive(unit, "DeviceAllow") == plan["device_allow"] and all(
        d.startswith("char-nvidia") for d in plan["device_allow"])
    assert directive(unit, "MemoryDenyWriteExecute") == ["yes"] and not directive(unit, "SupplementaryGroups")
    assert "# GPU offload on NVIDIA GeForce RTX 4090" in unit and not directive(unit, "CacheDirectory")


def test_extra_args_come_after_the_plan_so_the_plan_is_not_the_last_word_on_other_flags(tiny_moe):
    plan = offload(tiny_moe, "cuda", [NVIDIA])
    unit = render(__llama_server_offload=plan, llama_server_extra_args=["-ot", "exps=CPU"])
    line = exec_args(unit)
    assert line.index("--n-gpu-layers") < line.index("-ot")


def test_lavapipe_keeps_private_devices_but_allows_write_execute_memory(tiny_moe):
    plan = offload(tiny_moe, "vulkan", [LAVAPIPE], vram_bytes=2 << 30)
    unit = render(__llama_server_offload=plan, llama_server_environment={"GGML_VK_VISIBLE_DEVICES": "0"})
    assert directive(unit, "PrivateDevices") == ["yes"] and not directive(unit, "DeviceAllow")
    assert directive(unit, "MemoryDenyWriteExecute") == ["no"]
    assert directive(unit, "Environment") == ["GGML_VK_VISIBLE_DEVICES=0",
                                              "MESA_SHADER_CACHE_DIR=/var/cache/llama-server/mesa"]
    assert directive(unit, "CacheDirectory") == ["llama-server"]  # a writable place under ProtectSystem=strict
    assert "--n-gpu-layers" in exec_args(unit)


def test_offload_off_only_adds_zero_gpu_layers(tiny_moe):
    unit = render(__llama_server_offload=offload(tiny_moe, "cuda", [NVIDIA], offload="off"))
    assert "--n-gpu-layers 0" in exec_args(unit)
    assert directive(unit, "PrivateDevices") == ["yes"] and not directive(unit, "DeviceAllow")


def test_environment_values_are_quoted_the_systemd_way():
    unit = render(llama_server_environment={"CUDA_VISIBLE_DEVICES": "1", "NOTE": "a b%"})
    assert directive(unit, "Environment") == ["CUDA_VISIBLE_DEVICES=1", '"NOTE=a b%%"']


# ----------------------------------------------------------------------------- RPC workers

def test_rpc_workers_are_one_argument_after_the_plan_and_before_the_extra_args():
    from ansible_collections.cpu_llm.infra.plugins.module_utils.systemd_syntax import exec_start, split_command_line

    unit = render(llama_server_rpc_workers=["10.0.0.11:50052", "worker-2:50052"], llama_server_extra_args=["-fa", "on"])
    argv = split_command_line(exec_start(unit))
    assert argv[argv.index("--rpc") + 1] == "10.0.0.11:50052,worker-2:50052"
    assert argv.index("--rpc") < argv.index("-fa")
    # Restarts until the workers answer: llama-server aborts when one does not.
    assert directive(unit, "StartLimitIntervalSec") == ["0"] and directive(unit, "Restart") == ["on-failure"]


def test_rpc_layers_say_how_many_layers_the_workers_hold():
    from ansible_collections.cpu_llm.infra.plugins.module_utils.systemd_syntax import exec_start, split_command_line

    workers = ["10.0.0.11:50052"]
    argv = split_command_line(exec_start(render(llama_server_rpc_workers=workers, llama_server_rpc_layers=15)))
    assert argv[argv.index("--n-gpu-layers") + 1] == "15" and argv.index("--rpc") < argv.index("--n-gpu-layers")
    # -1: llama.cpp's own default (every layer on the workers), no flag.
    assert "--n-gpu-layers" not in render(llama_server_rpc_workers=workers, llama_server_rpc_layers=-1)
    # Without workers the number means nothing and is not rendered.
    assert render(llama_server_rpc_layers=15) == render()


def test_without_rpc_workers_the_unit_is_as_before():
    assert render(llama_server_rpc_workers=[]) == render()
    assert "--rpc" not in render() and not directive(render(), "StartLimitIntervalSec")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("variant", ["cpu", "cuda", "vulkan card", "lavapipe"])
def test_gpu_access_keeps_the_exposure_at_most_2_5(variant, tiny_moe, tmp_path):
    """systemd's own score of the unit file (--offline: the file alone, as on a host without the GPU)."""
    radeon = dict(NVIDIA, name="AMD Radeon RX 7900 XTX", vendor="amd", backend="vulkan", source="vulkaninfo")
    plans = {"cpu": lambda: offload(tiny_moe, "cpu", []), "cuda": lambda: offload(tiny_moe, "cuda", [NVIDIA]),
             "vulkan card": lambda: offload(tiny_moe, "vulkan", [radeon]),
             "lavapipe": lambda: offload(tiny_moe, "vulkan", [LAVAPIPE], vram_bytes=2 << 30)}
    unit = tmp_path / "llama-server.service"
    unit.write_text(render(__llama_server_offload=plans[variant]()))
    out = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
                         capture_output=True, text=True, check=False).stdout
    score = float(re.search(r"exposure level for llama-server\.service:\s*([\d.]+)", out).group(1))
    assert score <= 2.5, out


# ----------------------------------------------------------------------------- instances (llama_server_instances)
# The template as Ansible's template module renders it (trim_blocks), for each instance the role loops over.

def render_as_ansible(**overrides):
    return render(trim_blocks=True, **overrides)


def instances(mode, nodes=None):
    return server_instances.instances(mode, "llm-1", BASE["llama_server_port"], BASE["llama_server_threads"], nodes)


@pytest.mark.parametrize("options", [
    {}, {"llama_server_tuning": TUNED_TWO_NODES}, {"llama_server_mlock": True},
    {"llama_server_rpc_workers": ["10.0.0.11:50052"], "llama_server_alias": "a/b:Q6_K"},
    {"llama_server_api_key": "k" * 20, "llama_server_host": "0.0.0.0"}])  # noqa: S104
def test_single_renders_the_unit_it_always_rendered(options):
    [single] = instances("single")
    # Without an instance the template is the one before llama_server_instances existed (its tests above).
    assert render(__llama_server_instance=single, **options) == render(**options)
    assert render_as_ansible(__llama_server_instance=single, **options) == render_as_ansible(**options)
    assert "NUMA node" not in render_as_ansible(__llama_server_instance=single, **options)


@pytest.mark.parametrize("nodes", [2, 4])
def test_per_node_units_bind_each_instance_to_its_node_port_and_threads(nodes):
    from ansible_collections.cpu_llm.infra.plugins.module_utils.systemd_syntax import exec_start, split_command_line

    units = [render_as_ansible(__llama_server_instance=i) for i in instances("per_node", nodes)]
    assert len(units) == nodes
    for node, unit in enumerate(units):
        argv = split_command_line(exec_start(unit))
        assert argv[:4] == ["/usr/bin/numactl", f"--cpunodebind={node}", f"--membind={node}",
                            "/opt/llama.cpp/current/bin/llama-server"]
        assert argv[argv.index("--port") + 1] == str(8080 + node)
        assert argv[argv.index("--threads") + 1] == str(64 // nodes)
        assert "--interleave=all" not in argv and "--numa" not in argv
        assert directive(unit, "Description") == [f"llama.cpp inference server (model-00001-of-00003.gguf), NUMA node "
                                                  f"{node}"]
        assert f"# One llama-server per NUMA node (llama_server_instances: per_node): this one runs on node {node}'s" \
            in unit
    # Everything but what places the instance is the same unit.
    def placement_free(unit):
        unit = re.sub(r"^Record=.*$", "", unit, flags=re.M)  # the command again, as JSON: read_record's tests
        return re.sub(r"node \d+|node\d|=\d\b|--port \d+|--threads \d+|\+ \d|Port \d+|threads \d+", "", unit)
    assert len({placement_free(u) for u in units}) == 1


def test_per_node_ignores_the_measured_threads_and_numa_policy_but_keeps_the_rest():
    [first, _] = instances("per_node", 2)
    unit = render_as_ansible(__llama_server_instance=first, llama_server_tuning=TUNED_TWO_NODES)
    line = exec_args(unit)
    assert line.startswith("ExecStart=/usr/bin/numactl --cpunodebind=0 --membind=0 \\\n")
    assert "--threads 32" in line and "--numa" not in line
    assert "--batch-size 4096" in line and "--load-mode none" in line
    assert directive(unit, "Environment") == ["OMP_WAIT_POLICY=active"]


def test_per_node_units_pass_systemd_analyze_verify(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    for instance in instances("per_node", 4):
        path = tmp_path / instance["unit"]
        path.write_text(render_as_ansible(__llama_server_instance=instance).replace("/usr/bin/numactl", "/bin/true"))
        verify = subprocess.run(["systemd-analyze", "verify", "--man=no", "--generators=no", str(path)],
                                capture_output=True, text=True, check=False)
        assert verify.returncode == 0 and path.name not in verify.stderr, verify.stderr


def test_the_benchmark_reads_back_the_command_the_unit_was_given():
    """The unit records server_command's result (server_command.read_record, the benchmark's llm_server_record):
    the same binary, NUMA policy and options, and exactly the argv systemd runs, quoting included."""
    from ansible_collections.cpu_llm.infra.plugins.module_utils.server_command import read_record

    overrides = {"llama_server_alias": "a%b$c", "llama_server_model_path": "/srv/llm/models/m odel.gguf"}
    command = context(overrides)["__llama_server_commands"]["llama-server.service"]
    unit = render(**overrides)
    record = read_record(unit)
    assert record["binary"] == command["binary"] and record["numactl"] == command["numactl"]
    assert record["argv"] == command["argv"] == systemd_syntax.split_command_line(systemd_syntax.exec_start(unit))
    assert record["options"]["model"] == "/srv/llm/models/m odel.gguf" and record["options"]["alias"] == "a%b$c"
    assert record["options"]["threads"] == "64" and record["options"]["metrics"] is True


def test_a_unit_whose_command_was_changed_is_not_measured():
    """A hand edit of ExecStart=, a drop-in that replaces it, or a unit without a record: refused, saying why."""
    from ansible_collections.cpu_llm.infra.plugins.module_utils.server_command import read_record

    unit = render()
    edited = unit.replace("--threads 64", "--threads 8")
    assert edited != unit
    with pytest.raises(ValueError, match="not the command the llama_server role recorded"):
        read_record(edited)
    drop_in = unit + ("\n# /etc/systemd/system/llama-server.service.d/x.conf\n"
                      "[Service]\nExecStart=\nExecStart=/bin/true\n")
    with pytest.raises(ValueError, match="changed by hand or by a drop-in"):
        read_record(drop_in)
    with pytest.raises(ValueError, match="no \\[X-LLM-Command\\] Record= line"):
        read_record(unit.split("[X-LLM-Command]")[0])
