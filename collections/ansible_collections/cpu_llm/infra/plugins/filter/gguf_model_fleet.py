"""Filter gguf_model_fleet: thin Ansible glue over module_utils/fleet.py.

Its documentation is the adjacent gguf_model_fleet.yml (ansible-doc reads it).
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.cpu_llm.infra.plugins.module_utils import fleet


def gguf_model_fleet(declarations, me):
    if not isinstance(declarations, dict):
        raise AnsibleFilterError("gguf_model_fleet: expects {host: declaration} of the play's hosts")
    try:
        return fleet.plan(dict(declarations), me)
    except fleet.DownloadSourceError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule:
    def filters(self):
        return {"gguf_model_fleet": gguf_model_fleet}
