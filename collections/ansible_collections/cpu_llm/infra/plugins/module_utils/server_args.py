"""Which llama-server flags the llama_server role sets itself, so llama_server_extra_args may not.

Plain Python, no Ansible imports. The table is server_command.OWNED, the same one the command line is built
from: every flag the role renders for a setting, plus llama-server's other spellings of that setting (read from
common/arg.cpp at the pinned commit, llama_cpp_version 0c1e57098bba43ac29e6e3b677cdceebdd22334f) and older ones
(--mlock, --no-mmap) so a copy from an old guide is refused too.

llama-server parses its arguments this way (common_params_parse): an argument starting with "--" has
its '_' replaced by '-' first (--api_key is --api-key); "--flag=value" is not understood (it is an
unknown argument), but it is refused here too, naming the variable, rather than left to fail at
start. A flag repeated later wins over the role's, which is what would silently override the role.
"""

import re

from ansible_collections.cpu_llm.infra.plugins.module_utils.server_command import OWNED

# setting -> (the variable that sets it, llama-server's flags for it)
MANAGED = {setting: (variable, rendered + aliases) for setting, (variable, rendered, aliases) in OWNED.items()}
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
