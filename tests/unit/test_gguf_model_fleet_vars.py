"""The gguf_model role's fleet defaults as Ansible renders them: which host is the source, and its address."""

from pathlib import Path

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar
from role_vars import trusted  # tests/support (on the path through pytest.ini)

ROLE = Path(__file__).resolve().parents[2] / "roles" / "gguf_model"
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
HOSTVARS = {"llm-1": {"ansible_host": "10.0.0.1"}, "llm-2": {"ansible_host": "llm-2.example"}, "llm-3": {}}


def render(name, me, **inventory):
    """The variable `name` on host `me` of a play over llm-1..3, with these inventory settings."""
    variables = {**trusted(DEFAULTS), "inventory_hostname": me, "ansible_play_hosts_all": list(HOSTVARS),
                 "hostvars": HOSTVARS, **inventory}
    return Templar(loader=DataLoader(), variables=variables).template(variables[name]).strip()


@pytest.mark.parametrize("me", list(HOSTVARS))
def test_the_source_is_the_plays_first_host_on_every_host(me):
    assert render("gguf_model_fleet_source", me) == "llm-1"


@pytest.mark.parametrize("me", list(HOSTVARS))
def test_the_address_is_the_sources_ansible_host(me):
    assert render("gguf_model_fleet_address", me) == "10.0.0.1"


def test_a_source_without_ansible_host_is_reached_by_its_inventory_name():
    assert render("gguf_model_fleet_address", "llm-1", gguf_model_fleet_source="llm-3") == "llm-3"


@pytest.mark.parametrize(("me", "address"), [("llm-1", "10.0.0.1"), ("llm-2", "llm-2.example"), ("llm-3", "llm-3")])
def test_without_a_source_a_host_names_its_own_address(me, address):
    """A host with gguf_model_fleet_source '' may still be named as a source by others: its own address counts."""
    assert render("gguf_model_fleet_address", me, gguf_model_fleet_source="") == address
