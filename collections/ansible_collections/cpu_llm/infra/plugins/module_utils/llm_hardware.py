"""Hardware facts for memory-bandwidth-bound inference: parsers for dmidecode, lscpu and sysfs.

Plain Python, standard library only, no Ansible imports: the facts module, the filters and the
unit tests all import it. Every parser takes text and returns plain values; None means "the
source does not say".
"""

import re

GIB = 1 << 30

# Memory channels per socket by platform, from the vendors' product specifications:
# AMD EPYC 9004/9005 (Genoa, Bergamo, Turin) 12 x DDR5; EPYC 8004 (Siena) 6 x DDR5;
# EPYC 7001/7002/7003 8 x DDR4; EPYC 4004/4005 (AM5) 2 x DDR5; Threadripper PRO 8 channels,
# Threadripper (non-PRO) 4; Intel Xeon Scalable 1st/2nd gen (x1xx/x2xx, Skylake/Cascade Lake)
# and Cooper Lake (x3xxH) 6 x DDR4; 3rd gen Ice Lake (x3xx) 8 x DDR4; 4th/5th gen
# (x4xx/x5xx, Sapphire/Emerald Rapids) 8 x DDR5; Xeon 6 69xx 12, 67xx/65xx 8; Xeon W-3x00 8,
# W-2x00 4; desktop Core/Ryzen 2.
_PLATFORMS = [
    (re.compile(r"EPYC\s+9\d{2}\d", re.I), 12),
    (re.compile(r"EPYC\s+8\d{3}", re.I), 6),
    (re.compile(r"EPYC\s+7\w{3}", re.I), 8),
    (re.compile(r"EPYC\s+4\d{3}", re.I), 2),
    (re.compile(r"Threadripper\s+PRO", re.I), 8),
    (re.compile(r"Threadripper", re.I), 4),
    (re.compile(r"Xeon.*\b(?:Platinum|Gold|Silver|Bronze)\s+\d3\d\dH\b", re.I), 6),
    (re.compile(r"Xeon.*\b(?:Platinum|Gold|Silver|Bronze)\s+\d[12]\d\d", re.I), 6),
    (re.compile(r"Xeon.*\b(?:Platinum|Gold|Silver|Bronze)\s+\d[345]\d\d", re.I), 8),
    (re.compile(r"Xeon.*\b69\d\d[PE]", re.I), 12),
    (re.compile(r"Xeon.*\b6[5-7]\d\d[PE]", re.I), 8),
    (re.compile(r"Xeon.*\bMax\s+94\d\d", re.I), 8),
    (re.compile(r"Xeon.*\bW-3\d{3}", re.I), 8),
    (re.compile(r"Xeon.*\bW-2\d{3}", re.I), 4),
    (re.compile(r"\b(?:Ryzen|Core\(TM\)|Core\s+(?:Ultra|i[3579]))", re.I), 2),
]

# The slowest data rate a DIMM of each type runs at (JEDEC); a "speed" below it is a clock in MHz.
_MIN_DATA_RATE = {"DDR3": 800, "DDR4": 1600, "DDR5": 3200}


def physical_cores(facts):
    """Physical cores over all sockets from Ansible's facts (processor_cores is per socket, processor_count the
    sockets); None when either is missing. The default thread count of every role that runs llama.cpp: token
    generation is memory-bound, and SMT siblings share the core's load units and add contention, not bandwidth
    (llama.cpp's docs: "--threads: number of physical CPU cores"; seed thread)."""
    try:
        cores, sockets = int(facts["processor_cores"]), int(facts["processor_count"])
    except (KeyError, TypeError, ValueError):
        return None
    return cores * sockets if cores > 0 and sockets > 0 else None


def channels_per_socket(cpu_model):
    """Memory channels one socket of this CPU offers, or None for an unknown model."""
    for pattern, channels in _PLATFORMS:
        if cpu_model and pattern.search(cpu_model):
            return channels
    return None


def peak_bandwidth_gbs(channels, speed_mts):
    """Theoretical peak: channels x transfers/s x 8 bytes (64-bit channel), in GB/s (1e9)."""
    if not channels or not speed_mts:
        return None
    return round(channels * speed_mts * 8 / 1000, 1)


# --- dmidecode --------------------------------------------------------------------------

def _records(text):
    """Split a dmidecode dump into (title, {field: value}) records."""
    out = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        lines = [ln for ln in block.split("\n") if ln.strip()]
        if lines and lines[0].startswith("Handle "):
            lines = lines[1:]
        if not lines:
            continue
        title, fields = lines[0].strip(), {}
        for line in lines[1:]:
            key, sep, value = line.strip().partition(":")
            if sep and key not in fields:
                fields[key.strip()] = value.strip()
        out.append((title, fields))
    return out


