"""Filters for the llm_gateway role: thin Ansible glue over module_utils/gateway_config.py.

Each filter's documentation is the adjacent <filter name>.yml (ansible-doc reads it). The check filters
return a list of messages (empty: fine), each naming the variable; validate.yml asserts the list is empty.
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.cpu_llm.infra.plugins.module_utils import fleet_plan, gateway_config


def llm_gateway_backends(plans, hosts, refused=()):
    try:
        return gateway_config.default_backends(list(hosts or []), list(plans or []), list(refused or []))
    except (KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"llm_gateway_backends: {exc}") from exc


def llm_gateway_server_names(base, plan=None):
    try:
        return fleet_plan.gateway_server_names(base, plan)
    except (KeyError, TypeError) as exc:
        raise AnsibleFilterError(f"llm_gateway_server_names: llm_server_plan is not a fleet plan ({exc})") from None


def llm_gateway_backends_check(value, name="llm_gateway_backends"):
    return gateway_config.backends_problems(value, name)


def llm_gateway_api_keys_check(value, name="llm_gateway_api_keys", backend_key=""):
    return gateway_config.api_keys_problems(value, name) + gateway_config.client_key_problems(value, backend_key)


def llm_gateway_exposure_check(plans, gateway_host, bind_address, client_keys):
    return gateway_config.exposure_problems(list(plans or []), gateway_host, bind_address, bool(client_keys))


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
            "llm_gateway_api_keys_check": llm_gateway_api_keys_check,
            "llm_gateway_exposure_check": llm_gateway_exposure_check,
            "llm_gateway_path_check": llm_gateway_path_check,
            "llm_gateway_bind_check": llm_gateway_bind_check,
        }
