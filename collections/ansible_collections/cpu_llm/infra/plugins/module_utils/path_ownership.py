"""Which paths each role owns, and whether a host's settings keep to that. Plain Python, no Ansible imports.

A role may create, rewrite, chmod or remove only what it owns: a file it writes under a name the user gave it
(and only when that file is absent or is one it wrote), a directory it creates, and a directory whose entries it
manages. Two checks use the table below:

- owned_problems(), on the host, before the role's first change (the llm_owned_paths module): a path the role is
  about to write must not hold a file it did not write, and a directory it would chmod or chown must not exist
  with another owner, group or mode (it would then be changing a directory that is not its own: /var, or
  /etc/ssl/private).
- conflicts(), in site.yml's input play, across the roles of one host: no two roles write the same file or
  manage the same directory, no role writes into a directory another role manages, and no role writes over a
  path another setting names as its input.

Access kinds:
  write    a file the role rewrites (or removes when its setting is unset)
  tree     a directory whose entries the role creates, replaces and removes
  dir      a directory the role creates and sets owner and mode on; other entries in it are left alone
  read     an input the role reads and never changes (a certificate, a toolkit)
  product  a file another role makes, read here (the binary, the model, the tuning document)
  control  a directory on the control machine, not the host (listed for the README, never compared)
"""

import grp
import os
import posixpath
import pwd
import stat

WRITE, TREE, DIR, READ, PRODUCT, CONTROL = "write", "tree", "dir", "read", "product", "control"
CHANGES = (WRITE, TREE, DIR)

# role -> [(variable or fixed path, access, what the role does there)]. The variable's value is the path;
# "<variable>|dirname" is its parent directory. Also the source of each role's README section "Paths".
ROLE_PATHS = {
    "preflight": [
        ("preflight_tuning_file", PRODUCT, "the autotune role's tuning document"),
    ],
    "os_tuning": [
        ("os_tuning_sysctl_file", WRITE, "rewritten; refused when it exists and this role did not write it"),
        ("/etc/default/grub.d/60-llm-inference.cfg", WRITE, "kernel parameters, removed when switched off"),
        ("/etc/security/limits.d/60-llm-memlock.conf", WRITE, "memlock limit, removed when switched off"),
        ("/etc/tmpfiles.d/60-llm-thp.conf", WRITE, "transparent hugepage settings"),
        ("/etc/systemd/system/llm-cpufreq.service", WRITE, "the CPU governor unit"),
    ],
    "llama_cpp": [
        ("llama_cpp_prefix", TREE, "source archives (src/), build trees (build/), one directory per version, "
                                   "the current link"),
        ("llama_cpp_ccache_dir", TREE, "ccache's cache"),
        ("llama_cpp_cuda_toolkit_dir", READ, "the CUDA toolkit"),
    ],
    "gguf_model": [
        ("gguf_model_dir", TREE, "one directory per model version, the current link, the history of what it "
                                 "downloaded (.llm-model-history.json; only directories in it are ever pruned)"),
        ("/run/gguf-model-seed", DIR, "the fleet's model source while other servers download (gone at reboot)"),
    ],
    "autotune": [
        ("autotune_file", WRITE, "the tuning document; refused when it exists and is not one"),
        ("autotune_llama_bench", PRODUCT, "llama_cpp's llama-bench"),
        ("autotune_model_path", PRODUCT, "gguf_model's current model"),
    ],
    "llama_server": [
        ("/etc/llama-server", DIR, "the replaced units kept for a rollback (llama-server.service.previous), "
                                   "root:GROUP 0750"),
        ("llama_server_api_key_file", WRITE, "the API key, root:GROUP 0640, removed when no key is set; refused "
                                             "when it exists with other owner, group or mode"),
        ("llama_server_api_key_file|dirname", DIR, "created root:GROUP 0750 when a key is set; refused when it "
                                                   "exists with other owner, group or mode"),
        ("llama_server_binary", PRODUCT, "llama_cpp's llama-server"),
        ("llama_server_model_path", PRODUCT, "gguf_model's current model"),
        ("llama_server_tls_cert", READ, "the certificate"),
        ("llama_server_tls_key", READ, "the private key"),
        ("/etc/systemd/system/llama-server.service", WRITE, "the unit (and llama-server-nodeN.service)"),
    ],
    "llm_rpc_worker": [
        ("llm_rpc_worker_binary", PRODUCT, "llama_cpp's rpc-server"),
        ("/etc/llama-rpc-server", DIR, "the worker's firewall rules"),
        ("/etc/systemd/system/llama-rpc-server.service", WRITE, "the unit (and its firewall unit)"),
    ],
    "llm_gateway": [
        ("/etc/haproxy/haproxy.cfg", WRITE, "HAProxy's configuration, and the key map files next to it"),
        ("llm_gateway_tls_cert_path", READ, "the certificate and key"),
    ],
    "benchmark": [
        ("benchmark_tuning_file", PRODUCT, "the autotune role's tuning document"),
        ("benchmark_reports_dir", CONTROL, "HOST.json, summary.md and summary.svg"),
    ],
}


def variables(roles):
    """The variable names the roles' paths come from (for the caller to look their values up)."""
    names = []
    for role in roles:
        for source, access, _what in ROLE_PATHS.get(role, ()):
            name = source.split("|")[0]
            if access != CONTROL and not name.startswith("/") and name not in names:
                names.append(name)
    return names