def _size_bytes(value):
    match = re.match(r"(\d+)\s*(kB|KB|MB|GB|TB)", value or "")
    if not match:
        return None
    return int(match.group(1)) * {"kB": 1 << 10, "KB": 1 << 10, "MB": 1 << 20, "GB": GIB, "TB": 1 << 40}[match.group(2)]


def _speed(value):
    match = re.match(r"(\d+)\s*(MT/s|MHz)", value or "")
    return int(match.group(1)) if match and int(match.group(1)) > 0 else None


# Socket in a bank or slot name: "P0_Node0...", "P1-DIMMA1", "CPU1_DIMM_A1", "PROC 2 DIMM 5".
_SOCKET_RE = re.compile(r"(?:^|[\s_-])(?:CPU|PROC|SOCKET|P)\s*[_-]?\s*(\d+)(?=$|[\s_-])", re.I)
# AMD/Intel bank locators: "P0_Node1_Channel2_Dimm0", "P0 CHANNEL A"; Intel desktops:
# "Controller0-ChannelA-DIMM1", "ChannelB-DIMM0".
_CHANNEL_RE = re.compile(r"(?:NODE\s*(\d+)\W*_?)?(?:CONTROLLER\s*(\d+)\W*)?CHANNEL\s*[-_]?\s*([A-Z0-9]+)", re.I)
# Board locators where a letter names the channel: "DIMMA1", "DIMM_A1", "DIMM_P0_A0",
# "P1-DIMMA1", "CPU1_DIMM_B2"; Fujitsu "DIMM-1A" (digit = slot in channel).
_LETTER_RES = [
    re.compile(r"DIMM[\s_-]*(?:P\d+[\s_-]+)?([A-Z])\d", re.I),
    re.compile(r"DIMM[\s_-]*\d([A-Z])\b", re.I),
]
_DELL_RE = re.compile(r"^([A-Z])(\d+)$")


def _dimm_place(locator, bank):
    """(socket, channel) of one DIMM from its names; either may be None."""
    socket = channel = None
    dell = _DELL_RE.match(locator)
    if dell:  # Dell "A1".."A16": letter = socket, number = slot
        return dell.group(1), None
    # The bank locator first, consistently for every DIMM of a dump: only distinctness matters.
    for text in (bank, locator):
        match = _SOCKET_RE.search(text)
        if match:
            socket = match.group(1)
            break
    for text in (bank, locator):
        match = _CHANNEL_RE.search(text)
        if match:
            channel = "/".join(g or "" for g in match.groups()).upper()
            break
    if channel is None:
        for pattern in _LETTER_RES:
            match = pattern.search(locator)
            if match:
                channel = match.group(1).upper()
                break
    return socket, channel


def _memory_type(raw, speeds):
    if raw and re.match(r"^(LP)?DDR\d", raw):
        return raw.split()[0]
    if raw and "OUT OF SPEC" in raw.upper() and speeds and min(speeds) >= 4000:
        # dmidecode older than 3.4 does not know DDR5 (SMBIOS type 0x22) and prints
        # <OUT OF SPEC>; no DDR4 DIMM runs at 4000 MT/s or more (JEDEC tops out at 3200).
        return "DDR5"
    return None


def parse_dmidecode(text):
    """Memory and processor facts from `dmidecode` output (any of types 4 and 17, or a full dump)."""
    records = _records(text or "")
    cpus = [f for t, f in records if t == "Processor Information"]
    populated_cpus = [f for f in cpus if f.get("Status", "").startswith("Populated")]
    cpu_model = None
    for fields in populated_cpus or cpus:
        version = fields.get("Version", "").strip()
        if version and version.lower() not in ("not specified", "unknown"):
            cpu_model = re.sub(r"\s+", " ", version)
            break

    slots = [f for t, f in records if t == "Memory Device"]
    dimms = [f for f in slots if _size_bytes(f.get("Size"))]
    types = {f.get("Type", "") for f in dimms}
    configured, rated = [], []
    for fields in dimms:
        rate = _speed(fields.get("Speed"))
        if rate:
            rated.append(rate)
        clock_field = "Configured Clock Speed" in fields
        speed = _speed(fields.get("Configured Memory Speed") or fields.get("Configured Clock Speed"))
        if speed and clock_field and rate and speed * 2 == rate:
            # dmidecode < 3.1 labels this field a clock; some firmware of that era stored the
            # memory clock (half the DDR data rate) in it: DDR4-2800 shows as 1400 MHz.
            speed *= 2
        if speed:
            configured.append(speed)
    raw_type = next(iter(types)) if len(types) == 1 else (sorted(types)[0] if types else None)
    memory_type = _memory_type(raw_type, configured or rated)
    floor = _MIN_DATA_RATE.get(memory_type or "")
    if floor:
        configured = [s * 2 if s < floor and s * 2 >= floor else s for s in configured]

    channels = _count_channels(dimms, cpu_model, len(populated_cpus) or len(cpus) or None)
    return {
        "sockets": (len(populated_cpus) or len(cpus)) or None,
        "cpu_model": cpu_model,
        "memory_type": memory_type,
        "memory_speed_mts": min(configured) if configured else None,
        "memory_speed_rated_mts": min(rated) if rated else None,
        "dimm_slots": len(slots) or None,
        "dimms_populated": len(dimms) if slots else None,
        "memory_total_bytes": sum(_size_bytes(f["Size"]) for f in dimms) if dimms else None,
        "memory_channels": channels,
    }


