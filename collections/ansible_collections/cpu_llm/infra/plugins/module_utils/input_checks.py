"""Input rules the argument specs cannot express, one function per kind of value.

Plain Python, no Ansible imports. Each function takes the variable's name and value and returns a
list of messages (empty: the value is fine); each message names the variable and the expected
form. Secrets and URL credentials never appear in a message.
"""

import ipaddress
import posixpath
import re
from urllib.parse import urlsplit

from ansible_collections.cpu_llm.infra.plugins.module_utils.systemd_syntax import control_characters

# Directories a role must never own, remove from or write its files straight into.
SYSTEM_DIRS = frozenset(("/", "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/boot", "/proc", "/sys", "/dev",
                         "/var", "/home", "/root", "/run", "/tmp", "/opt", "/srv"))  # noqa: S108 (refused, not used)


def _control(name, value):
    bad = control_characters(value)
    return [f"{name} must not contain control characters ({', '.join(bad)}): they cannot be written safely "
            "into a unit or configuration file"] if bad else []


def text(name, value):
    """A string setting: no control characters (newline, tab, NUL, ...). Lists: every entry."""
    if isinstance(value, (list, tuple)):
        return [msg for i, item in enumerate(value) for msg in text(f"{name}[{i}]", item)]
    if value is None or isinstance(value, (bool, int, float)):
        return []
    return _control(name, value)


def texts(values):
    """text() over a dict {variable: value}."""
    return [msg for name, value in (values or {}).items() for msg in text(name, value)]


def path(name, value, kind="file", required=True):
    """An absolute, normalized path; a directory ('dir') must not be a system directory itself."""
    if value is None or value == "":
        return [f"{name} must be an absolute path, got ''"] if required else []
    if not isinstance(value, str):
        return [f"{name} must be an absolute path (a string), got {type(value).__name__}"]
    if control_characters(value):
        return _control(name, value)
    if not value.startswith("/"):
        return [f"{name} must be an absolute path, got '{value}'"]
    normal = "/" + posixpath.normpath(value).lstrip("/")
    if value != normal:
        return [f"{name} must be an absolute, normalized path (no '.' or '..' segments, no '//', no trailing "
                f"'/'), got '{value}'; did you mean '{normal}'?"]
    if value in SYSTEM_DIRS:
        what = "directory" if kind == "dir" else "path"
        return [f"{name} must be a {what} of its own below a system directory (e.g. /srv/llm or /opt/llama.cpp), "
                f"not the system directory '{value}' itself"]
    return []


HOST_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def host(name, value):
    """An IPv4 or IPv6 address (without brackets) or a DNS host name (RFC 1123 labels, at most 253 characters)."""
    text_value = value if isinstance(value, str) else ""
    if control_characters(text_value):
        return _control(name, text_value)
    try:
        ipaddress.ip_address(text_value)
        return []
    except ValueError:
        pass
    labels = text_value.removesuffix(".").split(".")
    if 0 < len(text_value) <= 253 and all(HOST_LABEL.match(label) for label in labels):
        return []
    return [f"{name} must be an IP address or a host name (e.g. 10.0.0.5, fd00::5, llm-1.example), got '{value}'"]


def url(name, value, schemes=("http", "https"), credentials_hint=None, allow_scp_form=False):
    """An http(s) URL (or the listed schemes): no credentials in it, no whitespace or control characters.

    allow_scp_form: git's 'git@host:path' form (its user is the ssh login, not a secret).
    """
    wanted = " or ".join(f"{s}://" for s in schemes)
    if not isinstance(value, str) or not value:
        return [f"{name} must be an {wanted} URL, got '{value if value is not None else ''}'"]
    if control_characters(value) or re.search(r"\s", value):
        return [f"{name} must be an {wanted} URL without whitespace or control characters"]
    if allow_scp_form and re.fullmatch(r"git@[A-Za-z0-9.-]+:[^:@]+", value):
        return []
    parts = urlsplit(value)
    # ssh://git@host/path: a login name is not a secret; a password is, and https never needs a user.
    if "@" in parts.netloc and not (parts.scheme == "ssh" and ":" not in parts.netloc.rsplit("@", 1)[0]):
        # Never echo the URL: its user:password part is the secret.
        hint = credentials_hint or "use an anonymous URL"
        return [f"{name} must not carry credentials (user:password@host; the URL is not shown): they would be "
                f"logged and stored in plain text; {hint}"]
    if parts.scheme not in schemes or not parts.hostname:
        return [f"{name} must be an {wanted} URL, got '{value}'"]
    return []


def secret(name, value, min_length, max_length, required=False):
    """A secret (API key, token): printable ASCII without spaces, min..max characters. Never shown."""
    if value is None or value == "":
        return [f"{name} must be set ({min_length} to {max_length} characters)"] if required else []
    if not isinstance(value, str):
        return [f"{name} must be a string (the value is not shown)"]
    if any(not "!" <= ch <= "~" for ch in value):
        return [f"{name} must be printable ASCII without spaces or control characters (the value is not shown)"]
    if not min_length <= len(value) <= max_length:
        return [f"{name} must be {min_length} to {max_length} characters long (the value is not shown)"]
    return []


