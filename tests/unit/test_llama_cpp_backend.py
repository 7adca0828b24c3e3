"""llama_cpp_backend: the CMake command line, packages and build id each backend gets, rendered from
the role's own vars with Ansible's Templar, and the input checks for the new settings.

The CPU case is the contract: with auto on a host without a usable GPU, the options, packages and
build id are what they were before GPU backends existed (tests/support/prepare_artifacts.py shares
its compiler cache with the role's build through that id).
"""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar
from playbook_json import assert_refused, case_hosts, run_checks  # tests/support (on the path through pytest.ini)
from role_vars import trusted  # tests/support (on the path through pytest.ini)

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "llama_cpp"
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
MIB = 1 << 20


def gpu(name, source, backend, kind=None, vendor="nvidia"):
    return {"name": name, "vendor": vendor, "backend": backend, "source": source, "type": kind,
            "vram_bytes": 24564 * MIB if source == "nvidia-smi" else None, "vram_free_bytes": None,
            "pci_address": None, "render_node": None, "kernel_driver": None}


RTX = gpu("NVIDIA GeForce RTX 4090", "nvidia-smi", "cuda", "discrete")
RTX_NO_DRIVER = gpu("NVIDIA GPU [10de:2684]", "pci", "cuda")
RADEON = gpu("AMD Radeon RX 7900 XTX (RADV NAVI31)", "vulkaninfo", "vulkan", "discrete", "amd")
IGPU = gpu("AMD Radeon Graphics (RADV RAPHAEL_MENDOCINO)", "vulkaninfo", "vulkan", "integrated", "amd")
LAVAPIPE = gpu("llvmpipe (LLVM 15.0.6, 256 bits)", "vulkaninfo", "vulkan", "cpu", "mesa")



def render(name, settings=None, gpus=None, os_family="Debian", **extra):
    """The role variable `name` for these settings (inventory), with llm_hardware.gpus when gpus is a list."""
    os_vars = yaml.safe_load((ROLE / "vars" / f"{os_family}.yml").read_text())
    role_vars = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
    facts = {} if gpus is None else {"llm_hardware": {"gpus": gpus, "gpu_status": "read"}}
    variables = {**trusted(DEFAULTS), **(settings or {}), **facts, **extra, **trusted(os_vars), **trusted(role_vars)}
    value = Templar(loader=DataLoader(), variables=variables).template(variables[name])
    return value.strip() if isinstance(value, str) else value


def todays_build_id():
    """The id rule before GPU backends, as tests/support/prepare_artifacts.py computes it."""
    text = " ".join(DEFAULTS["llama_cpp_cmake_options"] + DEFAULTS["llama_cpp_build_targets"])
    return f"{DEFAULTS['llama_cpp_version'][:12]}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"  # noqa: S324


@pytest.mark.parametrize("gpus", [[], None, [LAVAPIPE], [IGPU, LAVAPIPE], [RTX_NO_DRIVER]],
                         ids=["no-gpu", "not-read", "lavapipe", "integrated", "nvidia-without-driver"])
def test_auto_without_a_usable_gpu_is_todays_cpu_build(gpus):
    assert render("__llama_cpp_backend", gpus=gpus) == "cpu"
    assert render("__llama_cpp_cmake_options", gpus=gpus) == DEFAULTS["llama_cpp_cmake_options"]
    assert render("__llama_cpp_build_id", gpus=gpus) == todays_build_id()
    debian = yaml.safe_load((ROLE / "vars" / "Debian.yml").read_text())["__llama_cpp_build_packages"]
    assert render("__llama_cpp_packages", gpus=gpus) == debian


def test_cpu_configure_command_line():
    argv = render("__llama_cpp_configure_argv", gpus=[])
    build_id = todays_build_id()
    assert argv == ["cmake", "-S", f"/opt/llama.cpp/src/{build_id}", "-B", f"/opt/llama.cpp/build/{build_id}",
                    "-DLLAMA_BUILD_COMMIT=0c1e57098bba", *DEFAULTS["llama_cpp_cmake_options"]]


def test_the_configure_task_runs_the_rendered_command_line():
    tasks = yaml.safe_load((ROLE / "tasks" / "build.yml").read_text())
    (configure,) = [t for t in tasks if t["name"] == "Configure with CMake"]
    assert configure["ansible.builtin.command"]["argv"] == "{{ __llama_cpp_configure_argv }}"


