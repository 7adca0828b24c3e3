"""llm_hardware_facts.gather with captured command output, and the module run through Ansible."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.cpu_llm.infra.plugins.modules import llm_hardware_facts as mod

ROOT = Path(__file__).resolve().parents[4]
FIX = ROOT / "tests" / "fixtures"


def fake(lscpu, dmi=None, files=None):
    def run(argv):
        if argv[0] == "lscpu":
            return (0, (FIX / "lscpu" / lscpu).read_text(), "")
        if argv[0] == "/usr/sbin/dmidecode":
            return (0, (FIX / "dmi" / dmi).read_text(), "") if dmi else (1, "", "/dev/mem: Permission denied")
        raise AssertionError(argv)

    def read(path):
        return (files or {}).get(path)

    return run, read


def test_two_socket_server_with_dmi():
    run, read = fake("mz72-hb0-2x7t83.txt", "gigabyte-mz72-hb0-epyc7t83-2s.txt",
                     {"/sys/devices/system/node/online": "0-1\n", "/sys/devices/system/cpu/smt/active": "1\n",
                      "/proc/sys/kernel/numa_balancing": "1\n"})
    facts = mod.gather(run, read, {}, "/usr/sbin/dmidecode")
    assert facts["sockets"] == 2 and facts["cores"] == 128 and facts["threads"] == 256
    assert facts["numa_nodes"] == 2 and facts["sources"]["numa_nodes"] == "sysfs"
    assert facts["cpu_vendor"] == "AMD" and "avx2" in facts["cpu_flags"]
    assert facts["memory_type"] == "DDR4" and facts["memory_speed_mts"] == 3200
    assert facts["memory_channels"] == 16 and facts["memory_channels_max"] == 16
    assert facts["peak_bandwidth_gbs"] == 409.6
    assert facts["memory_total_bytes"] == 1024 << 30 and facts["sources"]["memory_total_bytes"] == "dmi"
    assert facts["smt_active"] is True and facts["numa_balancing"] is True
    assert len(facts["dimms"]) == 16 and {d["socket"] for d in facts["dimms"]} == {"0", "1"}
    assert facts["dmi_status"] == "read"
    # No listdir given: no PCI bus to read, so no GPU, and the tools are not run.
    assert facts["gpus"] == [] and facts["gpu_status"] == "read"


def test_vm_without_dmi_answers_with_nulls_and_meminfo():
    run, read = fake("kvm-epyc-2core.txt", None, {"/proc/meminfo": "MemTotal:       24596348 kB\n"})
    facts = mod.gather(run, read, {}, "/usr/sbin/dmidecode")
    assert facts["cores"] == 2 and facts["sockets"] == 1
    assert facts["memory_channels"] is None and facts["memory_speed_mts"] is None
    assert facts["peak_bandwidth_gbs"] is None
    assert facts["dmi_status"].startswith("dmidecode failed: /dev/mem: Permission denied")
    assert facts["memory_total_bytes"] == 24596348 * 1024 and facts["sources"]["memory_total_bytes"] == "meminfo"
    assert "avx512f" in facts["cpu_flags"]


def test_overrides_fill_what_the_vm_cannot_see():
    run, read = fake("kvm-epyc-2core.txt")
    facts = mod.gather(run, read, {"memory_channels": 12, "memory_speed_mts": 4800}, None)
    assert facts["dmi_status"].startswith("dmidecode is not installed")
    assert facts["memory_channels"] == 12 and facts["sources"]["memory_channels"] == "override"
    assert facts["peak_bandwidth_gbs"] == 460.8 and facts["sources"]["peak_bandwidth_gbs"] == "computed"


def test_unknown_override_key_is_refused_by_name():
    run, read = fake("kvm-epyc-2core.txt")
    with pytest.raises(mod.ParseError, match="unknown key 'memory_chanels'"):
        mod.gather(run, read, {"memory_chanels": 12}, None)


def test_unparseable_lscpu_fails_with_its_output():
    with pytest.raises(mod.ParseError, match="could not parse lscpu output: garbage"):
        mod.gather(lambda argv: (0, "garbage", ""), lambda path: None, {}, None)


def test_gpus_are_part_of_the_fact():
    run, read = fake("kvm-epyc-2core.txt")
    files = {"/sys/bus/pci/devices/0000:01:00.0/uevent": "DRIVER=nvidia\nPCI_CLASS=30000\nPCI_ID=10DE:2684\n"
                                                          "PCI_SLOT_NAME=0000:01:00.0\n"}

    def listdir(path):
        return ["0000:01:00.0"] if path == "/sys/bus/pci/devices" else []

    facts = mod.gather(run, lambda path: files.get(path) or read(path), {}, None, listdir)
    assert [(g["name"], g["source"]) for g in facts["gpus"]] == [("NVIDIA GPU [10de:2684]", "pci")]
    assert "nvidia-smi is not installed" in facts["gpu_status"]


def ansible_module(*args):
    # The ansible beside this Python first: the tests also run without the virtualenv activated.
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    out = subprocess.run(["ansible", "localhost", "-m", "cpu_llm.infra.llm_hardware_facts", "--check", "-o", *args],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout.split("=>", 1)[1])


def test_module_runs_through_ansible_in_check_mode():
    facts = ansible_module()["ansible_facts"]["llm_hardware"]
    assert facts["cores"] >= 1 and facts["sources"]["cores"] == "lscpu"
    assert isinstance(facts["gpus"], list) and facts["gpu_status"]


def test_gpus_only_sets_no_fact():
    """llama_cpp reads the GPUs this way: a reading made with overrides stays as it was."""
    result = ansible_module("-a", "gpus_only=true")
    assert "ansible_facts" not in result or "llm_hardware" not in result["ansible_facts"]
    assert isinstance(result["gpus"], list) and result["gpu_status"]
