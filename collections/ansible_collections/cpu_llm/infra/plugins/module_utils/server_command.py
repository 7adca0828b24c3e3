"""llama-server's command line for one instance of the llama_server role: the one place it is decided.

Plain Python, no Ansible imports. ``command(inputs, instance)`` turns the role's settings (the llama_server
role's variables, the measured tuning, the GPU offload plan, the RPC wiring; roles/llama_server/vars/main.yml
names each input) and one instance of the layout (module_utils/server_instances.py) into the argv, the
environment and the unit's other instance-specific lines. Its readers:
  - the unit template joins it (ExecStart=, Environment=, Description=, the notes): no decision is left there;
  - the unit carries it as a record (the [X-LLM-Command] section, which systemd ignores) that the benchmark role
    reads back with read_record(), after checking it is what ExecStart= runs: the role never parses a command line;
  - server_args derives the flags llama_server_extra_args may not set from OWNED below.

Flag names are llama-server's own at the pinned commit (common/arg.cpp, llama_cpp_version
0c1e57098bba43ac29e6e3b677cdceebdd22334f); a unit test checks every flag here against that file.
"""

import json
from collections.abc import Mapping

from ansible_collections.cpu_llm.infra.plugins.module_utils import systemd_sandbox, systemd_syntax

NUMACTL = "/usr/bin/numactl"
# The unit's section that records the command: systemd ignores sections and keys whose names start with X-
# (systemd.unit(5), "[X-...] sections"), so the record moves with the unit (its backup, its rollback).
RECORD_SECTION = "X-LLM-Command"
RECORDED = ("binary", "numactl", "argv", "options", "environment")

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
# llama-server's environment variables for the settings above (common/arg.cpp, set_env, at the pinned commit; a
# unit test reads them there): llama_server_environment may set none of them. Where the flag is on the command
# line the argument wins and the variable is silently ignored; where it is not (no key, no offload, no NUMA
# flag), the variable would set what the role decided against.
OWNED_ENVIRONMENT = {
    "model": ("LLAMA_ARG_MODEL", "LLAMA_ARG_MODEL_URL", "LLAMA_ARG_DOCKER_REPO", "LLAMA_ARG_HF_REPO",
              "LLAMA_ARG_HF_FILE", "HF_TOKEN", "LLAMA_ARG_MODELS_DIR", "LLAMA_ARG_MODELS_PRESET"),
    "host": ("LLAMA_ARG_HOST",),
    "port": ("LLAMA_ARG_PORT",),
    "api key": ("LLAMA_API_KEY", "LLAMA_ARG_API_KEY_FILE"),
    "TLS": ("LLAMA_ARG_SSL_CERT_FILE", "LLAMA_ARG_SSL_KEY_FILE"),
    "threads": ("LLAMA_ARG_THREADS",),
    "context": ("LLAMA_ARG_CTX_SIZE",),
    "slots": ("LLAMA_ARG_N_PARALLEL",),
    "NUMA": ("LLAMA_ARG_NUMA",),
    "metrics": ("LLAMA_ARG_ENDPOINT_METRICS",),
    "memory locking": ("LLAMA_ARG_LOAD_MODE",),
    "alias": ("LLAMA_ARG_ALIAS",),
    "GPU offload": ("LLAMA_ARG_N_GPU_LAYERS", "LLAMA_ARG_CPU_MOE", "LLAMA_ARG_N_CPU_MOE"),
    "RPC workers": ("LLAMA_ARG_RPC",),
}
# Options the role does not manage that serve or write files, or change who can reach the server or what a
# request can make it do: refused in llama_server_extra_args and llama_server_environment alike, saying why.
# (flags, environment variables, why); read from common/arg.cpp at the pinned commit as above.
EXPOSURE = (
    (("--path",), ("LLAMA_ARG_STATIC_PATH",), "serves a directory's files over HTTP to every client"),
    (("--media-path",), (), "lets requests read local files by path"),
    (("--slot-save-path",), (), "lets requests write and read KV-cache files through /slots"),
    (("--log-prompts-dir",), (), "writes every prompt to disk"),
    (("--reuse-port",), ("LLAMA_ARG_REUSE_PORT",), "lets another process bind the service's port and take its traffic"),
    (("--props",), ("LLAMA_ARG_ENDPOINT_PROPS",), "lets any client change the server's settings (POST /props)"),
    (("--ui-mcp-proxy", "--webui-mcp-proxy"), ("LLAMA_ARG_UI_MCP_PROXY",),
     "makes the server fetch URLs that requests name (a proxy into the host's network)"),
)
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


