"""Each role's README variable table is generated from its argument spec and up to date."""

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_role_readmes_match_the_specs():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "role_docs.py"), "--check"], capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0, out.stderr


def test_every_default_is_in_the_spec_and_every_spec_option_documented():
    for role in sorted((ROOT / "roles").iterdir()):
        spec = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
        defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text()) or {}
        assert set(defaults) <= set(spec), f"{role.name}: defaults without a spec: {set(defaults) - set(spec)}"
        assert all(option.get("description") for option in spec.values()), role.name
