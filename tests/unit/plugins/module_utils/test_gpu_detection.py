"""GPU detection (llm_hardware's GPU parsers and llm_hardware_facts.gather_gpus) on captured text.

Fixtures in tests/fixtures/gpu (tests/fixtures/README.md says which are captured and which are
written in the captured format).
"""

import re
from pathlib import Path

import pytest
from ansible_collections.cpu_llm.infra.plugins.module_utils import llm_hardware as hw
from ansible_collections.cpu_llm.infra.plugins.modules import llm_hardware_facts as mod

FIX = Path(__file__).resolve().parents[3] / "fixtures" / "gpu"
GIB = 1 << 30
MIB = 1 << 20


def sysfs(name):
    """{path: text} from a `head /sys/bus/pci/devices/*/uevent ...` capture ("==> path <==" sections)."""
    files, path = {}, None
    for line in (FIX / name).read_text().splitlines(keepends=True):
        match = re.match(r"^==> (.+) <==$", line.strip())
        if match:
            path = match.group(1)
            files[path] = ""
        elif path:
            files[path] += line
    return {p: t.rstrip("\n") + "\n" for p, t in files.items()}


def fake_host(sysfs_name, outputs=None):
    """run, read and listdir over a captured sysfs and captured tool outputs ({tool: (rc, out, err)})."""
    files = sysfs(sysfs_name) if sysfs_name else {}

    def run(argv):
        return (outputs or {})[argv[0]]

    def read(path):
        return files.get(path)

    def listdir(path):
        prefix = path.rstrip("/") + "/"
        return sorted({p[len(prefix):].split("/")[0] for p in files if p.startswith(prefix)})

    return run, read, listdir


def test_uevent_of_a_bound_gpu():
    dev = hw.parse_pci_uevent(sysfs("sysfs-epyc-2x-rtx4090-aspeed.txt")["/sys/bus/pci/devices/0000:01:00.0/uevent"])
    assert dev == {"address": "0000:01:00.0", "vendor_id": "10de", "device_id": "2684", "pci_class": "030000",
                   "kernel_driver": "nvidia"}


def test_unbound_device_has_no_driver_and_text_without_pci_id_is_none():
    dev = hw.parse_pci_uevent(sysfs("sysfs-kvm-no-gpu.txt")["/sys/bus/pci/devices/0000:00:00.0/uevent"])
    assert dev["kernel_driver"] is None and dev["pci_class"] == "060000"
    assert hw.parse_pci_uevent("MAJOR=226\nMINOR=128\nDEVNAME=dri/renderD128\n") is None


def test_bmc_video_and_hdmi_audio_are_not_gpus():
    files = sysfs("sysfs-epyc-2x-rtx4090-aspeed.txt")
    gpus = hw.pci_gpus(t for p, t in files.items() if p.count("/") == 6)
    assert [(g["address"], g["vendor"]) for g in gpus] == [("0000:01:00.0", "nvidia"), ("0000:41:00.0", "nvidia")]


def test_kvm_guest_has_no_gpu_though_it_has_an_intel_host_bridge():
    files = sysfs("sysfs-kvm-no-gpu.txt")
    assert any("PCI_ID=8086:" in t for t in files.values())
    assert hw.pci_gpus(files.values()) == []


def test_integrated_gpu_is_a_display_controller_of_class_0380():
    files = sysfs("sysfs-ryzen-rx7900xtx-igpu.txt")
    assert [(g["device_id"], g["pci_class"]) for g in hw.pci_gpus(files.values())] == [("744c", "030000"),
                                                                                     ("164e", "038000")]


def test_nvidia_smi_rows_in_bytes_with_normalised_bus_id():
    rows = hw.parse_nvidia_smi((FIX / "nvidia-smi-2x-rtx4090.csv").read_text())
    assert rows == [
        {"name": "NVIDIA GeForce RTX 4090", "vram_bytes": 24564 * MIB, "vram_free_bytes": 24083 * MIB,
         "pci_address": "0000:01:00.0"},
        {"name": "NVIDIA GeForce RTX 4090", "vram_bytes": 24564 * MIB, "vram_free_bytes": 18419 * MIB,
         "pci_address": "0000:41:00.0"},
    ]


def test_nvidia_smi_unreported_memory_is_none_and_comma_in_name_kept():
    rows = hw.parse_nvidia_smi("NVIDIA GB10, [N/A], [N/A], 0000000F:01:00.0\n"
                               "Odd, Name, 81559, 80000, 00000000:3B:00.0\n")
    assert rows[0] == {"name": "NVIDIA GB10", "vram_bytes": None, "vram_free_bytes": None,
                       "pci_address": "000f:01:00.0"}
    assert rows[1]["name"] == "Odd, Name" and rows[1]["pci_address"] == "0000:3b:00.0"
    assert hw.parse_nvidia_smi("") == []


def test_vulkaninfo_lavapipe_captured_on_debian_12():
    devices = hw.parse_vulkaninfo_summary((FIX / "vulkaninfo-summary-bookworm-lavapipe.txt").read_text())
    assert devices == [{"name": "llvmpipe (LLVM 15.0.6, 256 bits)", "vendor_id": "10005", "device_id": "0000",
                        "type": "cpu", "vendor": "mesa", "driver": "llvmpipe", "api_version": "1.3.230"}]


def test_vulkaninfo_older_api_version_form():
    # vulkaninfo before 1.3.2xx printed apiVersion as "<packed> (<major.minor.patch>)".
    text = "Devices:\n========\nGPU0:\n\tapiVersion = 4206830 (1.3.238)\n\tvendorID = 0x8086\n\tdeviceID = 0x56a0\n" \
           "\tdeviceType = PHYSICAL_DEVICE_TYPE_DISCRETE_GPU\n\tdeviceName = Intel(R) Arc(tm) A770 Graphics (DG2)\n"
    (dev,) = hw.parse_vulkaninfo_summary(text)
    assert dev["api_version"] == "1.3.238" and dev["vendor"] == "intel" and dev["type"] == "discrete"


