"""The systemd hardening block of the project's units (systemd.exec(5)), in one place.

Plain Python, no Ansible imports; the filter cpu_llm.infra.systemd_sandbox is its Ansible glue.

`lines(**parameters)` returns the block's lines, directives and their comments, in a fixed order.
What every unit gets is decided here, once: no new privileges, a read-only file system
(ProtectSystem=strict), no home directories, a private /tmp, the kernel's tunables, modules, logs,
cgroups, clock and host name out of reach, no namespaces, no realtime, no set-uid files, one
personality, native system calls only. What differs between units is a parameter, stated by the
unit (its template) with the unit's reason:

- address_families: RestrictAddressFamilies= (required; the unit's sockets, no default).
- capabilities: CapabilityBoundingSet=; none (the default) also clears AmbientCapabilities=.
- device_allow: device nodes to admit (a GPU's: "char-drm rw"); they need PrivateDevices=no, and
  DevicePolicy=closed still shuts out everything else.
- private_devices: False for a unit that must see the host's /dev (the gateway's /dev/log); no
  PrivateDevices= line then.
- supplementary_groups, writable_paths (ReadWritePaths=), umask (None: not set).
- numa_syscalls: numactl (--interleave, --membind) needs set_mempolicy and mbind, ggml queries
  policies and affinity: those calls come from @resources on top of @system-service.
- syscall_filter: False for no SystemCallFilter= at all (a unit whose needs were not measured);
  denied_syscalls: the sets taken out again (~@privileged by default).
- private_users, remove_ipc, keyring_private, protect_proc ("invisible"), proc_subset ("pid"),
  private_mounts, protect_kernel_tunables, protect_kernel_modules, device_policy_closed: each
  directive on or off; off is for a unit running as root that needs what the directive takes away.
- memory_deny_write_execute: True (yes), False (written as "no": a JIT the unit needs) or None
  (not set).
- why: {directive: comment}: the unit's reason for a directive's value, written above it (a string,
  or a list of lines). Every parameter that is not the default should come with one.

Values are checked: a newline or other control character cannot be written into a unit line.
"""

import unicodedata

# Directives this module writes, in the block's order; `why` may only name these.
DIRECTIVES = (
    "NoNewPrivileges", "ProtectSystem", "ReadWritePaths", "ProtectHome", "PrivateTmp", "PrivateMounts",
    "PrivateDevices", "DeviceAllow", "SupplementaryGroups", "PrivateUsers", "ProtectKernelTunables",
    "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups", "ProtectClock", "ProtectHostname",
    "ProtectProc", "ProcSubset", "RestrictNamespaces", "RestrictRealtime", "RestrictSUIDSGID", "LockPersonality",
    "MemoryDenyWriteExecute", "RemoveIPC", "KeyringMode", "UMask", "DevicePolicy", "RestrictAddressFamilies",
    "SystemCallArchitectures", "SystemCallFilter", "SystemCallErrorNumber", "CapabilityBoundingSet",
    "AmbientCapabilities",
)
# numactl --interleave/--membind set the memory policy (set_mempolicy, mbind); ggml reads it back and pins
# threads (get_mempolicy, sched_setaffinity). All four are in @resources, not in @system-service.
NUMA_SYSCALLS = ("set_mempolicy", "get_mempolicy", "mbind", "sched_setaffinity")
NUMA_COMMENT = ["@system-service minus privileged calls; numactl --interleave needs set_mempolicy (and",
                "llama.cpp's ggml may query policies/affinity), which live in @resources."]


class SandboxError(ValueError):
    """Parameters that do not make a sandbox."""


