"""The test artifacts' host build shares the compiler cache with the llama_cpp role's build only
when it uses the role's CMake options and the role's build id as its directory name."""

from pathlib import Path

import prepare_artifacts  # tests/support (on the path through pytest.ini)
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar
from role_vars import trusted  # tests/support (on the path through pytest.ini)

ROLE = Path(__file__).resolve().parents[2] / "roles" / "llama_cpp"



def role_build_id(overrides=None):
    """The role's build id on a host like the test artifacts' (no GPU read: llama_cpp_backend auto is cpu)."""
    defaults = trusted(yaml.safe_load((ROLE / "defaults" / "main.yml").read_text()))
    role_vars = trusted(yaml.safe_load((ROLE / "vars" / "main.yml").read_text()))
    templar = Templar(loader=DataLoader(), variables={**defaults, **(overrides or {}), **role_vars})
    return templar.template(role_vars["__llama_cpp_build_id"]).strip()


def test_host_build_id_is_the_roles():
    options, build_id = prepare_artifacts.role_build()
    assert build_id == role_build_id()
    assert options == yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())["llama_cpp_cmake_options"]


def test_build_id_follows_the_options():
    # The comparison above can fail: another option list gives another id on the role's side.
    _, build_id = prepare_artifacts.role_build()
    assert role_build_id({"llama_cpp_cmake_options": ["-DGGML_NATIVE=OFF"]}) != build_id


def test_container_ccache_base_dir_is_the_role_prefix(tmp_path):
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    prepare_artifacts.share_ccache(tmp_path / "ccache")
    conf = (tmp_path / "ccache" / "ccache.conf").read_text()
    assert conf == f"base_dir = {defaults['llama_cpp_prefix']}\n"