def whole_number(name, value, low=None, high=None, unit=""):
    """A whole number from low to high (either may be None). YAML's true/false and yes/no arrive as booleans, and
    Jinja's int filter would turn them into 1 and 0 (and '2.5' into 2, 'abc' into 0): refused, with what was given."""
    span = (f"from {low} to {high}" if low is not None and high is not None
            else f"of at least {low}" if low is not None else f"of at most {high}" if high is not None else "")
    wanted = f"{name} must be a whole number{' ' + span if span else ''}{f' ({unit})' if unit else ''}"
    if isinstance(value, bool) or value is None:
        return [f"{wanted}, got {value!r} (a YAML true/false, yes/no, on/off or empty value is not a number)"]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]+\s*", value):
        value = int(value)
    if not isinstance(value, int):
        return [f"{wanted}, got {value!r}"]
    if (low is not None and value < low) or (high is not None and value > high):
        return [f"{wanted}, got {value}"]
    return []


def number(name, value, low=None, high=None, unit=""):
    """A number (fractions allowed) from low to high. A YAML true/yes arrives as a boolean, which Jinja's float
    filter and the argument spec's float type take as 1.0: refused, as whole_number refuses it."""
    span = (f"from {low} to {high}" if low is not None and high is not None
            else f"of at least {low}" if low is not None else f"of at most {high}" if high is not None else "")
    wanted = f"{name} must be a number{' ' + span if span else ''}{f' ({unit})' if unit else ''}"
    if isinstance(value, bool) or value is None:
        return [f"{wanted}, got {value!r} (a YAML true/false, yes/no, on/off or empty value is not a number)"]
    if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]+(\.[0-9]+)?\s*", value):
        value = float(value)
    if not isinstance(value, (int, float)) or value != value:  # NaN
        return [f"{wanted}, got {value!r}"]
    if (low is not None and value < low) or (high is not None and value > high):
        return [f"{wanted}, got {value}"]
    return []


def choice(name, value, choices):
    """One of choices (strings). YAML reads an unquoted off/on/yes/no as a boolean, which the argument spec lets
    through where 'off' is a choice, and which then compares unequal to every choice: refused, saying to quote it."""
    listed = ", ".join(choices)
    if isinstance(value, bool):
        spelled = [c for c in choices if c in (("off", "no", "false") if not value else ("on", "yes", "true"))]
        hint = f": write '{spelled[0]}' in quotes, as YAML reads an unquoted {spelled[0]} as {value}" if spelled else ""
        return [f"{name} must be one of: {listed}, got the YAML boolean {value}{hint}"]
    if value not in choices:
        return [f"{name} must be one of: {listed}, got {value!r}"]
    return []


def _vulkan_header(version):
    """VK_HEADER_VERSION from a package version: libvulkan-dev 1.3.239.0-1 and vulkan-headers 1.3.283.0 carry it as
    their third number (the Vulkan-Headers release 1.3.239 defines VK_HEADER_VERSION 239)."""
    match = re.match(r"^(?:[0-9]+:)?1\.[0-9]+\.([0-9]+)", version.strip())
    return int(match.group(1)) if match else None


def vulkan_headers(installed, candidate, minimum, package):
    """Can this host build llama.cpp's Vulkan backend? Decided read-only, before anything is installed.
    installed: VK_HEADER_VERSION of /usr/include/vulkan/vulkan_core.h ('' when absent), which the role's package
    task keeps (state present does not upgrade); else candidate: what the package sources would install
    (`apt-cache policy`'s Candidate line or a bare version; '' when unknown)."""
    need = (f"llama.cpp's Vulkan backend needs VK_HEADER_VERSION {minimum} or later (VK_EXT_layer_settings): "
            "Debian 12 has 239; use Debian 13 or Ubuntu 24.04, or llama_cpp_backend cpu")
    installed = str(installed or "").strip()
    if installed:
        if not installed.isdigit():
            return [f"llama_cpp_backend vulkan: cannot read VK_HEADER_VERSION from /usr/include/vulkan/vulkan_core.h "
                    f"(got {installed!r})"]
        if int(installed) < minimum:
            return [f"llama_cpp_backend vulkan: the installed Vulkan headers are VK_HEADER_VERSION {installed} "
                    f"(/usr/include/vulkan/vulkan_core.h); {need}"]
        return []
    text = str(candidate or "")
    line = re.search(r"^\s*Candidate:\s*(\S+)", text, re.MULTILINE)
    version = line.group(1) if line else text.strip().splitlines()[-1] if text.strip() else ""
    header = _vulkan_header(version) if version and version != "(none)" else None
    if header is None:
        return [f"llama_cpp_backend vulkan: {package} is not available from this host's package sources "
                f"(got {version or 'nothing'!r}); {need}"]
    if header < minimum:
        return [f"llama_cpp_backend vulkan: {package} {version} from this host's package sources has "
                f"VK_HEADER_VERSION {header}; {need}"]
    return []


def threads(name, value, logical_cpus):
    """A thread count: 1 to the host's logical CPUs (more only adds contention); the value may be the default's
    rendered string."""
    return whole_number(name, value, 1, int(logical_cpus), f"threads; this host has {int(logical_cpus)} logical CPUs")