def _sandbox(offload):
    """The unit's hardening block (module_utils/systemd_sandbox.py), with what differs from the other units: the
    GPU's devices and the Vulkan-on-CPU exception come from the offload plan (module_utils/gpu_offload.py)."""
    devices = list(offload.get("device_allow") or [])
    write_execute = bool(offload.get("memory_deny_write_execute", True))
    why = {"CapabilityBoundingSet": [
        "No capabilities at all. Locking the model (--load-mode mmap+mlock; this llama.cpp has no --mlock",
        "any more) needs none either: locking up to RLIMIT_MEMLOCK is allowed to",
        "any process (mlock(2)), and systemd raises that limit as root before dropping privileges;",
        "CAP_IPC_LOCK would only matter beyond the limit, and under PrivateUsers it would not count."]}
    if devices:
        why["PrivateDevices"] = [
            'The GPU\'s device nodes and no other (README, "GPU offload"): PrivateDevices=yes would hide them,',
            "DevicePolicy=closed below admits only the pseudo devices and these."]
    if not write_execute:
        why["MemoryDenyWriteExecute"] = [
            "Off for a Vulkan device that runs on the CPU (Mesa's lavapipe): it compiles shaders to host code with",
            "LLVM at run time, which needs memory that is written, then executed."]
    return systemd_sandbox.lines(
        address_families=["AF_INET", "AF_INET6", "AF_UNIX"], numa_syscalls=True, device_allow=devices,
        supplementary_groups=list(offload.get("supplementary_groups") or []) if devices else [],
        memory_deny_write_execute=write_execute, why=why)


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
    out = {
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
        # After the restart policy: the hardening block, then the memory-lock limit that --load-mode ...mlock needs.
        "sandbox_lines": _sandbox(offload) + (["LimitMEMLOCK=infinity"] if _truthy(inputs.get("mlock")) else []),
    }
    # One line of JSON: nothing in it ends in a backslash (a continuation for systemd) or needs quoting there.
    out["record"] = json.dumps({key: out[key] for key in RECORDED}, sort_keys=True, separators=(",", ":"))
    return out


def read_record(unit_text):
    """The recorded command ({binary, numactl, argv, options, environment}) from `systemctl cat` of a unit the
    llama_server role wrote. Refused when the unit has no record (an older role wrote it: run site.yml again) or
    when what ExecStart= runs is not the recorded argv (a hand edit or a drop-in changed it): a benchmark must
    measure what runs."""
    section, records, exec_starts = None, [], 0
    for line in (unit_text or "").splitlines():
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1]
        elif section == RECORD_SECTION and stripped.startswith("Record="):
            records.append(stripped[len("Record="):])
        elif section == "Service" and stripped.startswith("ExecStart="):
            exec_starts += 1
    if len(records) != 1:
        raise ValueError(f"the unit has {len(records) or 'no'} [{RECORD_SECTION}] Record= line(s): it was not "
                         "written by this version of the llama_server role (run site.yml again)")
    try:
        record = json.loads(records[0])
    except ValueError as exc:
        raise ValueError(f"the unit's [{RECORD_SECTION}] record is not JSON: {exc}") from exc
    if not isinstance(record, dict) or set(record) != set(RECORDED):
        raise ValueError(f"the unit's [{RECORD_SECTION}] record must hold {', '.join(RECORDED)}")
    running = systemd_syntax.split_command_line(systemd_syntax.exec_start(unit_text))
    if exec_starts != 1 or running != record["argv"]:
        raise ValueError("the unit's ExecStart= is not the command the llama_server role recorded (changed by hand "
                         "or by a drop-in): run site.yml again, or remove the change, before measuring")
    return record


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
