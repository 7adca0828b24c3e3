"""The units' hardening block (module_utils/systemd_sandbox.py): parameters in, directive lines out."""

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.cpu_llm.infra.plugins.filter.systemd_sandbox import systemd_sandbox
from ansible_collections.cpu_llm.infra.plugins.module_utils.systemd_sandbox import DIRECTIVES, SandboxError, lines

# The strictest block: what an unprivileged service with IPv4 sockets gets when it asks for nothing more.
STRICT = [
    "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "PrivateDevices=yes",
    "PrivateUsers=yes", "ProtectKernelTunables=yes", "ProtectKernelModules=yes", "ProtectKernelLogs=yes",
    "ProtectControlGroups=yes", "ProtectClock=yes", "ProtectHostname=yes", "ProtectProc=invisible",
    "RestrictNamespaces=yes", "RestrictRealtime=yes", "RestrictSUIDSGID=yes", "LockPersonality=yes",
    "MemoryDenyWriteExecute=yes", "RemoveIPC=yes", "KeyringMode=private", "UMask=0077", "DevicePolicy=closed",
    "RestrictAddressFamilies=AF_INET", "SystemCallArchitectures=native", "SystemCallFilter=@system-service",
    "SystemCallFilter=~@privileged", "SystemCallErrorNumber=EPERM", "CapabilityBoundingSet=", "AmbientCapabilities=",
]


def directives(block):
    return [line for line in block if not line.startswith("#")]


def test_the_strictest_block_is_the_default():
    assert lines(address_families=["AF_INET"]) == STRICT


def test_the_order_is_the_modules_and_every_directive_is_known():
    loose = lines(address_families=["AF_INET"], writable_paths=["/run/x"], private_mounts=True, proc_subset="pid",
                  device_allow=["char-drm rw"], supplementary_groups=["render"])
    keys = [line.split("=", 1)[0] for line in directives(loose)]
    assert set(keys) == set(DIRECTIVES)
    assert sorted(keys, key=DIRECTIVES.index) == keys


@pytest.mark.parametrize(("parameters", "added", "dropped"), [
    ({"writable_paths": ["/run/haproxy", "/var/x"]}, ["ReadWritePaths=/run/haproxy /var/x"], []),
    ({"private_mounts": True}, ["PrivateMounts=yes"], []),
    ({"proc_subset": "pid"}, ["ProcSubset=pid"], []),
    ({"supplementary_groups": ["haproxy"]}, ["SupplementaryGroups=haproxy"], []),
    ({"private_devices": False}, [], ["PrivateDevices=yes"]),
    ({"private_users": False}, [], ["PrivateUsers=yes"]),
    ({"remove_ipc": False}, [], ["RemoveIPC=yes"]),
    ({"keyring_private": False}, [], ["KeyringMode=private"]),
    ({"protect_proc": None}, [], ["ProtectProc=invisible"]),
    ({"protect_kernel_tunables": False}, [], ["ProtectKernelTunables=yes"]),
    ({"protect_kernel_modules": False}, [], ["ProtectKernelModules=yes"]),
    ({"device_policy_closed": False}, [], ["DevicePolicy=closed"]),
    ({"umask": "0027"}, ["UMask=0027"], ["UMask=0077"]),
    ({"umask": None}, [], ["UMask=0077"]),
    ({"memory_deny_write_execute": False}, ["MemoryDenyWriteExecute=no"], ["MemoryDenyWriteExecute=yes"]),
    ({"memory_deny_write_execute": None}, [], ["MemoryDenyWriteExecute=yes"]),
    ({"address_families": ["AF_UNIX", "AF_INET6"]}, ["RestrictAddressFamilies=AF_UNIX AF_INET6"],
     ["RestrictAddressFamilies=AF_INET"]),
    # numactl's memory policy and ggml's affinity: the four calls of @resources it needs, on the allow line.
    ({"numa_syscalls": True}, ["SystemCallFilter=@system-service set_mempolicy get_mempolicy mbind sched_setaffinity"],
     ["SystemCallFilter=@system-service"]),
    ({"denied_syscalls": ["@privileged", "@resources"]}, ["SystemCallFilter=~@privileged @resources"],
     ["SystemCallFilter=~@privileged"]),
    ({"denied_syscalls": []}, [], ["SystemCallFilter=~@privileged"]),
    ({"syscall_filter": False}, [],
     ["SystemCallFilter=@system-service", "SystemCallFilter=~@privileged", "SystemCallErrorNumber=EPERM"]),
    # Capabilities: the set, and no ambient line (nothing is handed to the process beyond the bounding set).
    ({"capabilities": ["CAP_SETUID", "CAP_KILL"]}, ["CapabilityBoundingSet=CAP_SETUID CAP_KILL"],
     ["CapabilityBoundingSet=", "AmbientCapabilities="]),
    # A GPU's nodes: the host's /dev (PrivateDevices=no), those nodes admitted, DevicePolicy=closed for the rest.
    ({"device_allow": ["char-nvidiactl rw", "char-nvidia-uvm rw"]},
     ["PrivateDevices=no", "DeviceAllow=char-nvidiactl rw", "DeviceAllow=char-nvidia-uvm rw"], ["PrivateDevices=yes"]),
])
def test_a_parameter_adds_or_drops_its_directive(parameters, added, dropped):
    block = directives(lines(**{"address_families": ["AF_INET"], **parameters}))
    assert sorted(set(block) - set(STRICT)) == sorted(added)
    assert sorted(set(STRICT) - set(block)) == sorted(dropped)
    assert "DevicePolicy=closed" in block or parameters == {"device_policy_closed": False}


