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
