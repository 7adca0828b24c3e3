"""Filter llm_rpc_worker_hardware: thin glue over module_utils/sizing.py's worker_hardware()."""

DOCUMENTATION = r"""
name: llm_rpc_worker_hardware
short_description: Each RPC worker's hardware for the sizing report's split
description:
  - For an RPC head's workers (preflight_rpc_workers, "host:port" each, in --rpc order), the hardware the sizing
    report splits the model over (C(llm_sizing)'s rpc_workers), one C({endpoint, hardware, how}) per worker.
  - Given entries (preflight_rpc_worker_hardware) are used as they are, one per worker in the same order. Without
    them, each worker's inventory host is the one whose llm_rpc_worker_endpoint is the endpoint, else whose name or
    ansible_host is its address; its llm_hardware facts are used, else Ansible's memtotal_mb and core counts.
    A worker with neither gets an empty hardware and a C(how) saying why; C(llm_sizing) then stops naming
    preflight_rpc_worker_hardware.
options:
  _input:
    description: The workers' endpoints ("host:port").
    type: list
    elements: str
    required: true
  given:
    description: One hardware dict per worker (llm_hardware facts, or at least memory_total_bytes); empty reads the
      inventory.
    type: list
    elements: dict
  hostvars:
    description: Ansible's hostvars, where the workers' facts are looked up.
    type: dict
"""

EXAMPLES = r"""
workers: "{{ preflight_rpc_workers | cpu_llm.infra.llm_rpc_worker_hardware(preflight_rpc_worker_hardware, hostvars) }}"
"""

RETURN = r"""
_value:
  description: "[{endpoint, hardware, how}] in the order of the endpoints; how says where the hardware came from."
  type: list
  elements: dict
"""

from ansible.errors import AnsibleError, AnsibleFilterError
from ansible_collections.cpu_llm.infra.plugins.module_utils import sizing

# What llm_rpc_worker_hardware reads of each inventory host: its address and endpoint, and its facts.
FACT_KEYS = ("llm_hardware", "memtotal_mb", "processor_cores", "processor_count")


def _inventory(hostvars):
    """{host: {ansible_host, endpoint, llm_hardware, memtotal_mb, ...}} from hostvars, for sizing.worker_hardware."""
    out = {}
    for name in hostvars:
        try:
            host = hostvars[name]
            facts = host.get("ansible_facts") or {}
            out[name] = {"ansible_host": host.get("ansible_host"), "endpoint": host.get("llm_rpc_worker_endpoint"),
                         **{key: facts.get(key) for key in FACT_KEYS}}
        except AnsibleError:  # a host whose variables do not template is not a worker we can read
            out[name] = {}
    return out


def llm_rpc_worker_hardware(endpoints, given=None, hostvars=None):
    """Each RPC worker's hardware: given (preflight_rpc_worker_hardware), else its inventory host's facts."""
    try:
        return sizing.worker_hardware(list(endpoints or []), list(given or []),
                                      _inventory(hostvars) if hostvars is not None else {})
    except (sizing.SizingError, TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"llm_rpc_worker_hardware: {exc}") from exc


class FilterModule:
    def filters(self):
        return {"llm_rpc_worker_hardware": llm_rpc_worker_hardware}