def test_why_goes_above_its_directive_and_only_with_it():
    block = lines(address_families=["AF_INET"], memory_deny_write_execute=None, why={
        "RestrictAddressFamilies": "IPv4 only.", "UMask": ["First line,", "second line."],
        "MemoryDenyWriteExecute": "Not written: the directive is not set."})
    at = block.index("RestrictAddressFamilies=AF_INET")
    assert block[at - 1] == "# IPv4 only."
    at = block.index("UMask=0077")
    assert block[at - 2:at] == ["# First line,", "# second line."]
    assert "Not written" not in "\n".join(block)


def test_the_numa_calls_carry_their_reason_unless_the_unit_gives_its_own():
    block = lines(address_families=["AF_INET"], numa_syscalls=True)
    at = next(i for i, line in enumerate(block) if line.startswith("SystemCallFilter="))
    assert "numactl --interleave needs set_mempolicy" in block[at - 2]
    own = lines(address_families=["AF_INET"], numa_syscalls=True, why={"SystemCallFilter": "Ours."})
    assert "# Ours." in own and not any("numactl" in line for line in own)
    assert not any(line.startswith("#") for line in lines(address_families=["AF_INET"]))


@pytest.mark.parametrize(("parameters", "message"), [
    ({"address_families": []}, "address_families"),
    ({"address_families": "AF_INET"}, "expected a list"),
    ({"address_families": ["INET"]}, "AF_"),
    ({"capabilities": ["SETUID"]}, "CAP_"),
    # Nothing from a parameter can start a new line in the unit (a second directive smuggled in).
    ({"writable_paths": ["/run/x\nExecStartPre=/bin/sh"]}, "writable_paths"),
    ({"device_allow": ["char-drm rw\nDevicePolicy=auto"]}, "device_allow"),
    ({"why": {"UMask": "ok\nUMask=0000"}}, "why.UMask"),
    ({"umask": "00 77"}, "umask"),
    ({"why": {"ExecStart": "no"}}, "ExecStart"),
    ({"private_users": "yes"}, "private_users"),
    ({"memory_deny_write_execute": "no"}, "memory_deny_write_execute"),
    ({"device_allow": ["char-drm rw"], "private_devices": False}, "private_devices"),
    ({"device_allow": ["char-drm rw"], "device_policy_closed": False}, "DevicePolicy=closed"),
])
def test_what_cannot_make_a_sandbox_fails(parameters, message):
    with pytest.raises(SandboxError, match=message):
        lines(**{"address_families": ["AF_INET"], **parameters})


def test_the_filter_passes_the_parameters_and_names_itself_when_it_fails():
    assert systemd_sandbox({"address_families": ["AF_INET"]}) == STRICT
    with pytest.raises(AnsibleFilterError, match=r"systemd_sandbox: .*unexpected keyword argument 'privat_users'"):
        systemd_sandbox({"address_families": ["AF_INET"], "privat_users": False})
    with pytest.raises(AnsibleFilterError, match=r"systemd_sandbox: .*address_families"):
        systemd_sandbox({})
    with pytest.raises(AnsibleFilterError, match=r"systemd_sandbox: .*capabilities"):
        systemd_sandbox({"address_families": ["AF_INET"], "capabilities": ["X"]})
    with pytest.raises(AnsibleFilterError, match="expected a mapping"):
        systemd_sandbox(["AF_INET"])
