"""The BIOS audit on real DMI dumps: what it sees and the action it names."""

from pathlib import Path

import pytest
from ansible_collections.cpu_llm.infra.plugins.module_utils import bios_audit, llm_hardware

DMI = Path(__file__).resolve().parents[3] / "fixtures" / "dmi"


def facts(name, **extra):
    text = (DMI / name).read_text()
    hw = llm_hardware.parse_dmidecode(text)
    hw["dimms"] = llm_hardware.dimm_layout(text)
    hw["memory_channels_max"] = (llm_hardware.channels_per_socket(hw["cpu_model"]) or 0) * hw["sockets"] or None
    hw.update(extra)
    return hw


def by_check(findings, check):
    return [f for f in findings if f["check"] == check]


def test_names_the_empty_channels_of_a_genoa_board():
    found = by_check(bios_audit.audit(facts("genoad12-epyc9454p-1s-9of12.txt")), "memory_channels")
    assert len(found) == 1
    assert "populate channel(s) F, J, L on socket 0" in found[0]["action"]


def test_names_empty_channels_per_socket_on_a_two_socket_xeon():
    found = by_check(bios_audit.audit(facts("supermicro-x13dei-xeon5416s-2s.txt")), "memory_channels")
    assert [f["seen"].split(" have")[0] for f in found] == ["4 memory channel(s) on socket 0",
                                                             "4 memory channel(s) on socket 1"]


def test_downclocked_dimms():
    found = by_check(bios_audit.audit(facts("supermicro-x13dei-xeon5416s-2s.txt")), "memory_speed")
    assert found and "set the memory speed to 4800 MT/s" in found[0]["action"]


def test_counts_empty_channels_where_slot_names_do_not_tell_them():
    found = by_check(bios_audit.audit(facts("dell-r7625-epyc9534-2s-8of24.txt")), "memory_channels")
    assert found and found[0]["seen"] == "8 of 24 memory channels populated"


@pytest.mark.parametrize("name", ["gigabyte-mz72-hb0-epyc7t83-2s.txt", "hpe-dl385g10plusv2-epyc7763-2s-32of32.txt"])
def test_full_boards_have_no_channel_or_speed_findings(name):
    findings = bios_audit.audit(facts(name))
    assert not by_check(findings, "memory_channels") and not by_check(findings, "memory_speed")
    assert not by_check(findings, "dimm_balance") and not by_check(findings, "dimm_sizes")


def test_uneven_sockets_and_mixed_sizes():
    hw = facts("gigabyte-mz72-hb0-epyc7t83-2s.txt")
    hw["dimms"][0]["size_bytes"] = 32 << 30
    for dimm in hw["dimms"][-3:]:
        dimm["size_bytes"] = None
    checks = {f["check"] for f in bios_audit.audit(hw)}
    assert {"dimm_sizes", "dimm_balance", "memory_channels"} <= checks


def test_nps4_numa_balancing_and_smt():
    hw = facts("genoad12-epyc9454p-1s-9of12.txt", numa_nodes=4, cpu_vendor="AMD", numa_balancing=True,
               smt_active=True, cores=48)
    findings = bios_audit.audit(hw)
    assert "set 'NUMA nodes per socket' to NPS1" in by_check(findings, "numa_per_socket")[0]["action"]
    assert "NPS4" in by_check(findings, "numa_per_socket")[0]["seen"]
    assert by_check(findings, "numa_balancing")[0]["severity"] == "warning"
    assert "one thread per physical core (48)" in by_check(findings, "smt")[0]["action"]
    severities = [f["severity"] for f in findings]
    assert severities == ["warning"] * severities.count("warning") + ["info"] * severities.count("info")


def test_a_vm_without_dmi_gets_told_how_to_supply_the_facts():
    findings = bios_audit.audit({"sockets": 1, "cores": 2, "dmi_status": "dmidecode failed: /dev/mem"})
    assert by_check(findings, "dmi")[0]["action"].endswith("llm_hardware_overrides")
