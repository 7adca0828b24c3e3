"""The input rules behind every role's validate.yml: each message names the variable, secrets never show."""

import pytest
from ansible_collections.cpu_llm.infra.plugins.filter.llm_input_checks import llm_text_check
from ansible_collections.cpu_llm.infra.plugins.module_utils import input_checks as ic
from ansible_collections.cpu_llm.infra.plugins.modules.llm_hardware_facts import FIELDS


@pytest.mark.parametrize("value", ["/srv/llm/models", "/opt/llama.cpp", "/srv/my models", "/etc/llama-server/api-key"])
def test_good_paths(value):
    assert ic.path("v", value, kind="dir") == []


@pytest.mark.parametrize(("value", "expected"), [
    ("models", "v must be an absolute path, got 'models'"),
    ("", "v must be an absolute path, got ''"),
    ("/srv/llm/", "normalized"), ("/srv//llm", "normalized"), ("/srv/./llm", "normalized"),
    ("/srv/llm/../../etc", "did you mean '/etc'"), ("//srv", "normalized"),
    ("/", "not the system directory '/'"), ("/etc", "system directory"), ("/opt", "system directory"),
    ("/srv/a\nb", "control characters (\\n)"), (5, "a string"),
])
def test_bad_paths(value, expected):
    problems = ic.path("v", value, kind="dir")
    assert len(problems) == 1 and problems[0].startswith("v ") and expected in problems[0]


def test_optional_path_may_be_empty():
    assert ic.path("v", "", required=False) == [] and ic.path("v", None, required=False) == []


@pytest.mark.parametrize("value", ["https://huggingface.co", "http://127.0.0.1:9", "https://mirror.example/hf"])
def test_good_urls(value):
    assert ic.url("v", value) == []


@pytest.mark.parametrize(("value", "expected"), [
    ("ftp://mirror.example", "v must be an http:// or https:// URL, got 'ftp://mirror.example'"),
    ("file:///etc/passwd", "v must be an http:// or https:// URL"),
    ("https://", "v must be an http:// or https:// URL"),
    ("https://a b", "without whitespace"), ("https://a\n", "control characters"),
])
def test_bad_urls(value, expected):
    assert expected in ic.url("v", value)[0]


def test_credentials_in_a_url_are_refused_without_showing_them():
    problems = ic.url("gguf_model_endpoint", "https://bob:hunter2@hf.example", credentials_hint="use gguf_model_token")
    assert len(problems) == 1 and "gguf_model_endpoint must not carry credentials" in problems[0]
    assert "hunter2" not in problems[0] and "bob" not in problems[0] and "gguf_model_token" in problems[0]
    assert ic.url("v", "https://token@hf.example") != []


def test_git_forms():
    kw = {"schemes": ("https", "http", "ssh"), "allow_scp_form": True}
    assert ic.url("v", "git@github.com:ggml-org/llama.cpp.git", **kw) == []
    assert ic.url("v", "ssh://git@github.com/ggml-org/llama.cpp.git", **kw) == []
    assert "hunter2" not in ic.url("v", "ssh://git:hunter2@github.com/x.git", **kw)[0]


@pytest.mark.parametrize(("value", "ok"), [("", True), ("a" * 16, True), ("a" * 512, True), ("a" * 15, False),
                                           ("a" * 513, False), ("a" * 15 + " ", False), ("a" * 16 + "\n", False),
                                           ("ä" * 16, False)])
def test_secret(value, ok):
    problems = ic.secret("llama_server_api_key", value, 16, 512)
    assert (problems == []) == ok
    for msg in problems:
        assert msg.startswith("llama_server_api_key must") and value.strip() not in msg


def test_required_secret():
    assert "must be set" in ic.secret("t", "", 1, 4096, required=True)[0]


def test_text_checks_lists_and_dicts_and_never_shows_values():
    problems = llm_text_check({"a": "x\ny", "b": ["ok", "tab\there"], "c": 5, "d": "fine"})
    assert problems[0].startswith("a must not contain control characters (\\n)")
    assert problems[1].startswith("b[1] must not contain control characters (\\t)") and len(problems) == 2
    assert "x" not in problems[0].split("(")[0]


def test_override_rules_cover_exactly_the_facts_module_keys():
    assert set(ic.HARDWARE_OVERRIDES) == set(FIELDS)


@pytest.mark.parametrize("overrides", [{}, None, {"memory_channels": 24, "memory_speed_mts": 4800, "sockets": 2},
                                       {"cores": 4096, "numa_nodes": 64, "memory_total_bytes": 1, "smt_active": False,
                                        "cpu_model": "AMD EPYC 9654", "cpu_flags": ["avx512f"],
                                        "peak_bandwidth_gbs": 921.6}])
