"""Make the project's plain-Python plugin code importable in unit tests."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for sub in ("plugins/module_utils", "plugins/filter", "plugins/modules"):
    sys.path.insert(0, str(ROOT / sub))
