"""llama-server's command line for one instance of the llama_server role: the one place it is decided.

Plain Python, no Ansible imports. ``command(inputs, instance)`` turns the role's settings (the llama_server
role's variables, the measured tuning, the GPU offload plan, the RPC wiring; roles/llama_server/vars/main.yml
names each input) and one instance of the layout (module_utils/server_instances.py) into the argv, the
environment and the unit's other instance-specific lines. Its readers:
  - the unit template joins it (ExecStart=, Environment=, Description=, the notes): no decision is left there;
  - the benchmark role reads it back from the running unit (bench_report.parse_exec_start; a unit test checks
    the two agree);
  - server_args derives the flags llama_server_extra_args may not set from OWNED below.

Flag names are llama-server's own at the pinned commit (common/arg.cpp, llama_cpp_version
0c1e57098bba43ac29e6e3b677cdceebdd22334f); a unit test checks every flag here against that file.
"""

from collections.abc import Mapping

from ansible_collections.cpu_llm.infra.plugins.module_utils import systemd_syntax

NUMACTL = "/usr/bin/numactl"

# Every setting the role owns: (the variable that sets it, the flags the command renders for it, llama-server's
# other spellings of the same setting). Extra arguments may set none of these (server_args.problems): a flag
# repeated later wins over the role's, which would silently override it. Older spellings (--mlock, --no-mmap,
# --mmap) are refused too, so a copy from an old guide does not get through.
OWNED = {
    "model": ("llama_server_model_path (the gguf_model role's gguf_model_repo and gguf_model_files pick it)",
              ("--model",), ("-m", "-mu", "--model-url", "-hf", "-hfr", "--hf-repo", "-hff", "--hf-file", "-hft",
                             "--hf-token", "-dr", "--docker-repo", "--models-dir", "--models-preset")),
    "host": ("llama_server_host", ("--host",), ()),
    "port": ("llama_server_port", ("--port",), ()),
    "api key": ("llama_server_api_key (written to llama_server_api_key_file, never on the command line)",
                ("--api-key-file",), ("--api-key",)),
    "TLS": ("llama_server_tls_cert and llama_server_tls_key", ("--ssl-cert-file", "--ssl-key-file"), ()),
    "threads": ("llm_threads (llama_server_threads)", ("--threads",), ("-t", "-tb", "--threads-batch")),
    "context": ("llm_ctx_size (llama_server_ctx_size, per slot)", ("--ctx-size",), ("-c",)),
    "slots": ("llm_parallel (llama_server_parallel)", ("--parallel",), ("-np",)),
    "NUMA": ("llama_server_numactl_args (the service runs under numactl)", ("--numa",), ()),
    "metrics": ("llama_server_metrics", ("--metrics",), ()),
    "memory locking": ("llm_mlock (llama_server_mlock)", ("--load-mode",), ("-lm", "--mlock", "--no-mmap", "--mmap")),
    "alias": ("llama_server_alias", ("--alias",), ("-a",)),
    # The offload plan's flags (module_utils/gpu_offload.py) and an RPC head's layer count.
    "GPU offload": ("llm_gpu_vram_bytes (the offload plan's budget), llama_server_gpu_offload, or "
                    "llama_server_rpc_layers on an RPC head",
                    ("--n-gpu-layers", "--n-cpu-moe", "--cpu-moe"), ("-ngl", "--gpu-layers", "-cmoe", "-ncmoe")),
    "RPC workers": ("llama_server_rpc_workers (site.yml sets it from the llm_rpc_workers group)", ("--rpc",), ()),
}
# Flags the command renders from a measurement that extra arguments may still override on purpose (the measured
# batch sizes are a default, not a rule: README, "Autotune").
TUNED_DEFAULTS = ("--batch-size", "--ubatch-size")