def dimm_layout(text):
    """Per-DIMM placement, for the BIOS audit: [{locator, bank, socket, channel, size_bytes}]."""
    out = []
    for title, fields in _records(text or ""):
        if title != "Memory Device":
            continue
        socket, channel = _dimm_place(fields.get("Locator", ""), fields.get("Bank Locator", ""))
        out.append({"locator": fields.get("Locator"), "bank": fields.get("Bank Locator"), "socket": socket,
                    "channel": channel, "size_bytes": _size_bytes(fields.get("Size"))})
    return out


def _count_channels(dimms, cpu_model, sockets):
    """Distinct memory channels holding a DIMM, across sockets.

    Where the names carry the channel (most boards), count distinct (socket, channel). Where
    they do not (HPE "PROC 1 DIMM 5", Dell "A3", Lenovo "DIMM 7"), count min(DIMMs, channels
    the platform offers) per socket: vendors' population rules fill one DIMM per channel
    before a second, so that is exact for supported layouts.
    """
    if not dimms:
        return None
    places = [_dimm_place(f.get("Locator", ""), f.get("Bank Locator", "")) for f in dimms]
    cap = channels_per_socket(cpu_model)
    if all(channel is not None for _, channel in places):
        per_socket = {}
        for socket, channel in places:
            per_socket.setdefault(socket, set()).add(channel)
        return sum(min(len(chs), cap) if cap else len(chs) for chs in per_socket.values())
    per_socket = {}
    for socket, _ in places:
        per_socket[socket] = per_socket.get(socket, 0) + 1
    if None in per_socket and len(per_socket) == 1 and sockets and sockets > 1:
        # No socket in the names either: assume the DIMMs are spread evenly over the sockets.
        count = per_socket.pop(None)
        per_socket = {str(i): count // sockets + (1 if i < count % sockets else 0) for i in range(sockets)}
    return sum(min(n, cap) if cap else n for n in per_socket.values())


# --- lscpu and sysfs --------------------------------------------------------------------

def parse_lscpu(text):
    """sockets, cores (physical, all sockets), threads, numa_nodes, cpu_model, cpu_vendor, cpu_flags."""
    fields = {}
    for line in (text or "").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())

    def num(key):
        value = fields.get(key, "")
        return int(value) if value.isdigit() else None

    sockets = num("Socket(s)")
    per_socket = num("Core(s) per socket")
    threads_per_core = num("Thread(s) per core")
    cores = per_socket * sockets if per_socket and sockets else None
    threads = num("CPU(s)")
    vendor = fields.get("Vendor ID")
    return {
        "sockets": sockets,
        "cores": cores,
        "threads": threads,
        "threads_per_core": threads_per_core,
        "numa_nodes": num("NUMA node(s)"),
        "cpu_model": fields.get("Model name"),
        "cpu_vendor": {"AuthenticAMD": "AMD", "GenuineIntel": "Intel"}.get(vendor, vendor),
        "cpu_flags": sorted(fields.get("Flags", "").split()) or None,
    }


def parse_node_list(text):
    """Count of NUMA nodes from /sys/devices/system/node/online, e.g. '0-1' -> 2, '0' -> 1."""
    total = 0
    for part in (text or "").strip().split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        total += int(high or low) - int(low) + 1
    return total or None


def parse_numa_balancing(text):
    """kernel.numa_balancing from /proc/sys: True (on), False (off) or None (absent)."""
    value = (text or "").strip()
    return None if value == "" else value != "0"