def test_auto_on_an_nvidia_host_builds_cuda():
    for gpus in ([RTX], [RTX, LAVAPIPE], [RADEON, RTX]):
        assert render("__llama_cpp_backend", gpus=gpus) == "cuda"
    argv = render("__llama_cpp_configure_argv", gpus=[RTX])
    assert argv[6:] == [*DEFAULTS["llama_cpp_cmake_options"], "-DGGML_CUDA=ON"]
    build_id = render("__llama_cpp_build_id", gpus=[RTX])
    assert build_id.startswith("0c1e57098bba-cuda-") and len(build_id) == len("0c1e57098bba-cuda-") + 8
    assert argv[2] == f"/opt/llama.cpp/src/{build_id}"
    assert render("__llama_cpp_packages", gpus=[RTX])[-2:] == ["nvidia-cuda-toolkit", "nvidia-cuda-toolkit-gcc"]


def test_auto_on_a_discrete_vulkan_gpu_builds_vulkan():
    assert render("__llama_cpp_backend", gpus=[RADEON, IGPU, LAVAPIPE]) == "vulkan"
    assert render("__llama_cpp_cmake_options", gpus=[RADEON])[-1] == "-DGGML_VULKAN=ON"
    assert render("__llama_cpp_build_id", gpus=[RADEON]).startswith("0c1e57098bba-vulkan-")
    assert render("__llama_cpp_packages", gpus=[RADEON])[-3:] == ["libvulkan-dev", "glslc", "spirv-headers"]


def test_vulkan_named_builds_for_lavapipe_and_explicit_cpu_ignores_gpus():
    settings = {"llama_cpp_backend": "vulkan"}
    assert render("__llama_cpp_backend", settings, gpus=[LAVAPIPE]) == "vulkan"
    assert render("__llama_cpp_cmake_options", settings)[-1] == "-DGGML_VULKAN=ON"
    cpu = {"llama_cpp_backend": "cpu"}
    assert render("__llama_cpp_backend", cpu, gpus=[RTX]) == "cpu"
    assert render("__llama_cpp_build_id", cpu, gpus=[RTX]) == todays_build_id()


def test_cuda_architectures_and_nvidias_toolkit():
    settings = {"llama_cpp_backend": "cuda", "llama_cpp_cuda_architectures": "86;89",
                "llama_cpp_cuda_toolkit_dir": "/usr/local/cuda-12.8/"}
    assert render("__llama_cpp_cmake_options", settings)[-4:] == [
        "-DGGML_CUDA=ON", "-DCMAKE_CUDA_ARCHITECTURES=86;89", "-DCUDAToolkit_ROOT=/usr/local/cuda-12.8",
        "-DCMAKE_CUDA_COMPILER=/usr/local/cuda-12.8/bin/nvcc"]
    # NVIDIA's toolkit is the user's: no distribution package beside it.
    assert not [p for p in render("__llama_cpp_packages", settings) if p.startswith("nvidia-cuda")]
    # Each setting that changes the binaries is a build of its own.
    ids = {render("__llama_cpp_build_id", s) for s in (
        {"llama_cpp_backend": "cuda"}, {"llama_cpp_backend": "cuda", "llama_cpp_cuda_architectures": "89"}, settings)}
    assert len(ids) == 3


def test_ccache_still_added_and_el_lists():
    assert render("__llama_cpp_packages", {"llama_cpp_ccache_dir": "/var/cache/ccache"}, gpus=[])[-1] == "ccache"
    assert render("__llama_cpp_packages", {"llama_cpp_backend": "vulkan"}, os_family="RedHat")[-4:] == [
        "vulkan-headers", "vulkan-loader-devel", "glslc", "spirv-headers-devel"]
    assert render("__llama_cpp_packages", {"llama_cpp_backend": "cuda"}, os_family="RedHat")[-1] == "cuda-toolkit"


def test_gpus_read_by_the_role_when_preflight_did_not():
    assert render("__llama_cpp_backend", __llama_cpp_detected_gpus=[RTX]) == "cuda"
    # preflight's reading wins when this run has one.
    assert render("__llama_cpp_backend", gpus=[], __llama_cpp_detected_gpus=[RTX]) == "cpu"


def test_the_run_says_why():
    says = render("__llama_cpp_backend_says", gpus=[RTX, LAVAPIPE])
    assert says.startswith("llama.cpp 0c1e57098bba for cuda (build 0c1e57098bba-cuda-")
    assert "NVIDIA GeForce RTX 4090 (nvidia-smi, discrete), llvmpipe (LLVM 15.0.6, 256 bits) (vulkaninfo, cpu)." in says
    says = render("__llama_cpp_backend_says", gpus=[RTX_NO_DRIVER],
                  llm_hardware={"gpus": [RTX_NO_DRIVER], "gpu_status": "nvidia-smi is not installed"})
    assert says.endswith("from NVIDIA GPU [10de:2684] (pci). Not used: nvidia-smi is not installed.")
    assert render("__llama_cpp_backend_says", gpus=[]).endswith("llama_cpp_backend auto, from no GPU.")


