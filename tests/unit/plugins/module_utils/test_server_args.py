"""llama_server_extra_args may not set a flag the role sets itself; the table matches llama-server's own."""

import re
from pathlib import Path

import pytest
from ansible_collections.cpu_llm.infra.plugins.filter.llm_input_checks import llm_server_args_check
from ansible_collections.cpu_llm.infra.plugins.module_utils import server_args, server_command

ARG_CPP = Path("/var/cache/llm-cpu-infra/src/llama.cpp-0c1e57098bba43ac29e6e3b677cdceebdd22334f/common/arg.cpp")
# Older spellings refused on purpose although the pinned commit no longer has them.
LEGACY = {"--mlock", "--no-mmap", "--mmap"}


@pytest.mark.parametrize(("arg", "owner"), [
    ("-m", "llama_server_model_path"), ("--model", "llama_server_model_path"), ("-hf", "llama_server_model_path"),
    ("--hf-repo=org/x", "llama_server_model_path"), ("-mu", "llama_server_model_path"),
    ("--model-url", "llama_server_model_path"), ("--host", "llama_server_host"), ("--port=9000", "llama_server_port"),
    ("--api-key", "llama_server_api_key"), ("--api_key_file", "llama_server_api_key"),
    ("--ssl-key-file", "llama_server_tls_cert"), ("-t", "llm_threads"), ("-tb", "llm_threads"),
    ("--threads-batch", "llm_threads"), ("-c", "llm_ctx_size"), ("--ctx_size", "llm_ctx_size"),
    ("-np", "llm_parallel"), ("--numa", "llama_server_numactl_args"), ("--metrics", "llama_server_metrics"),
    ("--mlock", "llm_mlock"), ("--load-mode", "llm_mlock"), ("-a", "llama_server_alias"),
    ("--alias", "llama_server_alias"), ("--port 9000", "llama_server_port"), (" --host", "llama_server_host"),
    ("-ngl", "llm_gpu_vram_bytes"), ("--n-gpu-layers", "llama_server_gpu_offload"),
    ("--gpu-layers", "llm_gpu_vram_bytes"),
    ("--n-cpu-moe", "llm_gpu_vram_bytes"), ("-ncmoe", "llm_gpu_vram_bytes"), ("--cpu-moe", "llm_gpu_vram_bytes"),
    ("--rpc", "llama_server_rpc_workers"), ("--rpc=10.0.0.11:50052", "llama_server_rpc_workers"),
])
def test_managed_flag_is_refused_naming_the_variable(arg, owner):
    problems = server_args.problems(["--batch-size", "512", arg])
    assert len(problems) == 1
    assert problems[0].startswith("llama_server_extra_args[2]: ") and owner in problems[0]


def test_the_value_after_a_flag_is_never_shown():
    problems = llm_server_args_check(["--api-key=sk-secret-value"])
    assert problems and "sk-secret-value" not in problems[0] and "'--api-key'" in problems[0]


@pytest.mark.parametrize("args", [[], None, ["--batch-size", "512"], ["-fa", "on", "--temp", "-1"],
                                  ["--no-host"], ["--threads-http", "4"], ["--ctx-checkpoints", "2"],
                                  ["-ot", "exps=CPU"]])
def test_other_flags_and_values_pass(args):
    assert server_args.problems(args) == []


def test_bad_shapes():
    assert "must be a list" in server_args.problems("--port 1")[0]
    assert "[0] must be a string" in server_args.problems([5])[0]


def _arg_cpp_options():
    text = ARG_CPP.read_text()
    return [re.findall(r'"([^"]+)"', m.group(1)) + re.findall(r'"([^"]+)"', m.group(3) or "")
            for m in re.finditer(r"common_arg\(\s*\{([^}]*)\}(\s*,\s*\{([^}]*)\})?", text)]


@pytest.mark.skipif(not ARG_CPP.exists(), reason="llama.cpp source at the pinned commit not cached")
def test_table_matches_llama_server_at_the_pinned_commit():
    options = _arg_cpp_options()
    known = {flag for names in options for flag in names}
    assert set(server_args.FLAGS) - LEGACY <= known, "a managed flag llama-server does not have"
    # Every alias of an option the role manages is in the table: no spelling gets through.
    for names in options:
        if any(name in server_args.FLAGS for name in names):
            assert set(names) <= set(server_args.FLAGS), names


@pytest.mark.skipif(not ARG_CPP.exists(), reason="llama.cpp source at the pinned commit not cached")
def test_every_flag_the_unit_can_render_exists_at_the_pinned_commit():
    """The unit only passes flags llama-server knows (this commit replaced --mlock by --load-mode)."""
    rendered = server_command.rendered_flags()
    known = {flag for names in _arg_cpp_options() for flag in names}
    assert rendered and rendered <= known, rendered - known


