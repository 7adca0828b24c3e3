#!/usr/bin/python
"""Module llm_owned_paths: refuse, read-only, paths a role would write or chmod that are not its own."""

DOCUMENTATION = r"""
module: llm_owned_paths
short_description: Check, read-only, that the paths a role is about to write or chmod are its own
description:
  - Read-only, supports check mode; a role's validate tasks call it before the role's first change.
  - A C(file) the role writes or removes may be absent, or be one the role wrote (its owner, group and mode,
    or its marker text in the first 64 KiB). A C(dir) the role creates with an owner, group and mode may be
    absent, or have those already; otherwise the role would be changing a directory it did not create.
  - A C(link) the role switches between versions may be absent or a symlink, never a file or directory.
  - The rules are module_utils/path_ownership.py's owned_problems; the roles' paths are listed there too.
  - Fails with one message per path the role must not touch (also in C(problems)), naming the variable.
options:
  paths:
    description: >-
      The paths, each a mapping of name (the variable, for the message), path, kind (file, dir or link), and what a
      path the role made has: owner, group, mode (octal string), marker (file only).
    type: list
    elements: dict
    required: true
author: cpu-llm-infra
"""

EXAMPLES = r"""
- name: Check that the API key file is the role's own
  cpu_llm.infra.llm_owned_paths:
    paths:
      - {name: llama_server_api_key_file, path: /etc/llama-server/api-key, kind: file, owner: root, group: llama,
         mode: "0640"}
"""

RETURN = r"""
problems: {description: One message per path the role must not touch, naming the variable, returned: always, type: list}
msg: {description: The messages joined, when there are any (the module then fails), returned: failure, type: str}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.cpu_llm.infra.plugins.module_utils.path_ownership import owned_problems

KINDS = ("file", "dir", "link")


def main():
    module = AnsibleModule(argument_spec={"paths": {"type": "list", "elements": "dict", "required": True}},
                           supports_check_mode=True)
    items = module.params["paths"]
    for item in items:
        if not isinstance(item.get("name"), str) or not isinstance(item.get("path"), str) \
                or item.get("kind", "file") not in KINDS:
            module.fail_json(msg=f"llm_owned_paths: each path needs a name, a path and a kind ({', '.join(KINDS)}), "
                                 f"got {item!r}")
    problems = owned_problems([i for i in items if i["path"].startswith("/")])
    if problems:
        module.fail_json(msg=" ".join(problems), problems=problems)
    module.exit_json(changed=False, problems=[])


if __name__ == "__main__":
    main()