# --- GPUs -------------------------------------------------------------------------------
# What a llama.cpp GPU backend could use, from three sources, each optional: the PCI bus (sysfs,
# always there), nvidia-smi (installed with NVIDIA's driver) and vulkaninfo (Debian: vulkan-tools).
# Only the last two prove that a driver can run work on the device; the PCI bus alone says a GPU
# is plugged in.

# PCI base class 03h (display controller), subclasses 00h VGA-compatible, 02h 3D controller and
# 80h other (PCI-SIG, PCI Code and ID Assignment Specification): data-centre GPUs without display
# outputs (NVIDIA A100/H100, AMD Instinct) are 3D or "other" display controllers.
_DISPLAY_CLASSES = ("0300", "0302", "0380")
# The vendors a llama.cpp backend here drives. The BMC's video (ASPEED 1a03, Matrox 102b) and
# virtual displays (bochs 1234, virtio 1af4, QXL 1b36) are display controllers too, not GPUs.
PCI_VENDORS = {"10de": "nvidia", "1002": "amd", "8086": "intel"}
_VENDOR_NAMES = {"nvidia": "NVIDIA", "amd": "AMD", "intel": "Intel"}
# Vulkan's vendorID is the PCI vendor id, or a Khronos id for a device that is not on PCI:
# 0x10005 is VK_VENDOR_ID_MESA (lavapipe, Mesa's software rasterizer on the CPU).
_VULKAN_VENDORS = {**PCI_VENDORS, "10005": "mesa"}
# VkPhysicalDeviceType as vulkaninfo prints it.
_VULKAN_TYPES = {"PHYSICAL_DEVICE_TYPE_DISCRETE_GPU": "discrete", "PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU": "integrated",
                 "PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU": "virtual", "PHYSICAL_DEVICE_TYPE_CPU": "cpu",
                 "PHYSICAL_DEVICE_TYPE_OTHER": "other"}
MIB = 1 << 20


def parse_pci_uevent(text):
    """One PCI device from its sysfs uevent file: {address, vendor_id, device_id, pci_class, kernel_driver}.

    The kernel writes DRIVER= (when a driver is bound, drivers/base/core.c dev_uevent) and PCI_CLASS
    (%04X of the 24-bit class), PCI_ID (vendor:device, %04X:%04X) and PCI_SLOT_NAME
    (drivers/pci/pci-driver.c pci_uevent). None when the text has no PCI_ID.
    """
    fields = {}
    for line in (text or "").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip()
    vendor, _, device = fields.get("PCI_ID", "").lower().partition(":")
    if not vendor or not device:
        return None
    return {"address": fields.get("PCI_SLOT_NAME", "").lower() or None, "vendor_id": vendor, "device_id": device,
            "pci_class": fields.get("PCI_CLASS", "").lower().zfill(6), "kernel_driver": fields.get("DRIVER") or None}


def pci_gpus(uevents):
    """The GPUs among PCI devices (uevent texts): display controllers of NVIDIA, AMD and Intel, by address."""
    found = []
    for text in uevents:
        dev = parse_pci_uevent(text)
        if dev and dev["pci_class"][:4] in _DISPLAY_CLASSES and dev["vendor_id"] in PCI_VENDORS:
            found.append(dict(dev, vendor=PCI_VENDORS[dev["vendor_id"]]))
    return sorted(found, key=lambda d: d["address"] or "")


def _pci_address(value):
    """'00000000:3B:00.0' (nvidia-smi, 8-digit domain) or '0000:3b:00.0' (sysfs) -> '0000:3b:00.0'."""
    match = re.match(r"^([0-9a-fA-F]+):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$", (value or "").strip())
    if not match:
        return None
    domain, bus, dev, fn = match.groups()
    return f"{int(domain, 16):04x}:{bus.lower()}:{dev.lower()}.{fn}"


def _mib(value):
    value = (value or "").strip()
    return int(float(value) * MIB) if re.match(r"^\d+(\.\d+)?$", value) else None


def parse_nvidia_smi(text):
    """GPUs from `nvidia-smi --query-gpu=name,memory.total,memory.free,pci.bus_id --format=csv,noheader,nounits`.

    One line per GPU, fields separated by ", ", memory in MiB (nounits); a value the GPU does not
    report reads "[N/A]" or "[Not Supported]" and becomes None. The name is everything before the
    last three fields, so a comma inside it is kept.
    """
    gpus = []
    for line in (text or "").splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 4 or not parts[0]:
            continue
        name, total, free, bus = ", ".join(parts[:-3]), parts[-3], parts[-2], parts[-1]
        gpus.append({"name": name, "vram_bytes": _mib(total), "vram_free_bytes": _mib(free),
                     "pci_address": _pci_address(bus)})
    return gpus