def test_good_overrides(overrides):
    assert ic.hardware_overrides("llm_hardware_overrides", overrides) == []


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"channels": 12}, "llm_hardware_overrides: unknown key 'channels'"),
    ({"memory_channels": 0}, "llm_hardware_overrides.memory_channels must be a whole number from 1 to 256"),
    ({"memory_channels": 257}, "memory_channels must be a whole number from 1 to 256"),
    ({"memory_channels": 48, "sockets": 1}, "memory_channels must be at most 32 per socket"),
    ({"memory_speed_mts": 480}, "memory_speed_mts must be a whole number from 800 to 12800, got 480"),
    ({"memory_speed_mts": "4800"}, "memory_speed_mts must be a whole number"),
    ({"sockets": 9}, "sockets must be a whole number from 1 to 8"),
    ({"cores": True}, "cores must be a whole number"),
    ({"numa_nodes": 65}, "numa_nodes must be a whole number from 1 to 64"),
    ({"memory_total_bytes": 0}, "memory_total_bytes must be a whole number from 1"),
    ({"smt_active": "yes"}, "smt_active must be true or false"),
    ({"cpu_model": "x\ny"}, "cpu_model must be a string"),
])
def test_bad_overrides(overrides, expected):
    problems = ic.hardware_overrides("llm_hardware_overrides", overrides)
    assert len(problems) == 1 and expected in problems[0]


@pytest.mark.parametrize("value", [1, "1", 64, "64", " 8 ", 4.0])
def test_whole_numbers_in_range(value):
    assert ic.whole_number("n", value, 1, 64, "threads") == []


@pytest.mark.parametrize(("value", "expected"), [
    # YAML 1.1 reads yes/on/true as True and off/no as False; Jinja's int filter would make them 1 and 0.
    (True, "got True (a YAML true/false"), (False, "got False (a YAML"), (None, "got None (a YAML"),
    ("", "got ''"), ("2.5", "got '2.5'"), (2.5, "got 2.5"), ("abc", "got 'abc'"), ([4], "got [4]"),
    (0, "got 0"), (65, "got 65"), ("-1", "got -1"),
])
def test_whole_numbers_refused(value, expected):
    problems = ic.whole_number("n", value, 1, 64, "threads")
    assert len(problems) == 1 and problems[0].startswith("n must be a whole number from 1 to 64 (threads), got ")
    assert expected in problems[0]


def test_whole_number_open_ranges_and_negatives():
    assert ic.whole_number("n", -1, -1, None) == [] and ic.whole_number("n", "-1", -1, None) == []
    assert "at least 0" in ic.whole_number("n", -1, 0, None)[0]
    assert "at most 3" in ic.whole_number("n", 4, None, 3)[0]


def test_threads_are_held_to_the_logical_cpus():
    assert ic.threads("llm_threads", "16", 32) == []
    problem, = ic.threads("llm_threads", 33, 32)
    assert problem == "llm_threads must be a whole number from 1 to 32 (threads; this host has 32 logical CPUs), got 33"
    assert ic.threads("llm_threads", True, 32)


def test_numbers_filter_names_each_bad_variable():
    from ansible_collections.cpu_llm.infra.plugins.filter.llm_input_checks import llm_numbers_check
    problems = llm_numbers_check({"a": [True, 1, None, "slots"], "b": [5, 1, 10, "s"], "c": ["0", 1, 3600, "seconds"]})
    assert [p.split()[0] for p in problems] == ["a", "c"]


def test_physical_cores_from_ansible_facts():
    from ansible_collections.cpu_llm.infra.plugins.module_utils.llm_hardware import physical_cores
    # Ansible's facts of a two-socket EPYC 9654 (96 cores a socket, SMT on: 384 logical CPUs).
    assert physical_cores({"processor_cores": 96, "processor_count": 2, "processor_nproc": 384}) == 192
    assert physical_cores({"processor_cores": "8", "processor_count": "1"}) == 8
    assert physical_cores({"processor_count": 2}) is None and physical_cores({"processor_cores": 0,
                                                                              "processor_count": 1}) is None


def test_the_default_thread_count_has_one_home():
    """Every role's default thread count is the one filter's answer; no task or default repeats the formula."""
    from pathlib import Path
    roles = Path(__file__).resolve().parents[4] / "roles"
    defaults = {p.parent.parent.name: p.read_text() for p in roles.glob("*/defaults/main.yml")}
    for role, var in [("llm", "llm_threads"), ("llama_server", "llama_server_threads"),
                      ("llm_rpc_worker", "llm_rpc_worker_threads"), ("preflight", "preflight_threads")]:
        assert f'{var}: "{{{{ ansible_facts | cpu_llm.infra.llm_physical_cores }}}}"' in defaults[role]
    repeats = [str(p) for p in roles.rglob("*.yml") if "processor_cores" in p.read_text()]
    assert repeats == []


