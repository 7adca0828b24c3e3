"""Which llama-server flags and environment variables the llama_server role sets itself or refuses, so
llama_server_extra_args and llama_server_environment may not set them.

Plain Python, no Ansible imports. The table is server_command.OWNED, the same one the command line is built
from: every flag the role renders for a setting, plus llama-server's other spellings of that setting (read from
common/arg.cpp at the pinned commit, llama_cpp_version 0c1e57098bba43ac29e6e3b677cdceebdd22334f) and older ones
(--mlock, --no-mmap) so a copy from an old guide is refused too. The same settings' environment variables
(server_command.OWNED_ENVIRONMENT) and the options that serve files or change exposure (server_command.EXPOSURE)
are refused as well, in either channel.

llama-server parses its arguments this way (common_params_parse): an argument starting with "--" has
its '_' replaced by '-' first (--api_key is --api-key); "--flag=value" is not understood (it is an
unknown argument), but it is refused here too, naming the variable, rather than left to fail at
start. A flag repeated later wins over the role's, which is what would silently override the role.
"""

import re

from ansible_collections.cpu_llm.infra.plugins.module_utils.server_command import EXPOSURE, OWNED, OWNED_ENVIRONMENT

# setting -> (the variable that sets it, llama-server's flags for it)
MANAGED = {setting: (variable, rendered + aliases) for setting, (variable, rendered, aliases) in OWNED.items()}
FLAGS = {flag: (setting, variable) for setting, (variable, flags) in MANAGED.items() for flag in flags}
# environment variable -> (setting, the variable that sets it)
ENVIRONMENT = {name: (setting, OWNED[setting][0]) for setting, names in OWNED_ENVIRONMENT.items() for name in names}
# flag or environment variable -> why the role refuses it
EXPOSING = {name: why for flags, names, why in EXPOSURE for name in (*flags, *names)}


def flag_name(arg):
    """The flag an argument sets, as llama-server reads it ('--api_key=x' -> '--api-key'); None for a value."""
    text = arg.strip()
    if not text.startswith("-") or re.fullmatch(r"-[0-9.]+", text):
        return None  # a value (negative numbers included)
    name = re.split(r"[=\s]", text, maxsplit=1)[0]
    return name.replace("_", "-") if name.startswith("--") else name


def problems(args, variable="llama_server_extra_args"):
    """One message per entry of args that sets a flag the role owns or one in EXPOSURE, or that is not one
    argument (a flag and its value in one entry, '--flag=value'); [] when none does.

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
        written = re.split(r"[=\s]", arg.strip(), maxsplit=1)[0]
        if name in FLAGS:
            setting, owner = FLAGS[name]
            found.append(f"{variable}[{index}]: '{written}' sets the {setting}, which the role manages: "
                         f"set {owner} instead")
        elif name in EXPOSING:
            found.append(f"{variable}[{index}]: '{written}' {EXPOSING[name]}; the role does not manage it, "
                         "so it is refused")
        elif name and written != arg:
            # systemd passes each entry as one argument; llama-server would stop at start on '--flag value'.
            found.append(f"{variable}[{index}]: '{written}' and its value must be two entries, one argument "
                         f"each (e.g. ['{written}', '<value>'])")
    return found


def environment_problems(environment, variable="llama_server_environment"):
    """One message per variable of environment that sets what the role manages (llama-server reads LLAMA_ARG_*
    and a few other names as its flags) or an option in EXPOSURE; [] when none does. Values are never shown."""
    if not isinstance(environment, dict):
        return []  # the shape is validate.yml's check
    found = []
    for name in environment:
        key = str(name)
        # llama-server also reads LLAMA_ARG_NO_<X> for a flag that has a --no- form (common_arg::get_value_from_env).
        plain = key.replace("LLAMA_ARG_NO_", "LLAMA_ARG_", 1)
        for candidate in dict.fromkeys((key, plain)):
            if candidate in ENVIRONMENT:
                setting, owner = ENVIRONMENT[candidate]
                found.append(f"{variable}: {key} sets llama-server's {setting}, which the role manages: "
                             f"set {owner} instead")
                break
            if candidate in EXPOSING:
                found.append(f"{variable}: {key} {EXPOSING[candidate]}; the role does not manage it, so it is "
                             "refused")
                break
    return found
