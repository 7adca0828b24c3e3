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
