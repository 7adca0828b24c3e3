#!/usr/bin/python
"""Facts module: the hardware that decides CPU inference speed (see DOCUMENTATION)."""

DOCUMENTATION = r"""
module: llm_hardware_facts
short_description: Memory channels, memory speed, sockets, cores, NUMA layout and GPUs of a host
description:
  - Reads lscpu, sysfs and dmidecode (SMBIOS types 4 and 17) and returns C(ansible_facts.llm_hardware),
    what bounds llama.cpp token generation (memory channels x speed) and what shapes its threads
    (sockets, physical cores, NUMA nodes).
  - Lists the GPUs a llama.cpp backend could use (C(gpus)) from the PCI bus (sysfs), C(nvidia-smi) and
    C(vulkaninfo --summary), each when present; C(gpu_status) says what could not be read.
  - Without dmidecode or DMI access (VMs, containers, non-root) it still answers; fields it cannot
    read are null. I(overrides) supplies or corrects any field; C(sources) says where each came from.
  - Read-only; check mode is fully supported.
options:
  overrides:
    description:
      - "Facts to use instead of what is read, e.g. C({memory_channels: 24, memory_speed_mts: 4800})
        for a VM that cannot see its DIMMs. Keys are those of the returned fact."
      - The inventory variable C(llm_hardware_overrides) is passed here by the roles that read the hardware.
    type: dict
    default: {}
  dmidecode:
    description: Path of the dmidecode binary; looked up in PATH when not given.
    type: path
  gpus_only:
    description:
      - Read only the GPUs and return them as C(gpus) and C(gpu_status) beside the result, setting no
        fact, so a role that needs only the GPUs does not replace a reading made with I(overrides).
    type: bool
    default: false
notes:
  - Memory channels are inferred from DIMM locator names. Where the names carry no channel
    (HPE, Dell, Lenovo numbering), the count is min(DIMMs, the platform's channels) per socket.
"""

EXAMPLES = r"""
- name: Gather memory and CPU facts
  cpu_llm.infra.llm_hardware_facts:

- name: A VM that cannot read DMI
  cpu_llm.infra.llm_hardware_facts:
    overrides:
      memory_channels: 12
      memory_speed_mts: 4800
"""