# --- llama_cpp_rpc: llama.cpp's RPC backend and the worker's binary ------------------------------

SOURCE = Path("/var/cache/llm-cpu-infra/src/llama.cpp-0c1e57098bba43ac29e6e3b677cdceebdd22334f")
RPC_OPTIONS = ["-DGGML_RPC=ON", "-DGGML_RPC_RDMA=OFF"]


def test_rpc_is_off_by_default_and_off_is_todays_build():
    assert DEFAULTS["llama_cpp_rpc"] is False
    for off in (None, {"llama_cpp_rpc": False}, {"llama_cpp_rpc": "no"}):
        assert render("__llama_cpp_cmake_options", off, gpus=[]) == DEFAULTS["llama_cpp_cmake_options"]
        assert render("__llama_cpp_build_targets", off, gpus=[]) == DEFAULTS["llama_cpp_build_targets"]
        assert render("__llama_cpp_build_id", off, gpus=[]) == todays_build_id()


def test_rpc_adds_the_backend_and_the_worker_binary_and_is_a_build_of_its_own():
    on = {"llama_cpp_rpc": True}
    assert render("__llama_cpp_cmake_options", on, gpus=[]) == [*DEFAULTS["llama_cpp_cmake_options"], *RPC_OPTIONS]
    assert render("__llama_cpp_build_targets", on, gpus=[]) == [*DEFAULTS["llama_cpp_build_targets"], "ggml-rpc-server"]
    build_id = render("__llama_cpp_build_id", on, gpus=[])
    assert build_id.startswith("0c1e57098bba-") and len(build_id) == len("0c1e57098bba-") + 8
    assert build_id != todays_build_id()
    assert render("__llama_cpp_configure_argv", on, gpus=[])[-2:] == RPC_OPTIONS
    # TCP needs nothing beyond the toolchain.
    assert render("__llama_cpp_packages", on, gpus=[]) == render("__llama_cpp_packages", gpus=[])


def test_rpc_beside_a_gpu_backend():
    options = render("__llama_cpp_cmake_options", {"llama_cpp_rpc": True}, gpus=[RTX])
    assert options[-3:] == ["-DGGML_CUDA=ON", *RPC_OPTIONS]
    ids = {render("__llama_cpp_build_id", {"llama_cpp_rpc": rpc}, gpus=[RTX]) for rpc in (True, False)}
    assert len(ids) == 2 and all(i.startswith("0c1e57098bba-cuda-") for i in ids)


def test_the_build_compiles_and_installs_the_rpc_target_too():
    tasks = {t["name"].split(" {{")[0]: t for t in yaml.safe_load((ROLE / "tasks" / "build.yml").read_text())}
    assert tasks["Compile in the background"]["ansible.builtin.command"]["argv"].rstrip().endswith(
        "+ __llama_cpp_build_targets }}")
    assert tasks["Install the binaries into"]["loop"] == "{{ __llama_cpp_build_targets }}"
    marker = tasks["Record what was built (marks the build complete)"]
    assert marker["vars"]["__info"]["targets"] == "{{ __llama_cpp_build_targets }}"


@pytest.mark.parametrize("tasks_file", ["main.yml", "switch.yml"])
@pytest.mark.parametrize(("rpc", "expected"), [(True, "/opt/llama.cpp/current/bin/ggml-rpc-server"), (False, "")])
def test_the_worker_binary_is_exported_only_with_rpc(tasks_file, rpc, expected):
    tasks = yaml.safe_load((ROLE / "tasks" / tasks_file).read_text())
    (export,) = [t["ansible.builtin.set_fact"] for t in tasks
                 if "llama_cpp_rpc_server_binary" in t.get("ansible.builtin.set_fact", {})]
    assert render("__export", {"llama_cpp_rpc": rpc}, gpus=[],
                  __export=trusted(export["llama_cpp_rpc_server_binary"])) == expected


@pytest.mark.skipif(not SOURCE.exists(), reason="llama.cpp source at the pinned commit not cached")
def test_the_target_and_options_exist_at_the_pinned_commit():
    assert "set(TARGET ggml-rpc-server)" in (SOURCE / "tools" / "rpc" / "CMakeLists.txt").read_text()
    assert 'option(GGML_RPC ' in (SOURCE / "ggml" / "CMakeLists.txt").read_text()
    rpc_cmake = (SOURCE / "ggml" / "src" / "ggml-rpc" / "CMakeLists.txt").read_text()
    # RDMA switches itself on when libibverbs is found, unless the option is given.
    assert 'option(GGML_RPC_RDMA "ggml: enable RDMA transport for RPC" ON)' in rpc_cmake


