"""The llama-server unit's variables as the role builds them, for tests that render its template outside Ansible.

The template only joins the instance's command (module_utils/server_command.py): vars/main.yml templates the
role's variables into __llama_server_command_inputs and calls the cpu_llm.infra.llm_server_commands filter.
This does the same, with Ansible's Templar over the role's own vars file and the real filter.
"""

from pathlib import Path

import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar
from ansible_collections.cpu_llm.infra.plugins.filter.llm_server_instances import llm_server_commands
from ansible_collections.cpu_llm.infra.plugins.module_utils import server_instances
from role_vars import trusted

ROLE = Path(__file__).resolve().parents[2] / "roles" / "llama_server"
VARS_FILE = ROLE / "vars" / "main.yml"
VARS = yaml.safe_load(VARS_FILE.read_text())


def with_commands(variables, host="llm-1"):
    """variables plus __llama_server_instance (the single layout's unless given) and __llama_server_commands."""
    variables = dict(variables)
    [single] = server_instances.instances("single", host, variables["llama_server_port"])
    instance = variables.setdefault("__llama_server_instance", single)
    inputs = Templar(loader=DataLoader(), variables=variables).template(
        trusted(VARS["__llama_server_command_inputs"]))
    variables["__llama_server_commands"] = llm_server_commands([instance], inputs)
    return variables