# What the roles create a service account as (ansible.builtin.user: system, no login shell, no home).
_NOLOGIN = ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false", "/usr/bin/false")
_NO_HOME = "/nonexistent"
SYSTEM_UID_MAX = 999  # Debian's and EL's SYS_UID_MAX (login.defs): 1000 and up are people's accounts


def service_account(name, user, passwd, group, group_entry):
    """A service user the role may create or take over: absent, or one it created before (a system uid, no login
    shell, home /nonexistent, primary group the named group). passwd and group_entry are getent's fields for the
    user ([password, uid, gid, gecos, home, shell]) and the group ([password, gid, members]), None when absent.
    Anything else is another service's or a person's account, which the role would rewrite (group, shell, home)."""
    if not passwd:
        return []
    try:
        uid, gid, home, shell = int(passwd[1]), int(passwd[2]), passwd[4], passwd[5]
    except (IndexError, TypeError, ValueError):
        return [f"{name}: getent's entry for '{user}' is not a passwd entry: {passwd!r}"]
    group_gid = int(group_entry[1]) if group_entry else None
    why = []
    if uid > SYSTEM_UID_MAX or uid == 0:
        why.append(f"uid {uid} is not a system account's (1-{SYSTEM_UID_MAX})")
    if shell not in _NOLOGIN:
        why.append(f"it has the login shell {shell}")
    if home != _NO_HOME:
        why.append(f"its home is {home}")
    if group_gid is None or gid != group_gid:
        why.append(f"its primary group (gid {gid}) is not '{group}'"
                   + ("" if group_gid is not None else f" (no group '{group}' exists yet)"))
    if not why:
        return []
    return [f"{name} '{user}' is an existing account the role did not create ({'; '.join(why)}): the role would "
            "change its group, shell and home, which another service or a person relies on. Name a dedicated "
            "account the role creates (e.g. llama), or remove that account if nothing uses it"]


# llm_hardware fact -> (type, lowest, highest); the keys are those of the llm_hardware_facts module.
# Plausible ranges for one server: up to 8 sockets of up to 32 memory channels, 512 cores each.
_INT, _NUM, _BOOL, _STR, _LIST = "a whole number", "a number", "true or false", "a string", "a list of strings"
HARDWARE_OVERRIDES = {
    "cpu_model": (_STR, 1, 200),
    "cpu_vendor": (_STR, 1, 100),
    "sockets": (_INT, 1, 8),
    "cores": (_INT, 1, 4096),
    "threads": (_INT, 1, 16384),
    "threads_per_core": (_INT, 1, 8),
    "numa_nodes": (_INT, 1, 64),
    "cpu_flags": (_LIST, 0, 1000),
    "memory_type": (_STR, 1, 50),
    "memory_speed_mts": (_INT, 800, 12800),
    "memory_speed_rated_mts": (_INT, 800, 12800),
    "memory_channels": (_INT, 1, 256),
    "memory_channels_max": (_INT, 1, 256),
    "dimm_slots": (_INT, 1, 1024),
    "dimms_populated": (_INT, 1, 1024),
    "memory_total_bytes": (_INT, 1, 2**50),
    "peak_bandwidth_gbs": (_NUM, 0.001, 100000),
    "numa_balancing": (_BOOL, None, None),
    "smt_active": (_BOOL, None, None),
}


def hardware_overrides(name, value):
    """Each key a known llm_hardware fact, each value of its type and in a plausible range."""
    if value is None or value == {}:
        return []
    if not isinstance(value, dict):
        return [f"{name} must be a dict of hardware facts, e.g. {{memory_channels: 24, memory_speed_mts: 4800}}"]
    found = []
    for key, item in value.items():
        if key not in HARDWARE_OVERRIDES:
            found.append(f"{name}: unknown key '{key}'; known keys: {', '.join(HARDWARE_OVERRIDES)}")
            continue
        kind, low, high = HARDWARE_OVERRIDES[key]
        where = f"{name}.{key}"
        if kind == _BOOL:
            ok = isinstance(item, bool)
        elif kind == _STR:
            ok = isinstance(item, str) and low <= len(item) <= high and not control_characters(item)
        elif kind == _LIST:
            ok = isinstance(item, list) and len(item) <= high and all(
                isinstance(i, str) and re.fullmatch(r"[A-Za-z0-9_.-]+", i) for i in item)
        else:
            number = (int,) if kind == _INT else (int, float)
            ok = isinstance(item, number) and not isinstance(item, bool) and low <= item <= high
        if not ok:
            shown = f", got {item!r}" if kind != _STR else ""
            limits = f" from {low} to {high}" if kind in (_INT, _NUM) else ""
            found.append(f"{where} must be {kind}{limits}{shown}")
    channels, sockets = value.get("memory_channels"), value.get("sockets")
    if not found and isinstance(channels, int) and isinstance(sockets, int) and channels > 32 * sockets:
        found.append(f"{name}.memory_channels must be at most 32 per socket ({32 * sockets} for {sockets} "
                     f"sockets), got {channels}")
    return found
