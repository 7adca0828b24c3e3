"""Import a Python program a role ships in its files/ (it runs on the managed host, not as a plugin)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load(role, name):
    """roles/<role>/files/<name>.py as a module named <name>."""
    path = ROOT / "roles" / role / "files" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