def test_nvidia_host_lists_each_card_once_with_its_memory_and_render_node():
    run, read, listdir = fake_host("sysfs-epyc-2x-rtx4090-aspeed.txt", {
        "/usr/bin/nvidia-smi": (0, (FIX / "nvidia-smi-2x-rtx4090.csv").read_text(), ""),
        "/usr/bin/vulkaninfo": (0, (FIX / "vulkaninfo-summary-2x-rtx4090.txt").read_text(), "")})
    gpus, status = mod.gather_gpus(run, read, listdir, "/usr/bin/nvidia-smi", "/usr/bin/vulkaninfo")
    assert status == "read"
    assert [(g["name"], g["backend"], g["source"], g["type"]) for g in gpus] == [
        ("NVIDIA GeForce RTX 4090", "cuda", "nvidia-smi", "discrete"),
        ("NVIDIA GeForce RTX 4090", "cuda", "nvidia-smi", "discrete"),
        ("llvmpipe (LLVM 15.0.6, 256 bits)", "vulkan", "vulkaninfo", "cpu"),
    ]
    assert gpus[1] == {"name": "NVIDIA GeForce RTX 4090", "vendor": "nvidia", "backend": "cuda",
                       "source": "nvidia-smi", "type": "discrete", "vram_bytes": 24564 * MIB,
                       "vram_free_bytes": 18419 * MIB, "pci_address": "0000:41:00.0",
                       "render_node": "/dev/dri/renderD129", "kernel_driver": "nvidia"}
    assert gpus[2]["vram_bytes"] is None and gpus[2]["pci_address"] is None


def test_nvidia_card_without_nvidia_smi_is_listed_from_pci_with_the_reason():
    run, read, listdir = fake_host("sysfs-epyc-2x-rtx4090-aspeed.txt")
    gpus, status = mod.gather_gpus(run, read, listdir)
    assert [(g["name"], g["source"], g["backend"]) for g in gpus] == [("NVIDIA GPU [10de:2684]", "pci", "cuda")] * 2
    assert "nvidia-smi is not installed" in status


def test_nvidia_smi_without_a_loaded_driver_is_a_status_not_an_error():
    message = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
    run, read, listdir = fake_host("sysfs-epyc-2x-rtx4090-aspeed.txt", {"/usr/bin/nvidia-smi": (9, message, "")})
    gpus, status = mod.gather_gpus(run, read, listdir, "/usr/bin/nvidia-smi")
    assert status == f"nvidia-smi failed (rc=9): {message}"
    assert {g["source"] for g in gpus} == {"pci"}


def test_amd_host_reads_vram_from_amdgpu_and_types_from_vulkan():
    run, read, listdir = fake_host("sysfs-ryzen-rx7900xtx-igpu.txt", {
        "vulkaninfo": (0, (FIX / "vulkaninfo-summary-rx7900xtx-igpu-lavapipe.txt").read_text(), "")})
    gpus, status = mod.gather_gpus(run, read, listdir, None, "vulkaninfo")
    assert status == "read"
    assert [(g["type"], g["vram_bytes"], g["render_node"], g["pci_address"]) for g in gpus] == [
        ("discrete", 25753026560, "/dev/dri/renderD128", "0000:03:00.0"),
        ("integrated", 512 * MIB, "/dev/dri/renderD129", "0000:10:00.0"),
        ("cpu", None, None, None),
    ]
    assert {g["backend"] for g in gpus} == {"vulkan"} and gpus[0]["name"] == "AMD Radeon RX 7900 XTX (RADV NAVI31)"


def test_amd_host_without_vulkaninfo_says_what_to_install():
    run, read, listdir = fake_host("sysfs-ryzen-rx7900xtx-igpu.txt")
    gpus, status = mod.gather_gpus(run, read, listdir)
    assert "vulkan-tools" in status and [g["source"] for g in gpus] == ["pci", "pci"]
    assert gpus[0]["vram_bytes"] == 25753026560 and gpus[0]["name"] == "AMD GPU [1002:744c]"


def test_lavapipe_alone_in_a_container_without_pci_gpus():
    run, read, listdir = fake_host("sysfs-kvm-no-gpu.txt", {
        "vulkaninfo": (0, (FIX / "vulkaninfo-summary-bookworm-lavapipe.txt").read_text(), "")})
    gpus, status = mod.gather_gpus(run, read, listdir, None, "vulkaninfo")
    assert status == "read" and [(g["vendor"], g["type"], g["source"]) for g in gpus] == [("mesa", "cpu", "vulkaninfo")]


def test_vulkaninfo_without_a_driver():
    err = "ERROR: [Loader Message] Code 0 : vkCreateInstance: Found no drivers!\n" \
          "Cannot create Vulkan instance.\nThis problem is often caused by a faulty installation of the Vulkan driver"
    run, read, listdir = fake_host("sysfs-kvm-no-gpu.txt", {"vulkaninfo": (1, "", err)})
    gpus, status = mod.gather_gpus(run, read, listdir, None, "vulkaninfo")
    assert gpus == [] and status.startswith("vulkaninfo found no Vulkan driver (rc=1): ERROR: [Loader Message]")


@pytest.mark.parametrize("name", ["sysfs-kvm-no-gpu.txt", None])
def test_cpu_only_host_reads_no_gpu(name):
    run, read, listdir = fake_host(name)
    assert mod.gather_gpus(run, read, listdir) == ([], "read")
