"""Filters for the llama_server role's instances and their command lines: thin Ansible glue over
module_utils/server_instances.py, module_utils/fleet_plan.py and module_utils/server_command.py.

Each filter's documentation is the adjacent <filter name>.yml (ansible-doc reads it).
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.cpu_llm.infra.plugins.module_utils import (
    fleet_plan,
    server_command,
    server_instances,
    systemd_syntax,
)


def llm_server_plan(host, mode, port, threads, hardware=None, address=None, maxconn=None, listen="127.0.0.1",
                    api_key=False):
    try:
        return fleet_plan.server_plan(host, mode, port, threads, hardware, address, maxconn, listen, api_key)
    except fleet_plan.PlanError as exc:
        raise AnsibleFilterError(f"llm_server_plan: {exc}") from None


def llm_server_instances_check(mode, port, threads, hardware=None, rpc_workers=(), backend="cpu", gpu_offload="auto"):
    try:
        nodes = server_instances.numa_nodes(hardware)
    except server_instances.InstancesError as exc:
        return [str(exc)]
    return server_instances.problems(mode, port, threads, nodes, list(rpc_workers or []), backend, gpu_offload)


def llm_server_retired(unit_files, wanted, port):
    try:
        return server_instances.retired(unit_files, wanted, port)
    except server_instances.InstancesError as exc:
        raise AnsibleFilterError(f"llm_server_retired: {exc}") from None


def llm_server_commands(instances, inputs):
    try:
        return server_command.commands(instances, inputs)
    except (KeyError, ValueError, TypeError, systemd_syntax.UnitValueError) as exc:
        raise AnsibleFilterError(f"llm_server_commands: {exc}") from None


class FilterModule:
    def filters(self):
        return {
            "llm_server_instances_check": llm_server_instances_check,
            "llm_server_plan": llm_server_plan,
            "llm_server_retired": llm_server_retired,
            "llm_server_commands": llm_server_commands,
        }