_PER_NODE_NOTE = (
    "# One llama-server per NUMA node (llama_server_instances: per_node): this one runs on node {node}'s cores\n"
    "# and reads its own copy of the model from node {node}'s memory only. Port {port} (llama_server_port + {node}),\n"
    "# threads {threads} (llama_server_threads / NUMA nodes); a measured thread count or NUMA policy (above) was for\n"
    "# one instance over every node and is not used here.")


def _truthy(value):
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _load_mode(tuning, mlock):
    """--load-mode: the measured one (mmap, or none = read into RAM), locked with llama_server_mlock; '' = none."""
    measured = tuning.get("load_mode") or ""
    if _truthy(mlock):
        return {"none": "mlock"}.get(measured, "mmap+mlock")
    return measured


def command(inputs, instance=None):
    """The instance's command: {unit, description, numactl, binary, argv, lines, options, environment, service_lines,
    unit_lines}.

    argv is what systemd runs (numactl first when there is a policy); lines groups it as the unit writes it, one
    flag and its value per line; options maps each llama-server flag (without '--') to its value (True for a bare
    flag), as the benchmark reads it; environment is [[name, value], ...] in the unit's order.
    """
    instance = instance or {}
    tuning = inputs.get("tuning") or {}
    offload = inputs.get("offload") or {}
    # per_node: the instance's own port, threads and numactl binding; a measured thread count or NUMA policy was
    # for one instance over every node and does not apply (server_instances.py).
    per_node = instance.get("node") is not None
    if per_node:
        numactl, port, threads = list(instance["numactl"]), instance["port"], instance["threads"]
    else:
        numactl = list(tuning["numactl"] if "numactl" in tuning else inputs["numactl_args"] or [])
        port = inputs["port"]
        threads = tuning["threads"] if "threads" in tuning else inputs["threads"]

    lines = []
    lines.append([inputs["binary"]])
    lines.append(["--model", inputs["model_path"]])
    lines.append(["--host", inputs["host"]])
    lines.append(["--port", port])
    lines.append(["--threads", threads])
    # The KV cache holds every slot's context: llama-server divides --ctx-size among --parallel slots.
    lines.append(["--ctx-size", int(inputs["ctx_size"]) * int(inputs["parallel"])])
    lines.append(["--parallel", inputs["parallel"]])
    if tuning.get("numa_flag") and not per_node:
        lines.append(["--numa", tuning["numa_flag"]])  # measured: llama.cpp's own placement (e.g. distribute)
    if tuning.get("batch_size"):
        lines.append(["--batch-size", tuning["batch_size"]])  # measured prompt-processing batch
    if tuning.get("ubatch_size"):
        lines.append(["--ubatch-size", tuning["ubatch_size"]])
    if inputs.get("alias"):
        lines.append(["--alias", inputs["alias"]])  # the model's id in the API (/v1/models)
    if _truthy(inputs.get("metrics")):
        lines.append(["--metrics"])  # Prometheus /metrics
    load_mode = _load_mode(tuning, inputs.get("mlock"))
    if load_mode:
        lines.append(["--load-mode", load_mode])
    if _truthy(inputs.get("api_key")):
        # The key from a root:llama 0640 file: never on the command line, in `ps` or in the journal.
        lines.append(["--api-key-file", inputs["api_key_file"]])
    if inputs.get("tls_cert"):
        lines.append(["--ssl-cert-file", inputs["tls_cert"]])
        lines.append(["--ssl-key-file", inputs["tls_key"]])
    if offload.get("args"):
        lines.append(list(offload["args"]))  # the GPU offload plan's flags, on one line (gpu_offload.py)
    rpc_workers = list(inputs.get("rpc_workers") or [])
    if rpc_workers:
        lines.append(["--rpc", ",".join(rpc_workers)])
        if int(inputs.get("rpc_layers", -1)) >= 0:
            # Layers on the workers; -1 leaves llama.cpp's default (all of them) and renders nothing.
            lines.append(["--n-gpu-layers", int(inputs["rpc_layers"])])
    # Last, so a flag the role does not own can still be set; the owned ones are refused at validation.
    lines.extend([arg] for arg in inputs.get("extra_args") or [])
    if numactl:
        lines.insert(0, [NUMACTL, *numactl])

    argv = [str(word) for line in lines for word in line]
    llama = argv[len(numactl) + 1:] if numactl else argv[1:]
    options = {}
    for index, arg in enumerate(llama):
        if arg.startswith("--") and "=" in arg:
            name, _, value = arg[2:].partition("=")
            options[name] = value
        elif arg.startswith("--"):
            following = llama[index + 1] if index + 1 < len(llama) else None
            options[arg[2:]] = following if following is not None and not following.startswith("--") else True

    environment = []
    if tuning:
        environment += [[name, str(value)] for name, value in sorted((tuning.get("environment") or {}).items())]
    environment += [[name, str(value)] for name, value in sorted((inputs.get("environment") or {}).items())]

    # The [Service] lines before ExecStart=, each measured or planned setting with the comment that says why.
    service_lines = []
    if tuning:
        service_lines.append("# Measured on this host by the autotune role (/etc/llama-server/tuning.json), "
                             "not guessed:")
        service_lines += [f"#   {key}: {note}" for key, note in sorted((tuning.get("comments") or {}).items())]
        service_lines += [_environment_line(*item) for item in sorted((tuning.get("environment") or {}).items())]
    service_lines += [_environment_line(*item) for item in sorted((inputs.get("environment") or {}).items())]
    if offload.get("shader_cache"):
        service_lines += [
            "# Mesa's shader cache: the Vulkan driver compiles llama.cpp's compute pipelines once, not at every start.",
            "CacheDirectory=llama-server", "Environment=MESA_SHADER_CACHE_DIR=/var/cache/llama-server/mesa"]
        environment.append(["MESA_SHADER_CACHE_DIR", "/var/cache/llama-server/mesa"])
    if offload.get("gpu"):
        gpu = offload["gpu"]
        service_lines += [
            f"# GPU offload on {_text(gpu['name'])}, planned for {gpu['vram_bytes']} bytes ({_text(gpu['how'])}):",
            f"#   {_text(offload['why'])}"]
    if per_node:
        service_lines += _PER_NODE_NOTE.format(node=instance["node"], port=port, threads=threads).split("\n")

    unit_lines = []
    if rpc_workers:
        unit_lines = ["# llama-server aborts when an RPC worker does not answer: keep restarting until the workers "
                      "are up", "# (after a power cut they may boot later than this host), instead of giving up "
                      "after five tries.", "StartLimitIntervalSec=0"]

    model_name = str(inputs["model_path"]).rsplit("/", 1)[-1]
    description = f"llama.cpp inference server ({_text(model_name)})" + (
        f", NUMA node {instance['node']}" if per_node else "")
    return {
        "unit": instance.get("unit", "llama-server.service"),
        "description": description,
        "numactl": numactl,
        "binary": str(inputs["binary"]),
        "argv": argv,
        "lines": [[str(word) for word in line] for line in lines],
        "exec_start": " \\\n  ".join(" ".join(systemd_syntax.quote_word(word) for word in line) for line in lines),
        "options": options,
        "environment": environment,
        "service_lines": service_lines,
        "unit_lines": unit_lines,
    }


def _text(value):
    return systemd_syntax.quote_text(value)


def _environment_line(name, value):
    return "Environment=" + systemd_syntax.quote_word(f"{name}={value}")


def commands(instances, inputs):
    """command() for every instance, by unit name: what the unit template and the recorded JSON read."""
    if not isinstance(inputs, Mapping):
        raise ValueError(f"the command's inputs must be a mapping, got {type(inputs).__name__}")
    return {instance["unit"]: command(inputs, instance) for instance in instances or []}


def rendered_flags():
    """Every '--' flag command() can render: the owned ones and the tuned defaults (the offload plan's included)."""
    return {flag for _variable, flags, _aliases in OWNED.values() for flag in flags} | set(TUNED_DEFAULTS)