RETURN = r"""
ansible_facts:
  description: Facts added under llm_hardware.
  returned: always
  type: dict
  contains:
    llm_hardware:
      description: >-
        cpu_model, cpu_vendor, sockets, cores (physical, all sockets), threads, threads_per_core,
        numa_nodes, cpu_flags, memory_type, memory_speed_mts, memory_speed_rated_mts,
        memory_channels, memory_channels_max, dimm_slots, dimms_populated, memory_total_bytes,
        peak_bandwidth_gbs, numa_balancing, smt_active, dimms (per-slot placement), dmi_status
        (why DMI fields are null), gpus, gpu_status, sources.
      type: dict
      contains:
        gpus:
          description: >-
            One entry per GPU: name, vendor (nvidia, amd, intel, mesa), backend (cuda or vulkan, the one
            that would drive it), source (nvidia-smi or vulkaninfo when a driver answered for it, pci when
            it is only plugged in), type (discrete, integrated, virtual, cpu, other or null; cpu is a
            software rasterizer such as Mesa's lavapipe, not a GPU), vram_bytes and vram_free_bytes
            (null when unknown), pci_address, render_node, kernel_driver.
          type: list
          elements: dict
        gpu_status:
          description: What the GPU reading could not see (a tool missing or failing), or C(read).
          type: str
gpus:
  description: With I(gpus_only), the GPUs as in C(llm_hardware.gpus).
  returned: when gpus_only
  type: list
  elements: dict
gpu_status:
  description: With I(gpus_only), as C(llm_hardware.gpu_status).
  returned: when gpus_only
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.cpu_llm.infra.plugins.module_utils import llm_hardware as hw

FIELDS = ("cpu_model", "cpu_vendor", "sockets", "cores", "threads", "threads_per_core", "numa_nodes", "cpu_flags",
          "memory_type", "memory_speed_mts", "memory_speed_rated_mts", "memory_channels", "memory_channels_max",
          "dimm_slots", "dimms_populated", "memory_total_bytes", "peak_bandwidth_gbs", "numa_balancing",
          "smt_active")


PCI_DEVICES = "/sys/bus/pci/devices"
NVIDIA_SMI_QUERY = ["--query-gpu=name,memory.total,memory.free,pci.bus_id", "--format=csv,noheader,nounits"]


class ParseError(Exception):
    pass


def _no_dir(path):
    return []


def gather_gpus(run, read, listdir, nvidia_smi=None, vulkaninfo=None):
    """(gpus, gpu_status) from the PCI bus and, when installed, nvidia-smi and vulkaninfo.

    listdir(path) -> names in a directory ([] when it does not exist); nvidia_smi and vulkaninfo
    are the tools' paths, None when not installed.
    """
    pci = hw.pci_gpus(t for t in (read(f"{PCI_DEVICES}/{n}/uevent") for n in sorted(listdir(PCI_DEVICES))) if t)
    for dev in pci:
        base = f"{PCI_DEVICES}/{dev['address']}"
        total = (read(f"{base}/mem_info_vram_total") or "").strip()  # amdgpu's VRAM size, in bytes
        dev["vram_bytes"] = int(total) if total.isdigit() else None
        nodes = sorted(n for n in listdir(f"{base}/drm") if n.startswith("renderD"))
        dev["render_node"] = f"/dev/dri/{nodes[0]}" if nodes else None
    notes, nvidia, vulkan = [], [], []
    vendors = {dev["vendor"] for dev in pci}
    if nvidia_smi:
        rc, out, err = run([nvidia_smi, *NVIDIA_SMI_QUERY])
        if rc == 0:
            nvidia = hw.parse_nvidia_smi(out)
        else:
            notes.append(f"nvidia-smi failed (rc={rc}): {(err or out).strip()[:300]}")
    elif "nvidia" in vendors:
        notes.append("an NVIDIA GPU is on the PCI bus but nvidia-smi is not installed (no NVIDIA driver): "
                     "CUDA cannot use it")
    if vulkaninfo:
        rc, out, err = run([vulkaninfo, "--summary"])
        if rc == 0:
            vulkan = hw.parse_vulkaninfo_summary(out)
        else:
            notes.append(f"vulkaninfo found no Vulkan driver (rc={rc}): {(err or out).strip()[:300]}")
    elif vendors & {"amd", "intel"}:
        notes.append("vulkaninfo is not installed (Debian: vulkan-tools): AMD and Intel GPUs are not checked "
                     "for a Vulkan driver")
    return hw.merge_gpus(pci, nvidia, vulkan), "; ".join(notes) or "read"


def gather(run, read, overrides=None, dmidecode=None, listdir=_no_dir, nvidia_smi=None, vulkaninfo=None):
    """Build the llm_hardware fact.

    run(argv) -> (rc, stdout, stderr); read(path) -> text or None when unreadable; listdir and the
    GPU tools as in gather_gpus.
    """
    facts = dict.fromkeys(FIELDS)
    sources = {}

    def take(values, source):
        for key, value in values.items():
            if value is not None and key in facts and facts[key] is None:
                facts[key] = value
                sources[key] = source

    rc, out, err = run(["lscpu"])
    if rc != 0:
        raise ParseError(f"lscpu failed (rc={rc}): {err or out}")
    lscpu = hw.parse_lscpu(out)
    if lscpu["cores"] is None and lscpu["threads"] is None:
        raise ParseError(f"could not parse lscpu output: {out[:2000]}")

    take({"numa_nodes": hw.parse_node_list(read("/sys/devices/system/node/online"))}, "sysfs")
    smt = read("/sys/devices/system/cpu/smt/active")
    take({"smt_active": smt.strip() == "1" if smt else None,
          "numa_balancing": hw.parse_numa_balancing(read("/proc/sys/kernel/numa_balancing"))}, "sysfs")

    dmi, facts_dimms = {}, []
    if not dmidecode:
        dmi_status = "dmidecode is not installed (the os_tuning role installs it; the next run reads DMI)"
    else:
        rc, out, err = run([dmidecode, "-t", "4", "-t", "17"])
        if rc != 0:
            dmi_status = f"dmidecode failed: {(err or out).strip()[:300]}"
        else:
            dmi = hw.parse_dmidecode(out)
            facts_dimms = hw.dimm_layout(out)
            dmi_status = "read" if dmi["dimm_slots"] else "no memory devices in DMI (a VM or container)"
    # lscpu knows the CPU best (sockets as the OS sees them); DMI knows the memory.
    take({k: v for k, v in lscpu.items() if k in ("sockets", "cores", "threads", "threads_per_core", "numa_nodes",
                                                   "cpu_model", "cpu_vendor", "cpu_flags")}, "lscpu")
    take({k: dmi.get(k) for k in ("memory_type", "memory_speed_mts", "memory_speed_rated_mts", "memory_channels",
                                  "dimm_slots", "dimms_populated", "memory_total_bytes", "sockets", "cpu_model")},
         "dmi")
    if facts["memory_total_bytes"] is None:
        meminfo = read("/proc/meminfo") or ""
        for line in meminfo.splitlines():
            if line.startswith("MemTotal:"):
                take({"memory_total_bytes": int(line.split()[1]) * 1024}, "meminfo")

    for key, value in (overrides or {}).items():
        if key not in facts:
            raise ParseError(f"llm_hardware_overrides: unknown key {key!r}; known keys: {', '.join(FIELDS)}")
        facts[key] = value
        sources[key] = "override"

    if "memory_channels_max" not in sources:
        per_socket = hw.channels_per_socket(facts["cpu_model"])
        if per_socket and facts["sockets"]:
            facts["memory_channels_max"] = per_socket * facts["sockets"]
            sources["memory_channels_max"] = "platform table"
    if "peak_bandwidth_gbs" not in sources:
        facts["peak_bandwidth_gbs"] = hw.peak_bandwidth_gbs(facts["memory_channels"], facts["memory_speed_mts"])
        if facts["peak_bandwidth_gbs"] is not None:
            sources["peak_bandwidth_gbs"] = "computed"
    facts["dimms"] = facts_dimms
    facts["dmi_status"] = dmi_status
    facts["gpus"], facts["gpu_status"] = gather_gpus(run, read, listdir, nvidia_smi, vulkaninfo)
    facts["sources"] = sources
    return facts


def main():
    module = AnsibleModule(
        argument_spec={"overrides": {"type": "dict", "default": {}}, "dmidecode": {"type": "path"},
                       "gpus_only": {"type": "bool", "default": False}},
        supports_check_mode=True,
    )
    module.run_command_environ_update = {"LC_ALL": "C", "LANG": "C"}

    def run(argv):
        return module.run_command(argv)

    def read(path):
        try:
            with open(path) as handle:
                return handle.read()
        except OSError:
            return None

    def listdir(path):
        try:
            return os.listdir(path)
        except OSError:
            return []

    nvidia_smi = module.get_bin_path("nvidia-smi")
    vulkaninfo = module.get_bin_path("vulkaninfo")
    if module.params["gpus_only"]:
        gpus, status = gather_gpus(run, read, listdir, nvidia_smi, vulkaninfo)
        module.exit_json(changed=False, gpus=gpus, gpu_status=status)

    dmidecode = module.params["dmidecode"] or module.get_bin_path("dmidecode", opt_dirs=["/usr/sbin", "/sbin"])
    if dmidecode and os.geteuid() != 0:
        module.warn("not root: SMBIOS (DMI) tables are readable by root only; run with become: true")
        dmidecode = None
    try:
        facts = gather(run, read, module.params["overrides"], dmidecode, listdir, nvidia_smi, vulkaninfo)
    except ParseError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, ansible_facts={"llm_hardware": facts})


if __name__ == "__main__":
    main()
