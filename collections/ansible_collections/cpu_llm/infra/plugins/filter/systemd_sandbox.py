"""The filter behind every unit's hardening block: thin Ansible glue over module_utils/systemd_sandbox.py.

Its documentation is the adjacent systemd_sandbox.yml (ansible-doc reads it).
"""

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible_collections.cpu_llm.infra.plugins.module_utils import systemd_sandbox as sandbox


def systemd_sandbox(parameters):
    if not isinstance(parameters, Mapping):
        raise AnsibleFilterError(f"systemd_sandbox: expected a mapping of parameters, got {type(parameters).__name__}")
    try:
        return sandbox.lines(**dict(parameters))
    except (TypeError, sandbox.SandboxError) as exc:
        raise AnsibleFilterError(f"systemd_sandbox: {exc}") from None


class FilterModule:
    def filters(self):
        return {"systemd_sandbox": systemd_sandbox}