def parse_vulkaninfo_summary(text):
    """Vulkan devices from `vulkaninfo --summary`: [{name, vendor_id, device_id, type, vendor, driver, api_version}].

    The "Devices:" section lists "GPU<n>:" blocks of "key = value" lines (Vulkan-Tools'
    vulkaninfo, 1.2.1xx and later). type is discrete, integrated, virtual, cpu or other; vendor is
    nvidia, amd, intel, mesa (lavapipe) or None.
    """
    devices, current, in_devices = [], None, False
    for line in (text or "").splitlines():
        stripped = line.strip()
        if stripped == "Devices:":
            in_devices = True
            continue
        if not in_devices:
            continue
        if re.match(r"^GPU\d+:$", stripped):
            current = {}
            devices.append(current)
            continue
        key, sep, value = stripped.partition("=")
        if current is not None and sep:
            current[key.strip()] = value.strip()
    out = []
    for fields in devices:
        vendor_id = _hex_id(fields.get("vendorID"))
        version = re.search(r"(\d+\.\d+\.\d+)", fields.get("apiVersion", ""))
        kind = fields.get("deviceType")
        out.append({"name": fields.get("deviceName"), "vendor_id": vendor_id,
                    "device_id": _hex_id(fields.get("deviceID")),
                    "type": _VULKAN_TYPES.get(kind, "other") if kind else None,
                    "vendor": _VULKAN_VENDORS.get(vendor_id), "driver": fields.get("driverName"),
                    "api_version": version.group(1) if version else None})
    return out


def _hex_id(value):
    """'0x10de' -> '10de' (4 digits at least, lowercase); None when not hex."""
    match = re.match(r"^0x([0-9a-fA-F]+)$", (value or "").strip())
    return match.group(1).lower().rjust(4, "0") if match else None


def merge_gpus(pci, nvidia, vulkan):
    """One entry per GPU from what each source saw, for the llm_hardware fact's `gpus`.

    Each entry: name, vendor, backend (cuda for NVIDIA, vulkan otherwise: the backend that would
    drive it), source (nvidia-smi or vulkaninfo: a driver answered for it; pci: only plugged in),
    type (discrete, integrated, virtual, cpu, other; None when unknown), vram_bytes and
    vram_free_bytes (None when unknown), pci_address, render_node (/dev/dri/renderD<n>),
    kernel_driver. nvidia-smi rows are matched to PCI devices by bus id; Vulkan devices by vendor
    and device id; an NVIDIA card that nvidia-smi listed is not listed again from Vulkan. A Vulkan
    device of type cpu (lavapipe) runs on the CPU: it is listed, with no memory of its own.
    """
    left = list(pci)

    def take(match):
        for dev in left:
            if match(dev):
                left.remove(dev)
                return dev
        return {}

    def entry(name, vendor, backend, source, dev, **values):
        return {"name": name, "vendor": vendor, "backend": backend, "source": source, "type": values.get("type"),
                "vram_bytes": values.get("vram_bytes", dev.get("vram_bytes")),
                "vram_free_bytes": values.get("vram_free_bytes"),
                "pci_address": values.get("pci_address") or dev.get("address"),
                "render_node": dev.get("render_node"), "kernel_driver": dev.get("kernel_driver")}

    gpus, cuda = [], []
    for row in nvidia:
        dev = (take(lambda d, a=row["pci_address"]: a is not None and d["address"] == a)
               or take(lambda d: d["vendor"] == "nvidia"))
        cuda.append(entry(row["name"], "nvidia", "cuda", "nvidia-smi", dev, vram_bytes=row["vram_bytes"],
                          vram_free_bytes=row["vram_free_bytes"], pci_address=row["pci_address"]))
    gpus.extend(cuda)
    for vk in vulkan:
        if vk["vendor"] == "nvidia" and cuda:
            cuda.pop(0)["type"] = vk["type"]  # the same card, which CUDA drives; Vulkan knows its type
            continue
        dev = take(lambda d, v=vk: d["vendor_id"] == v["vendor_id"] and d["device_id"] == v["device_id"])
        gpus.append(entry(vk["name"], vk["vendor"], "vulkan", "vulkaninfo", dev, type=vk["type"],
                          vram_bytes=None if vk["type"] == "cpu" else dev.get("vram_bytes")))
    for dev in left:
        name = f"{_VENDOR_NAMES[dev['vendor']]} GPU [{dev['vendor_id']}:{dev['device_id']}]"
        gpus.append(entry(name, dev["vendor"], "cuda" if dev["vendor"] == "nvidia" else "vulkan", "pci", dev))
    return gpus
