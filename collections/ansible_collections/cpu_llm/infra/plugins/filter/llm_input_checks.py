"""Filters for the roles' validate.yml: thin Ansible glue over module_utils/input_checks.py,
server_args.py, rpc_addresses.py and systemd_syntax.py.

Each filter's documentation is the adjacent <filter name>.yml (ansible-doc reads it). The check
filters return a list of messages (empty: fine), each naming the variable; validate.yml asserts
the list is empty and shows it.
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.cpu_llm.infra.plugins.module_utils import (
    host_ports,
    input_checks,
    llm_hardware,
    path_ownership,
    rpc_addresses,
    server_args,
    systemd_syntax,
)


def systemd_quote(value, kind="word"):
    """kind 'word': one command-line argument; 'text': free text of a setting (Description=, User=)."""
    try:
        if kind == "word":
            return systemd_syntax.quote_word(value)
        if kind == "text":
            return systemd_syntax.quote_text(value)
    except systemd_syntax.UnitValueError as exc:
        raise AnsibleFilterError(f"systemd_quote: {exc}") from exc
    raise AnsibleFilterError(f"systemd_quote: kind must be 'word' or 'text', got {kind!r}")


def llm_server_args_check(args, variable="llama_server_extra_args"):
    return server_args.problems(args, variable)


def llm_server_environment_check(environment, variable="llama_server_environment"):
    return server_args.environment_problems(environment, variable)


def llm_path_check(value, name, kind="file", required=True):
    return input_checks.path(name, value, kind=kind, required=required)


def llm_url_check(value, name, schemes=("http", "https"), credentials_hint=None, allow_scp_form=False):
    return input_checks.url(name, value, tuple(schemes), credentials_hint, allow_scp_form)


def llm_physical_cores(facts):
    """Physical cores over all sockets (module_utils/llm_hardware.py): every role's default thread count."""
    cores = llm_hardware.physical_cores(facts if isinstance(facts, dict) else {})
    if cores is None:
        raise AnsibleFilterError("llm_physical_cores: the facts have no processor_cores and processor_count "
                                 "(gather the hardware facts, or set the thread count)")
    return cores


def llm_threads_check(value, name, facts):
    logical = (facts or {}).get("processor_nproc") or (facts or {}).get("processor_vcpus")
    if not logical:
        raise AnsibleFilterError(f"llm_threads_check: the facts have no processor_nproc to check {name} against")
    return input_checks.threads(name, value, int(logical))


def llm_numbers_check(values, fractions=False):
    """{variable: [value, lowest or none, highest or none, what it counts]} -> messages (input_checks.whole_number,
    or input_checks.number with fractions=true)."""
    if not isinstance(values, dict) or not all(isinstance(v, (list, tuple)) and len(v) == 4 for v in values.values()):
        raise AnsibleFilterError("llm_numbers_check: expects {variable: [value, low, high, unit]}")
    check = input_checks.number if fractions else input_checks.whole_number
    return [msg for name, (value, low, high, unit) in values.items() for msg in check(name, value, low, high, unit)]


def llm_vulkan_headers_check(installed, candidate, minimum, package):
    return input_checks.vulkan_headers(installed, candidate, int(minimum), package)


def llm_choice_check(value, name, choices):
    return input_checks.choice(name, value, list(choices))


def llm_account_check(passwd, name, user, group, group_entry=None):
    return input_checks.service_account(name, user, passwd, group, group_entry)


def llm_host_check(value, name):
    return input_checks.host(name, value)


def llm_secret_check(value, name, min_length, max_length, required=False):
    return input_checks.secret(name, value, int(min_length), int(max_length), required)


def llm_hardware_overrides_check(value, name="llm_hardware_overrides"):
    return input_checks.hardware_overrides(name, value)


def llm_text_check(values):
    if not isinstance(values, dict):
        raise AnsibleFilterError("llm_text_check: expects a dict {variable name: value}")
    return input_checks.texts(values)



def llm_listen_address_check(value, name, host_addresses, ipv4_only=True):
    return rpc_addresses.listen_address(name, value, list(host_addresses or []), bool(ipv4_only))


def llm_rpc_loopback_head_check(address, worker, head, same_machine):
    return rpc_addresses.loopback_head(address, worker, head, bool(same_machine))


def llm_allowed_sources_check(values, name):
    return rpc_addresses.allowed_sources(name, values)


def llm_rpc_endpoints_check(values, name="llama_server_rpc_workers"):
    return rpc_addresses.rpc_endpoints(name, values)


def llm_allowed_networks(values):
    problems = rpc_addresses.allowed_sources("allowed sources", values)
    if problems:
        raise AnsibleFilterError("llm_allowed_networks: " + " ".join(problems))
    return rpc_addresses.source_networks(values)


def llm_path_variables(roles):
    """The variables holding the paths of these roles (module_utils/path_ownership.py), for a vars lookup."""
    return path_ownership.variables(roles)


def llm_path_conflicts(values, roles, host):
    """Messages for paths of the roles one host runs that would collide (module_utils/path_ownership.py)."""
    if not isinstance(values, dict) or not isinstance(roles, list):
        raise AnsibleFilterError(f"llm_path_conflicts: expected {{variable: path}} and a list of roles, got {values!r}")
    return path_ownership.conflicts(host, roles, values)


def llm_port_conflicts(listeners, host):
    """Messages for the project's listeners on one host that would take the same port (module_utils/host_ports.py)."""
    if not isinstance(listeners, list) or not all(isinstance(entry, dict) for entry in listeners):
        raise AnsibleFilterError(f"llm_port_conflicts: expected a list of listeners, got {listeners!r}")
    try:
        return host_ports.conflicts(host, listeners)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"llm_port_conflicts: {exc}") from exc


class FilterModule:
    def filters(self):
        return {
            "llm_port_conflicts": llm_port_conflicts,
            "llm_path_variables": llm_path_variables,
            "llm_path_conflicts": llm_path_conflicts,
            "systemd_quote": systemd_quote,
            "llm_server_args_check": llm_server_args_check,
            "llm_server_environment_check": llm_server_environment_check,
            "llm_path_check": llm_path_check,
            "llm_url_check": llm_url_check,
            "llm_host_check": llm_host_check,
            "llm_account_check": llm_account_check,
            "llm_physical_cores": llm_physical_cores,
            "llm_threads_check": llm_threads_check,
            "llm_numbers_check": llm_numbers_check,
            "llm_choice_check": llm_choice_check,
            "llm_vulkan_headers_check": llm_vulkan_headers_check,
            "llm_secret_check": llm_secret_check,
            "llm_hardware_overrides_check": llm_hardware_overrides_check,
            "llm_rpc_loopback_head_check": llm_rpc_loopback_head_check,
            "llm_text_check": llm_text_check,
            "llm_listen_address_check": llm_listen_address_check,
            "llm_allowed_sources_check": llm_allowed_sources_check,
            "llm_rpc_endpoints_check": llm_rpc_endpoints_check,
            "llm_allowed_networks": llm_allowed_networks,
        }
