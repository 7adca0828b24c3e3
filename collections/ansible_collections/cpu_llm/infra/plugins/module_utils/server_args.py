"""Which llama-server flags the llama_server role sets itself, so llama_server_extra_args may not.

Plain Python, no Ansible imports. The flag names and aliases are llama-server's own, read from
common/arg.cpp at the pinned commit (llama_cpp_version 0c1e57098bba43ac29e6e3b677cdceebdd22334f):
every `{"-x", "--xxx"}` list of an option the role owns, plus older spellings of the same settings
(--mlock, --no-mmap) so a copy from an old guide is refused too.

llama-server parses its arguments this way (common_params_parse): an argument starting with "--" has
its '_' replaced by '-' first (--api_key is --api-key); "--flag=value" is not understood (it is an
unknown argument), but it is refused here too, naming the variable, rather than left to fail at
start. A flag repeated later wins over the role's, which is what would silently override the role.
"""

import re

# setting -> (the variable that sets it, llama-server's flags for it)
MANAGED = {
    "model": ("llama_server_model_path (the gguf_model role's gguf_model_repo and gguf_model_files pick it)", (
        "-m", "--model", "-mu", "--model-url", "-hf", "-hfr", "--hf-repo", "-hff", "--hf-file",
        "-hft", "--hf-token", "-dr", "--docker-repo", "--models-dir", "--models-preset")),
    "host": ("llama_server_host", ("--host",)),
    "port": ("llama_server_port", ("--port",)),
    "api key": ("llama_server_api_key (written to llama_server_api_key_file, never on the command line)",
                ("--api-key", "--api-key-file")),
    "TLS": ("llama_server_tls_cert and llama_server_tls_key", ("--ssl-cert-file", "--ssl-key-file")),
    "threads": ("llm_threads (llama_server_threads)", ("-t", "--threads", "-tb", "--threads-batch")),
    "context": ("llm_ctx_size (llama_server_ctx_size, per slot)", ("-c", "--ctx-size")),
    "slots": ("llm_parallel (llama_server_parallel)", ("-np", "--parallel")),
    "NUMA": ("llama_server_numactl_args (the service runs under numactl)", ("--numa",)),
    "metrics": ("llama_server_metrics", ("--metrics",)),
    "memory locking": ("llm_mlock (llama_server_mlock)", ("-lm", "--load-mode", "--mlock", "--no-mmap", "--mmap")),
    "alias": ("llama_server_alias", ("-a", "--alias")),
    "GPU offload": ("llm_gpu_vram_bytes (the offload plan's budget), llama_server_gpu_offload, or "
                    "llama_server_rpc_layers on an RPC head",
                    ("-ngl", "--gpu-layers", "--n-gpu-layers", "-cmoe", "--cpu-moe", "-ncmoe", "--n-cpu-moe")),
    "RPC workers": ("llama_server_rpc_workers (site.yml sets it from the llm_rpc_workers group)", ("--rpc",)),
}
FLAGS = {flag: (setting, variable) for setting, (variable, flags) in MANAGED.items() for flag in flags}


def flag_name(arg):
    """The flag an argument sets, as llama-server reads it ('--api_key=x' -> '--api-key'); None for a value."""
    text = arg.strip()
    if not text.startswith("-") or re.fullmatch(r"-[0-9.]+", text):
        return None  # a value (negative numbers included)
    name = re.split(r"[=\s]", text, maxsplit=1)[0]
    return name.replace("_", "-") if name.startswith("--") else name


def problems(args, variable="llama_server_extra_args"):
    """One message per entry of args that sets a flag the role owns; [] when none does.

    The messages name the flag as written up to '=' or a space, never a value (an API key could
    follow it).
    """
    if args is None:
        return []
    if not isinstance(args, (list, tuple)):
        return [f"{variable} must be a list of strings, one argument each (e.g. ['--batch-size', '512'])"]
    found = []
    for index, arg in enumerate(args):
        if not isinstance(arg, str):
            found.append(f"{variable}[{index}] must be a string, got {type(arg).__name__}")
            continue
        name = flag_name(arg)
        if name in FLAGS:
            setting, owner = FLAGS[name]
            written = re.split(r"[=\s]", arg.strip(), maxsplit=1)[0]
            found.append(f"{variable}[{index}]: '{written}' sets the {setting}, which the role manages: "
                         f"set {owner} instead")
    return found