# --- input checks: the role's validate entry point (argument spec + tasks/validate.yml) ---------

BAD = {
    "backend": ({"llama_cpp_backend": "rocm"}, "llama_cpp_backend"),
    "arch-space": ({"llama_cpp_cuda_architectures": "86 89"}, "llama_cpp_cuda_architectures must be empty"),
    "arch-option": ({"llama_cpp_cuda_architectures": "-89"}, "llama_cpp_cuda_architectures must be empty"),
    "arch-newline": ({"llama_cpp_cuda_architectures": "89\n"}, "llama_cpp_cuda_architectures"),
    "toolkit-relative": ({"llama_cpp_cuda_toolkit_dir": "cuda-12.8"}, "llama_cpp_cuda_toolkit_dir must be an absolute"),
    # Read on the host before anything is installed: the build could not work (no such toolkit here).
    "toolkit-missing": ({"llama_cpp_backend": "cuda", "llama_cpp_cuda_toolkit_dir": "/usr/local/cuda-12.8"},
                        "/usr/local/cuda-12.8/bin/nvcc is not an executable there"),
}
GOOD = {
    "defaults": {},
    # The distribution's toolkit (no llama_cpp_cuda_toolkit_dir): installed by the role, nothing to look for.
    "cuda": {"llama_cpp_backend": "cuda", "llama_cpp_cuda_architectures": "90a-real;120a-real"},
    "native": {"llama_cpp_backend": "cuda", "llama_cpp_cuda_architectures": "native"},
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """{host: (failed task name or None, its result)} from one ansible-playbook run of llama_cpp's checks."""
    hosts = case_hosts(BAD, GOOD)
    tmp = tmp_path_factory.mktemp("validate")
    tasks = [{"name": "Check", "ansible.builtin.include_role": {"name": "llama_cpp", "tasks_from": "validate"}}]
    return run_checks(tmp, hosts, tasks, "Check llama_cpp's inputs")


@pytest.mark.parametrize("case", BAD)
def test_bad_value_is_refused_naming_the_variable(outcomes, case):
    assert_refused(outcomes[f"bad-{case}"], *BAD[case])


@pytest.mark.parametrize("case", GOOD)
def test_good_values_pass(outcomes, case):
    assert outcomes[f"good-{case}"] == (None, None)


def test_the_gpus_read_once_survive_a_second_pass(tmp_path):
    """tasks/backend.yml runs from main.yml and again from switch.yml: the second pass's skipped
    reading must not replace the GPUs the first one read (this host has none: auto is cpu)."""
    include = {"ansible.builtin.include_role": {"name": "llama_cpp", "tasks_from": "backend"}}
    (tmp_path / "play.yml").write_text(yaml.safe_dump([{
        "name": "Choose the backend twice", "hosts": "localhost", "gather_facts": False,
        "vars": {"ansible_python_interpreter": sys.executable},
        "tasks": [{"name": "First pass", **include}, {"name": "Second pass", **include},
                  {"name": "Show", "ansible.builtin.debug": {"var": "__llama_cpp_detected_gpus"}}]}]))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    out = subprocess.run(["ansible-playbook", str(tmp_path / "play.yml"), "-i", "localhost,", "-c", "local", "--check"],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr
    tasks = {t["task"]["name"]: t["hosts"]["localhost"] for t in json.loads(out.stdout)["plays"][0]["tasks"]}
    assert tasks["llama_cpp : Read the GPUs (llama_cpp_backend auto)"].get("skipped") is True  # the second pass's
    assert isinstance(tasks["Show"]["__llama_cpp_detected_gpus"], list)


def test_vulkan_header_check_reads_the_version_and_refuses_debian_12(tmp_path):
    """The build stops before compiling when the headers are too old (Debian 12: 239)."""
    tasks = yaml.safe_load((ROLE / "tasks" / "feasible.yml").read_text())
    (read,) = [t for t in tasks if t["name"] == "Read the installed Vulkan headers' version"]
    header = tmp_path / "vulkan_core.h"
    # The lines around it as bookworm's libvulkan-dev 1.3.239 has them.
    header.write_text("// Version of this file\n#define VK_HEADER_VERSION 239\n\n// Complete version of this file\n"
                      "#define VK_HEADER_VERSION_COMPLETE VK_MAKE_API_VERSION(0, 1, 3, VK_HEADER_VERSION)\n")
    argv = [str(header) if a.endswith("vulkan_core.h") else a for a in read["ansible.builtin.command"]["argv"]]
    assert subprocess.run(argv, capture_output=True, text=True, check=True).stdout == "239\n"
    assert 239 < render("__llama_cpp_vulkan_min_header") == 272