def claims(roles, values):
    """[{name, path, role, access}] for the roles, from values {variable: path}; unset (empty) paths are left out."""
    out = []
    for role in roles:
        for source, access, _what in ROLE_PATHS.get(role, ()):
            name, _, derived = source.partition("|")
            if access == CONTROL:
                continue
            path = name if name.startswith("/") else values.get(name)
            if not isinstance(path, str) or not path.startswith("/"):
                continue  # unset, or refused by the role's own path check
            path = "/" + posixpath.normpath(path).lstrip("/")
            if derived == "dirname":
                path, name = posixpath.dirname(path), f"the directory of {name}"
            out.append({"name": name, "path": path, "role": role, "access": access})
    return out


def _inside(path, directory):
    return path != directory and path.startswith(directory.rstrip("/") + "/")


def _label(claim):
    return claim["name"] if claim["name"].startswith("/") else f"{claim['name']} ({claim['path']})"


def _conflict(a, b):
    """Why claims a and b cannot both hold on one host, or None."""
    if a["access"] in CHANGES and b["access"] in CHANGES and a["path"] == b["path"]:
        if a["access"] == DIR and b["access"] == DIR:
            return None  # one directory both create: neither removes or rewrites it
        return (f"{_label(a)} and {_label(b)} name the same path: the {a['role']} and {b['role']} roles would "
                "each rewrite it on every run")
    if a["access"] in CHANGES and b["access"] == READ and a["path"] == b["path"]:
        return (f"{_label(a)} is {b['name']}, an input the {b['role']} role reads: the {a['role']} role would "
                "overwrite it")
    if b["access"] == TREE and a["role"] != b["role"] and a["access"] in CHANGES and _inside(a["path"], b["path"]):
        return (f"{_label(a)} is inside {_label(b)}, whose entries the {b['role']} role creates and removes: give "
                f"the {a['role']} role a path of its own")
    return None


def conflicts(host, roles, values):
    """Messages for paths of the roles that one host runs that would collide, one per pair."""
    found = claims(roles, values)
    problems = []
    for i, a in enumerate(found):
        for b in found[i + 1:]:
            why = _conflict(a, b) or _conflict(b, a)
            if why and why not in problems:
                problems.append(why)
    return [f"{host}: {why}" for why in problems]


# ---- on the host: is what is there already the role's own?

def _names(info):
    try:
        owner = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        owner = str(info.st_uid)
    try:
        group = grp.getgrgid(info.st_gid).gr_name
    except KeyError:
        group = str(info.st_gid)
    return owner, group


def _attributes(info):
    owner, group = _names(info)
    return f"{owner}:{group} {stat.S_IMODE(info.st_mode):04o}"


def _differs(info, want):
    owner, group = _names(info)
    return ((want.get("owner") not in (None, owner)) or (want.get("group") not in (None, group))
            or (want.get("mode") is not None and stat.S_IMODE(info.st_mode) != int(str(want["mode"]), 8)))


def _wanted(want):
    mode = f" {int(str(want['mode']), 8):04o}" if want.get("mode") is not None else ""
    return f"{want.get('owner', '*')}:{want.get('group', '*')}{mode}"


MARKER_BYTES = 65536  # a file the role wrote carries its marker near the start; nothing larger is read


def owned_problems(items):
    """Messages for items the role must not touch as they are now. Each item: name (the variable), path, kind
    ('file': the role writes or removes it; 'dir': the role creates it with owner, group and mode), and what
    tells the role's own: owner, group, mode ('0640'), marker (text a file it wrote contains). Kind 'link': a
    symlink the role switches between versions (llm_switch_link), which it may replace only when it is one."""
    problems = []
    for item in items:
        name, path, kind = item["name"], item["path"], item.get("kind", "file")
        if kind == "link":
            if os.path.lexists(path) and not os.path.islink(path):
                problems.append(f"{name}: {path} exists and is not a symlink: the role switches versions with a "
                                "link there and would refuse only after building or downloading. Move it away, or "
                                "name a directory of its own")
            continue
        try:
            info = os.stat(path)  # a link is judged by what it points to, which is what the role would change
        except FileNotFoundError:
            continue  # the role creates it
        except OSError as exc:
            problems.append(f"{name}: cannot read {path} ({exc.strerror}); the role would write there")
            continue
        if kind == "dir":
            if not stat.S_ISDIR(info.st_mode):
                problems.append(f"{name}: {path} exists and is not a directory; the role creates a directory there")
            elif _differs(info, item):
                problems.append(
                    f"{name}: {path} exists as {_attributes(info)}, and the role would make it {_wanted(item)}: it is "
                    f"not a directory this role created (a shared directory such as /var or /etc/ssl/private). "
                    "Name a path of its own, e.g. below /etc/llama-server")
            continue
        if not stat.S_ISREG(info.st_mode):
            problems.append(f"{name}: {path} exists and is not a regular file; the role would write a file there")
            continue
        why = None
        if _differs(info, item):
            why = f"it is {_attributes(info)} where the role writes {_wanted(item)}"
        elif item.get("marker"):
            with open(path, "rb") as handle:
                head = handle.read(MARKER_BYTES)
            if item["marker"].encode() not in head:
                why = f"it does not hold {item['marker']!r}, which every file this role writes holds"
        if why:
            problems.append(f"{name}: {path} exists and this role did not write it ({why}); the role would "
                            "overwrite or remove it. Name a file of its own, or move that file away")
    return problems
