"""The fleet plans site.yml's first play sets on the servers (its "Plan what this server runs" task), made by the
same function from test inventories, for tests that run a gateway role or template without site.yml."""

from pathlib import Path

import yaml
from ansible_collections.cpu_llm.infra.plugins.module_utils import fleet_plan

ROOT = Path(__file__).resolve().parents[2]
# The llama_server role's default port, as a server that does not set llama_server_port gets it.
DEFAULT_PORT = yaml.safe_load((ROOT / "roles" / "llama_server" / "defaults" / "main.yml").read_text())[
    "llama_server_port"]


def plan(host, values):
    """The llm_server_plan of inventory host ``host`` whose variables are ``values``."""
    return fleet_plan.server_plan(
        host, values.get("llama_server_instances", "single"), values.get("llama_server_port", DEFAULT_PORT),
        values.get("llama_server_threads", 8), values.get("llm_hardware"),
        values.get("llm_gateway_backend_address") or values.get("ansible_host"),
        values.get("llm_gateway_backend_maxconn"), values.get("llama_server_host", "127.0.0.1"),
        bool(values.get("llama_server_api_key")))


def with_plans(inventory):
    """{host: values} with each host's llm_server_plan added, as the input play leaves them."""
    return {host: {**values, "llm_server_plan": plan(host, values)} for host, values in inventory.items()}
