"""Filters for the llm_gateway role: thin Ansible glue over module_utils/gateway_config.py.

Each filter's documentation is the adjacent <filter name>.yml (ansible-doc reads it). The check filters
return a list of messages (empty: fine), each naming the variable; validate.yml asserts the list is empty.
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.cpu_llm.infra.plugins.module_utils import gateway_config, server_instances


def llm_gateway_backends(hosts, hostvars, default_port=8080):
    try:
        return gateway_config.default_backends(hosts, hostvars, int(default_port))
    except (KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"llm_gateway_backends: {exc}") from exc


def llm_gateway_server_names(base, hostvars_of_node):
    try:
        return server_instances.server_names(base, hostvars_of_node)
    except server_instances.InstancesError as exc:
        raise AnsibleFilterError(f"llm_gateway_server_names: {exc}") from None


def llm_gateway_numa_unread(hosts, hostvars):
    return server_instances.needs_numa_nodes(hosts, hostvars)


def llm_gateway_backends_check(value, name="llm_gateway_backends"):
    return gateway_config.backends_problems(value, name)


def llm_gateway_api_keys_check(value, name="llm_gateway_api_keys"):
    return gateway_config.api_keys_problems(value, name)


def llm_gateway_path_check(value, name, required=True):
    return gateway_config.config_path_problems(value, name, required)


def llm_gateway_bind_check(value, name):
    return gateway_config.bind_address_problems(value, name)


class FilterModule:
    def filters(self):
        return {
            "llm_gateway_backends": llm_gateway_backends,
            "llm_gateway_backends_check": llm_gateway_backends_check,
            "llm_gateway_server_names": llm_gateway_server_names,
            "llm_gateway_numa_unread": llm_gateway_numa_unread,
            "llm_gateway_api_keys_check": llm_gateway_api_keys_check,
            "llm_gateway_path_check": llm_gateway_path_check,
            "llm_gateway_bind_check": llm_gateway_bind_check,
        }