def _words(name, values, *, spaces=False):
    """values as a list of strings, each one word (or, with spaces, one line) without control characters."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise SandboxError(f"{name}: expected a list, got {type(values).__name__}")
    words = [str(v) for v in values]
    for word in words:
        if not word.strip() or any(unicodedata.category(ch) == "Cc" for ch in word) or (
                not spaces and any(ch.isspace() for ch in word)):
            raise SandboxError(f"{name}: {word!r} is not a value a unit line can hold")
    return words


def _flag(name, value):
    if not isinstance(value, bool):
        raise SandboxError(f"{name}: expected true or false, got {value!r}")
    return value


def _comment(why, key):
    text = why.get(key) or []
    return ["# " + line for line in _words(f"why.{key}", [text] if isinstance(text, str) else text, spaces=True)]


def lines(*, address_families, capabilities=(), device_allow=(), private_devices=True, supplementary_groups=(),
          writable_paths=(), umask="0077", numa_syscalls=False, syscall_filter=True, denied_syscalls=("@privileged",),
          private_users=True, remove_ipc=True, keyring_private=True, protect_proc="invisible", proc_subset=None,
          private_mounts=False, protect_kernel_tunables=True, protect_kernel_modules=True, device_policy_closed=True,
          memory_deny_write_execute=True, why=None):
    """The hardening block: a list of lines (comments and directives), without a trailing newline each."""
    why = dict(why or {})
    if unknown := sorted(set(why) - set(DIRECTIVES)):
        raise SandboxError(f"why: {', '.join(unknown)} is not a directive of the sandbox")
    families = _words("address_families", address_families)
    if not families or not all(f.startswith("AF_") for f in families):
        raise SandboxError(f"address_families: expected AF_* names, got {families!r}")
    capabilities = _words("capabilities", capabilities)
    if not all(c.startswith("CAP_") for c in capabilities):
        raise SandboxError(f"capabilities: expected CAP_* names, got {capabilities!r}")
    devices = _words("device_allow", device_allow, spaces=True)
    denied = _words("denied_syscalls", denied_syscalls)
    if memory_deny_write_execute is not None:
        _flag("memory_deny_write_execute", memory_deny_write_execute)
    for name, value in (("umask", umask), ("protect_proc", protect_proc), ("proc_subset", proc_subset)):
        if value is not None:
            _words(name, [value])
    flags = {name: _flag(name, value) for name, value in (
        ("private_devices", private_devices), ("numa_syscalls", numa_syscalls), ("syscall_filter", syscall_filter),
        ("private_users", private_users), ("remove_ipc", remove_ipc), ("keyring_private", keyring_private),
        ("private_mounts", private_mounts), ("protect_kernel_tunables", protect_kernel_tunables),
        ("protect_kernel_modules", protect_kernel_modules), ("device_policy_closed", device_policy_closed))}
    if devices and not flags["private_devices"]:
        raise SandboxError("device_allow: needs private_devices (DevicePolicy= and DeviceAllow= are what admit them)")
    if devices and not flags["device_policy_closed"]:
        raise SandboxError("device_allow: without DevicePolicy=closed every device would be open")

    # (directive, value or values); None leaves the directive out.
    plan = [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ReadWritePaths", " ".join(_words("writable_paths", writable_paths)) or None),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateMounts", "yes" if flags["private_mounts"] else None),
        # Admitted device nodes need the host's /dev: DevicePolicy=closed below keeps out all but these.
        ("PrivateDevices", ("no" if devices else "yes") if flags["private_devices"] else None),
        ("DeviceAllow", devices),
        ("SupplementaryGroups", " ".join(_words("supplementary_groups", supplementary_groups)) or None),
        ("PrivateUsers", "yes" if flags["private_users"] else None),
        ("ProtectKernelTunables", "yes" if flags["protect_kernel_tunables"] else None),
        ("ProtectKernelModules", "yes" if flags["protect_kernel_modules"] else None),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("ProtectClock", "yes"),
        ("ProtectHostname", "yes"),
        ("ProtectProc", protect_proc),
        ("ProcSubset", proc_subset),
        ("RestrictNamespaces", "yes"),
        ("RestrictRealtime", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", None if memory_deny_write_execute is None
         else "yes" if memory_deny_write_execute else "no"),
        ("RemoveIPC", "yes" if flags["remove_ipc"] else None),
        ("KeyringMode", "private" if flags["keyring_private"] else None),
        ("UMask", umask),
        ("DevicePolicy", "closed" if flags["device_policy_closed"] else None),
        ("RestrictAddressFamilies", " ".join(families)),
        ("SystemCallArchitectures", "native"),
        ("SystemCallFilter", ([" ".join(["@system-service", *(NUMA_SYSCALLS if flags["numa_syscalls"] else ())])]
                              + (["~" + " ".join(denied)] if denied else [])) if flags["syscall_filter"] else None),
        ("SystemCallErrorNumber", "EPERM" if flags["syscall_filter"] else None),
        ("CapabilityBoundingSet", " ".join(capabilities)),
        # No capabilities: none to pass on either.
        ("AmbientCapabilities", None if capabilities else ""),
    ]
    out = []
    for key, value in plan:
        values = value if isinstance(value, list) else [] if value is None else [value]
        if not values:
            continue
        comment = _comment(why, key)
        if key == "SystemCallFilter" and flags["numa_syscalls"] and not comment:
            comment = ["# " + line for line in NUMA_COMMENT]
        out += comment + [f"{key}={v}" for v in values]
    return out
