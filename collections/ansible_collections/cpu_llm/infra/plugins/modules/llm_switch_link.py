#!/usr/bin/python
"""Point a 'current' symlink at a version directory, atomically, and say what it pointed at before."""

DOCUMENTATION = r"""
module: llm_switch_link
short_description: Switch a "current" symlink to another version, atomically, reporting the previous target
description:
  - Makes I(link) a symlink to I(target). The new link is created beside the old one and renamed
    over it (rename(2) is atomic), so a reader (llama-server starting, a rollback) never sees a
    missing link.
  - Returns the previous and the new target, which is what a health gate needs to roll back;
    calling the module again with I(target) set to the returned C(previous) undoes the switch.
  - Refuses to replace anything that is not a symlink (a real file or directory at I(link)).
options:
  link:
    description: Absolute path of the symlink, e.g. C(/opt/llama.cpp/current).
    type: path
    required: true
  target:
    description: Absolute path the link must point at. It must exist, except in check mode.
    type: path
    required: true
  what:
    description: What the link selects (a label carried into the result, e.g. C(model)).
    type: str
    default: version
author: cpu-llm-infra
"""

EXAMPLES = r"""
- name: Switch to the new build
  cpu_llm.infra.llm_switch_link:
    link: /opt/llama.cpp/current
    target: /opt/llama.cpp/versions/0c1e57098bba-1a2b3c4d
    what: llama.cpp build
  register: switched

- name: Roll back
  cpu_llm.infra.llm_switch_link:
    link: "{{ switched.link }}"
    target: "{{ switched.previous }}"
  when: switched is changed and switched.previous
"""

RETURN = r"""
link: {description: The symlink's path., type: str, returned: always}
what: {description: The label given in I(what)., type: str, returned: always}
current: {description: Where the link points now (in check mode, where it would point)., type: str, returned: always}
previous: {description: Where it pointed before; empty when it did not exist., type: str, returned: always}
"""

import os

from ansible.module_utils.basic import AnsibleModule


def switch(link, target, check_mode):
    """(changed, previous): point link at target atomically unless it already does."""
    if os.path.lexists(link) and not os.path.islink(link):
        raise ValueError(f"{link} exists and is not a symlink; refusing to replace it")
    previous = os.readlink(link) if os.path.islink(link) else ""
    if previous and not os.path.isabs(previous):  # a link made by hand, relative to its directory
        previous = os.path.normpath(os.path.join(os.path.dirname(link), previous))
    if previous == target:
        return False, previous
    if not check_mode:
        if not os.path.isdir(target) and not os.path.isfile(target):
            raise ValueError(f"target {target} does not exist")
        tmp = f"{link}.new-{os.getpid()}"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(target, tmp)
        os.replace(tmp, link)
    return True, previous


def main():
    module = AnsibleModule(
        argument_spec={
            "link": {"type": "path", "required": True},
            "target": {"type": "path", "required": True},
            "what": {"type": "str", "default": "version"},
        },
        supports_check_mode=True,
    )
    link, target = module.params["link"], module.params["target"]
    for name in ("link", "target"):
        if not os.path.isabs(module.params[name]):
            module.fail_json(msg=f"{name} must be an absolute path, got {module.params[name]!r}")
    try:
        changed, previous = switch(link, target, module.check_mode)
    except (OSError, ValueError) as exc:
        module.fail_json(msg=f"cannot switch {link} to {target}: {exc}")
    module.exit_json(changed=changed, link=link, what=module.params["what"], current=target, previous=previous)


if __name__ == "__main__":
    main()