def test_every_flag_the_command_renders_is_managed_or_a_tuned_default():
    """The command's own flags are the ones extra args may not set, but for the measured batch sizes."""
    inputs = {"binary": "/b", "model_path": "/m.gguf", "host": "0.0.0.0", "port": 8080, "threads": 4,  # noqa: S104
              "ctx_size": 10, "parallel": 2, "alias": "a", "metrics": True, "mlock": True, "api_key": True,
              "api_key_file": "/k", "tls_cert": "/c", "tls_key": "/k2", "numactl_args": [],
              "tuning": {"numa_flag": "distribute", "batch_size": 64, "ubatch_size": 32},
              "offload": {"args": ["--n-gpu-layers", "5", "--n-cpu-moe", "2"]},
              "rpc_workers": ["a:1"], "rpc_layers": 3, "extra_args": []}
    argv = server_command.command(inputs)["argv"]
    flags = {arg for arg in argv if arg.startswith("--")}
    assert flags - set(server_command.TUNED_DEFAULTS) <= set(server_args.FLAGS)
    tuned = set(server_command.TUNED_DEFAULTS)
    assert tuned <= flags and not tuned & set(server_args.FLAGS)


@pytest.mark.parametrize(("arg", "why"), [
    ("--path", "serves a directory's files"), ("--media-path", "read local files"),
    ("--slot-save-path", "KV-cache files"), ("--log-prompts-dir", "every prompt"), ("--reuse-port", "bind"),
    ("--props", "change the server's settings"), ("--webui-mcp-proxy", "fetch URLs"), ("--path=/srv/www", "files"),
])
def test_options_that_serve_files_or_change_exposure_are_refused(arg, why):
    problem, = server_args.problems(["--temp", "0.7", arg])
    assert problem.startswith("llama_server_extra_args[2]: ") and why in problem and "does not manage it" in problem


@pytest.mark.parametrize("arg", ["--batch-size 512", "-b 512", "--temp=0.7", "--cache-type-k q8_0"])
def test_a_flag_and_its_value_in_one_entry_is_refused(arg):
    problem, = server_args.problems([arg])
    written = re.split(r"[=\s]", arg)[0]
    assert problem == (f"llama_server_extra_args[0]: '{written}' and its value must be two entries, one argument "
                       f"each (e.g. ['{written}', '<value>'])")


def test_a_value_with_a_space_is_one_argument():
    assert server_args.problems(["--chat-template", "{% for m in messages %}{{ m.content }}{% endfor %}"]) == []


@pytest.mark.parametrize(("name", "owner"), [
    ("LLAMA_ARG_THREADS", "llm_threads"), ("LLAMA_ARG_PORT", "llama_server_port"),
    ("LLAMA_API_KEY", "llama_server_api_key"), ("HF_TOKEN", "llama_server_model_path"),
    ("LLAMA_ARG_HF_REPO", "llama_server_model_path"), ("LLAMA_ARG_N_GPU_LAYERS", "llm_gpu_vram_bytes"),
    ("LLAMA_ARG_NO_ENDPOINT_METRICS", "llama_server_metrics"), ("LLAMA_ARG_HOST", "llama_server_host"),
])
def test_environment_variables_of_managed_settings_are_refused(name, owner):
    problem, = server_args.environment_problems({"OMP_WAIT_POLICY": "active", name: "sk-secret-value"})
    assert problem.startswith(f"llama_server_environment: {name} sets llama-server's ") and owner in problem
    assert "sk-secret-value" not in problem


def test_environment_variables_that_change_exposure_are_refused_and_others_pass():
    problem, = server_args.environment_problems({"LLAMA_ARG_STATIC_PATH": "/srv"})
    assert "serves a directory's files" in problem
    assert server_args.environment_problems({"GGML_VK_VISIBLE_DEVICES": "0", "LLAMA_ARG_THREADS_HTTP": "4",
                                             "OMP_NUM_THREADS": "8"}) == []


def _arg_cpp_groups():
    """(flags, negative flags, environment variable or None) for every option at the pinned commit."""
    out = []
    for chunk in ARG_CPP.read_text().split("add_opt(common_arg(")[1:]:
        match = re.match(r"\s*\{([^}]*)\}(\s*,\s*\{([^}]*)\})?", chunk)
        if match:
            env = re.findall(r'set_env\("([A-Z_0-9]+)"\)', chunk.split("add_opt(")[0])
            out.append((re.findall(r'"([^"]+)"', match.group(1)), re.findall(r'"([^"]+)"', match.group(3) or ""),
                        env[0] if env else None))
    return out


@pytest.mark.skipif(not ARG_CPP.exists(), reason="llama.cpp source at the pinned commit not cached")
def test_environment_table_matches_llama_server_at_the_pinned_commit():
    """Every option the role manages or refuses: its environment variable is refused too, and every name in the
    tables is one llama-server reads."""
    groups = _arg_cpp_groups()
    known = {env for _flags, _neg, env in groups if env}
    assert set(server_args.ENVIRONMENT) <= known and {n for n in server_args.EXPOSING if not n.startswith("-")} <= known
    refused_flags = set(server_args.FLAGS) | {n for n in server_args.EXPOSING if n.startswith("-")}
    all_flags = {flag for flags, neg, _env in groups for flag in flags + neg}
    assert {n for n in server_args.EXPOSING if n.startswith("-")} <= all_flags
    for flags, _neg, env in groups:
        if env and set(flags) & refused_flags:
            assert env in server_args.ENVIRONMENT or env in server_args.EXPOSING, (flags, env)
