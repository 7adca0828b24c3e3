#!/usr/bin/python
"""Module llm_os_state: the live OS settings os_tuning compares with what it wants, in one call."""

DOCUMENTATION = r"""
module: llm_os_state
short_description: Read the live kernel, hugepage, boot and mount state in one call
description:
  - Read-only. Returns what the os_tuning role compares with the settings it wants, so that a re-run on
    a tuned host costs one round trip instead of one per value (each remote task is a connection round
    trip; over a slow connection, seconds).
  - Sysctl values are read from /proc/sys (whitespace runs become one space; a key this kernel lacks is
    null); the selected transparent hugepage modes are the bracketed words of /sys/kernel/mm/transparent_hugepage;
    C(read_only) tells whether /proc/sys and /sys/kernel/mm are mounted read-only (as in a container).
  - Supports check mode.
options:
  sysctl_keys: {description: Sysctl keys to read (dotted), type: list, elements: str, default: []}
  paths: {description: Paths whose existence to report, type: list, elements: path, default: []}
author: cpu-llm-infra
"""

EXAMPLES = r"""
- name: Read the live state
  cpu_llm.infra.llm_os_state:
    sysctl_keys: [vm.swappiness, kernel.numa_balancing]
    paths: [/usr/sbin/update-grub]
  register: state
"""

RETURN = r"""
sysctl: {description: "Key to live value (str), or null when the kernel has no such key", returned: always, type: dict}
thp:
  description: Selected transparent hugepage modes (enabled, defrag); empty without THP
  returned: always
  type: dict
read_only:
  description: "Mount point to read-only flag, for /proc/sys and /sys/kernel/mm"
  returned: always
  type: dict
cmdline: {description: The running kernel's parameters (/proc/cmdline split on spaces), returned: always, type: list}
exists: {description: Path to whether it exists, returned: always, type: dict}
"""

import os
import re

from ansible.module_utils.basic import AnsibleModule

THP = "/sys/kernel/mm/transparent_hugepage"


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def _read_only(path):
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return True  # nothing there can be written either


def state(sysctl_keys, paths, root="/"):
    """The dict the module returns; root lets the tests point it at a fake /proc and /sys."""
    def at(path):
        return os.path.join(root, path.lstrip("/"))

    sysctl = {}
    for key in sysctl_keys:
        value = _read(at("/proc/sys/" + key.replace(".", "/")))
        sysctl[key] = " ".join(value.split()) if value is not None else None
    thp = {}
    for name in ("enabled", "defrag"):
        selected = re.search(r"\[([^\]]+)\]", _read(at(f"{THP}/{name}")) or "")
        if selected:
            thp[name] = selected.group(1)
    return {"sysctl": sysctl, "thp": thp,
            "read_only": {p: _read_only(at(p)) for p in ("/proc/sys", "/sys/kernel/mm")},
            "cmdline": (_read(at("/proc/cmdline")) or "").split(),
            "exists": {p: os.path.exists(at(p)) for p in paths}}


def main():
    module = AnsibleModule(
        argument_spec={"sysctl_keys": {"type": "list", "elements": "str", "default": []},
                       "paths": {"type": "list", "elements": "path", "default": []}},
        supports_check_mode=True,
    )
    module.exit_json(changed=False, **state(module.params["sysctl_keys"], module.params["paths"]))


if __name__ == "__main__":
    main()