# getent's fields ([password, uid, gid, gecos, home, shell]) as Debian 12 lists these accounts.
CREATED = ["x", "999", "996", "", "/nonexistent", "/usr/sbin/nologin"]
LLAMA_GROUP = ["x", "996", ""]


def test_an_absent_account_or_one_the_role_created_passes():
    assert ic.service_account("llama_server_user", "llama", None, "llama", None) == []
    assert ic.service_account("llama_server_user", "llama", CREATED, "llama", LLAMA_GROUP) == []


@pytest.mark.parametrize(("user", "passwd", "group_entry", "why"), [
    ("alice", ["x", "1000", "1000", "Alice,,,", "/home/alice", "/bin/bash"], ["x", "1000", ""],
     "uid 1000 is not a system account's (1-999); it has the login shell /bin/bash; its home is /home/alice"),
    ("www-data", ["x", "33", "33", "www-data", "/var/www", "/usr/sbin/nologin"], ["x", "33", ""],
     "its home is /var/www"),
    ("nobody", ["x", "65534", "65534", "nobody", "/nonexistent", "/usr/sbin/nologin"], ["x", "65534", ""],
     "uid 65534 is not a system account's"),
    # Debian's _apt: a system uid, no shell, no home, but the primary group nogroup: another service's account.
    ("_apt", ["x", "42", "65534", "", "/nonexistent", "/usr/sbin/nologin"], None,
     "its primary group (gid 65534) is not 'llama' (no group 'llama' exists yet)"),
    ("llama", CREATED, ["x", "100", ""], "its primary group (gid 996) is not 'llama'"),
])
def test_an_account_the_role_did_not_create_is_refused_saying_why(user, passwd, group_entry, why):
    problem, = ic.service_account("llama_server_user", user, passwd, "llama", group_entry)
    assert problem.startswith(f"llama_server_user '{user}' is an existing account the role did not create (")
    assert why in problem and "Name a dedicated account the role creates" in problem


@pytest.mark.parametrize(("value", "ok"), [(0.5, True), ("2.5", True), (240, True), ("7", True), (True, False),
                                           (False, False), (None, False), ("", False), ("ten", False), (0.4, False),
                                           (241, False), (float("nan"), False)])
def test_number_takes_fractions_and_refuses_booleans(value, ok):
    problems = ic.number("autotune_budget_minutes", value, 0.5, 240, "minutes")
    assert (problems == []) is ok, problems
    if not ok:
        assert problems[0].startswith("autotune_budget_minutes must be a number from 0.5 to 240 (minutes), got ")


def test_choice_refuses_a_yaml_boolean_and_says_how_to_quote_it():
    problem, = ic.choice("llama_server_gpu_offload", False, ["auto", "off"])
    assert problem == ("llama_server_gpu_offload must be one of: auto, off, got the YAML boolean False: write 'off' "
                       "in quotes, as YAML reads an unquoted off as False")
    problem, = ic.choice("llama_cpp_source_type", True, ["tarball", "git"])
    assert problem == "llama_cpp_source_type must be one of: tarball, git, got the YAML boolean True"
    assert ic.choice("x", "off", ["auto", "off"]) == []
    assert "got 'of'" in ic.choice("x", "of", ["auto", "off"])[0]


# apt-cache policy libvulkan-dev as Debian 12 prints it (read on a bookworm host), a newer candidate, EL's bare version.
BOOKWORM = "libvulkan-dev:\n  Installed: (none)\n  Candidate: 1.3.239.0-1\n  Version table:\n     1.3.239.0-1 500\n"
TRIXIE = "libvulkan-dev:\n  Installed: (none)\n  Candidate: 1.4.309.0-1\n  Version table:\n     1.4.309.0-1 500\n"


@pytest.mark.parametrize(("installed", "candidate", "expected"), [
    ("", TRIXIE, None), ("", "1.3.283.0", None), ("309", "", None), ("272", BOOKWORM, None),
    ("", BOOKWORM, "libvulkan-dev 1.3.239.0-1 from this host's package sources has VK_HEADER_VERSION 239"),
    ("239", TRIXIE, "the installed Vulkan headers are VK_HEADER_VERSION 239"),
    ("", "libvulkan-dev:\n  Installed: (none)\n  Candidate: (none)\n", "is not available from this host's package"),
    ("", "", "libvulkan-dev is not available from this host's package sources (got 'nothing')"),
])
def test_vulkan_headers_decide_the_build_before_anything_is_installed(installed, candidate, expected):
    problems = ic.vulkan_headers(installed, candidate, 272, "libvulkan-dev")
    if expected is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problems[0].startswith("llama_cpp_backend vulkan: ") and expected in problems[0]
        assert "VK_HEADER_VERSION 272 or later" in problems[0]
