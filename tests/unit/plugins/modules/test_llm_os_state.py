"""llm_os_state: the live settings os_tuning compares with, read in one call."""

from ansible_collections.cpu_llm.infra.plugins.modules.llm_os_state import state


def test_reads_sysctls_thp_cmdline_and_paths_from_a_tree(tmp_path):
    (tmp_path / "proc/sys/vm").mkdir(parents=True)
    (tmp_path / "proc/sys/vm/swappiness").write_text("60\n")
    (tmp_path / "proc/sys/net/ipv4").mkdir(parents=True)
    (tmp_path / "proc/sys/net/ipv4/tcp_rmem").write_text("4096\t131072\t6291456\n")
    (tmp_path / "proc/cmdline").write_text("BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro numa_balancing=disable\n")
    thp = tmp_path / "sys/kernel/mm/transparent_hugepage"
    thp.mkdir(parents=True)
    (thp / "enabled").write_text("always [madvise] never\n")
    (thp / "defrag").write_text("always defer defer+madvise [madvise] never\n")
    (tmp_path / "usr/sbin").mkdir(parents=True)
    (tmp_path / "usr/sbin/update-grub").write_text("")
    got = state(["vm.swappiness", "net.ipv4.tcp_rmem", "kernel.numa_balancing"],
                ["/usr/sbin/update-grub", "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"], root=str(tmp_path))
    assert got["sysctl"] == {"vm.swappiness": "60", "net.ipv4.tcp_rmem": "4096 131072 6291456",
                             "kernel.numa_balancing": None}
    assert got["thp"] == {"enabled": "madvise", "defrag": "madvise"}
    assert got["cmdline"][-1] == "numa_balancing=disable" and "ro" in got["cmdline"]
    assert got["exists"] == {"/usr/sbin/update-grub": True,
                             "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor": False}
    assert got["read_only"] == {"/proc/sys": False, "/sys/kernel/mm": False}  # a writable tmp dir


def test_a_host_without_thp_or_the_mounts(tmp_path):
    got = state([], [], root=str(tmp_path / "nothing"))
    assert got["thp"] == {} and got["cmdline"] == []
    assert got["read_only"] == {"/proc/sys": True, "/sys/kernel/mm": True}  # absent: nothing can be written


def test_this_hosts_real_proc_is_read():
    got = state(["vm.swappiness"], ["/proc/cmdline"])
    assert got["sysctl"]["vm.swappiness"].isdigit() and got["exists"] == {"/proc/cmdline": True}
    assert got["cmdline"]
