"""parse_dmidecode against real dumps, compared with values read by hand (fixtures/dmi/expected.json)."""

import json
from pathlib import Path

import pytest
from ansible_collections.cpu_llm.infra.plugins.module_utils import llm_hardware

DMI = Path(__file__).resolve().parents[3] / "fixtures" / "dmi"
EXPECTED = json.loads((DMI / "expected.json").read_text())
KEYS = {"sockets", "cpu_model", "memory_type", "memory_speed_mts", "memory_speed_rated_mts", "dimm_slots",
        "dimms_populated", "memory_total_bytes", "memory_channels"}


@pytest.fixture(params=EXPECTED, ids=[e["file"] for e in EXPECTED])
def case(request):
    entry = request.param
    return entry, llm_hardware.parse_dmidecode((DMI / entry["file"]).read_text())


def test_returns_exactly_the_documented_keys(case):
    _, facts = case
    assert set(facts) == KEYS


def test_matches_hand_read_values(case):
    entry, facts = case
    assert facts["sockets"] == entry["sockets_populated"]
    assert facts["cpu_model"] == entry["cpu_model"]
    assert facts["memory_type"] == entry["memory_type"]
    assert facts["memory_speed_mts"] == entry["configured_speed_mts"]
    assert facts["memory_speed_rated_mts"] == entry["rated_speed_mts"]
    assert facts["dimm_slots"] == entry["dimm_slots"]
    assert facts["dimms_populated"] == entry["dimms_populated"]
    assert facts["memory_total_bytes"] == entry["total_memory_gb"] * llm_hardware.GIB
    assert facts["memory_channels"] == entry["channels_populated_guess"], entry["channel_notes"]


def test_empty_input_says_nothing():
    facts = llm_hardware.parse_dmidecode("")
    assert set(facts) == KEYS
    assert all(value is None for value in facts.values())


def test_no_permission_output_is_not_mistaken_for_data():
    text = "# dmidecode 3.4\n/sys/firmware/dmi/tables/smbios_entry_point: Permission denied\n"
    assert all(value is None for value in llm_hardware.parse_dmidecode(text).values())


def _device(locator, bank, size="32 GB", speed="4800 MT/s"):
    return (f"Handle 0x1100, DMI type 17, 92 bytes\nMemory Device\n\tSize: {size}\n\tLocator: {locator}\n"
            f"\tBank Locator: {bank}\n\tType: DDR5\n\tSpeed: {speed}\n\tConfigured Memory Speed: {speed}\n\n")


def _cpu(version, socket="CPU1"):
    return (f"Handle 0x0400, DMI type 4, 48 bytes\nProcessor Information\n\tSocket Designation: {socket}\n"
            f"\tVersion: {version}\n\tStatus: Populated, Enabled\n\n")


@pytest.mark.parametrize(
    ("locators", "cpu", "expected"),
    [
        # Intel desktop naming: controller and channel in the locator.
        ([("Controller0-ChannelA-DIMM1", "BANK 0"), ("Controller1-ChannelA-DIMM1", "BANK 0")],
         "Intel(R) Core(TM) i9-12900K", 2),
        # Two DIMMs in one channel count once.
        ([("Controller0-ChannelA-DIMM0", "BANK 0"), ("Controller0-ChannelA-DIMM1", "BANK 0")],
         "Intel(R) Core(TM) i9-12900K", 1),
        # Fujitsu: letter = channel, digit = slot within it.
        ([("DIMM-1A", "CPU1"), ("DIMM-2A", "CPU1"), ("DIMM-1B", "CPU1")], "Intel(R) Xeon(R) Gold 6338", 2),
        # Lenovo: no channel in the names; 12 DIMMs on an 8-channel Ice Lake socket fill 8 channels.
        ([(f"DIMM {i}", "CPU 1") for i in range(1, 13)], "Intel(R) Xeon(R) Gold 6338", 8),
        # Supermicro with a CPU prefix and a letter per channel.
        ([("CPU1_DIMM_A1", "P0_Node0_Channel0_Dimm0"), ("CPU2_DIMM_A1", "P1_Node0_Channel0_Dimm0")],
         "AMD EPYC 7543 32-Core Processor", 2),
    ],
)
def test_other_vendors_naming(locators, cpu, expected):
    sockets = {bank.split()[-1] if bank.startswith("CPU") else "1" for _, bank in locators}
    text = "".join(_cpu(cpu, f"CPU{s}") for s in sorted(sockets)) + "".join(_device(lo, b) for lo, b in locators)
    assert llm_hardware.parse_dmidecode(text)["memory_channels"] == expected


def test_mixed_speeds_report_the_slowest():
    text = _cpu("AMD EPYC 9124 16-Core Processor") + _device("DIMMA1", "P0 CHANNEL A") + _device(
        "DIMMB1", "P0 CHANNEL B", speed="4400 MT/s")
    assert llm_hardware.parse_dmidecode(text)["memory_speed_mts"] == 4400


@pytest.mark.parametrize(
    ("model", "channels"),
    [
        ("AMD EPYC 9124 16-Core Processor", 12),
        ("AMD EPYC 9754 128-Core Processor", 12),
        ("AMD EPYC 9175F 16-Core Processor", 12),
        ("AMD EPYC 8534P 64-Core Processor", 6),
        ("AMD EPYC 7763 64-Core Processor", 8),
        ("AMD EPYC 7T83 64-Core Processor", 8),
        ("AMD EPYC 4564P 16-Core Processor", 2),
        ("AMD Ryzen Threadripper PRO 7965WX 24-Cores", 8),
        ("Intel(R) Xeon(R) Gold 6238R CPU @ 2.20GHz", 6),
        ("Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz", 8),
        ("Intel(R) Xeon(R) Platinum 8480+", 8),
        ("Intel(R) Xeon(R) Gold 5416S", 8),
        ("Intel(R) Xeon(R) 6980P", 12),
        ("AMD Ryzen 9 7950X 16-Core Processor", 2),
        ("Some Future CPU", None),
    ],
)
def test_channels_per_socket(model, channels):
    assert llm_hardware.channels_per_socket(model) == channels
