"""Filter llm_bios_audit: thin Ansible glue over module_utils/bios_audit.py."""

from ansible.errors import AnsibleFilterError
from ansible_collections.cpu_llm.infra.plugins.module_utils import bios_audit as _audit

DOCUMENTATION = r"""
name: llm_bios_audit
short_description: What only the BIOS or the hardware can fix, with the action to take
description:
  - Reads the llm_hardware fact (with its per-slot dimms) and reports empty memory channels by name
    (or by count where slot names do not tell), DIMMs below their rated speed, mixed DIMM sizes,
    uneven sockets, NUMA nodes per socket (NPS/SNC), kernel NUMA balancing and SMT.
options:
  _input:
    description: ansible_facts.llm_hardware.
    type: dict
    required: true
"""

EXAMPLES = r"""
audit: "{{ llm_hardware | cpu_llm.infra.llm_bios_audit }}"
"""

RETURN = r"""
_value:
  description: Findings, warnings first; each has check, severity (warning/info), seen and action.
  type: list
  elements: dict
"""


def llm_bios_audit(hardware):
    try:
        return _audit.audit(hardware)
    except ValueError as exc:
        raise AnsibleFilterError(f"llm_bios_audit: {exc}") from exc


class FilterModule:
    def filters(self):
        return {"llm_bios_audit": llm_bios_audit}
