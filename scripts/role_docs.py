#!/usr/bin/env python3
"""Generate each role's README.md from meta/argument_specs.yml and defaults/main.yml.

  scripts/role_docs.py           write the READMEs
  scripts/role_docs.py --check   exit 1 when a README differs from what the specs give
"""

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "collections"))
from ansible_collections.cpu_llm.infra.plugins.module_utils.path_ownership import ROLE_PATHS  # noqa: E402

# The inventory group a role runs on, when not the servers (the example playbook names it).
HOSTS = {"llm_rpc_worker": "llm_rpc_workers"}


def render(role_dir):
    spec = yaml.safe_load((role_dir / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]
    defaults_file = role_dir / "defaults" / "main.yml"
    defaults = yaml.safe_load(defaults_file.read_text()) if defaults_file.exists() else {}
    defaults = defaults or {}
    lines = [f"# Role `{role_dir.name}`", "", spec["short_description"] + ".", ""]
    lines += [" ".join(spec.get("description", [])), ""] if spec.get("description") else []
    lines += ["Generated from `meta/argument_specs.yml` by `scripts/role_docs.py`; the reasons behind each",
              "default are the comments in `defaults/main.yml`.", "",
              "## Requirements", "",
              "Debian 12/13, Ubuntu 22.04/24.04 (apt) or EL 9 (dnf), systemd, root through `become`.", "",
              "## Role variables", "",
              "| variable | type | default | description |", "|---|---|---|---|"]
    for name, option in spec["options"].items():
        kind = option.get("type", "str") + (f" of {option['elements']}" if option.get("elements") else "")
        if option.get("choices"):
            kind += " (" + ", ".join(map(str, option["choices"])) + ")"
        if option.get("no_log"):
            default = "(secret)"
        elif name in defaults:
            default = "`" + yaml.safe_dump(defaults[name], default_flow_style=True, width=10**6).strip()
            default = default.removesuffix("\n...").removesuffix("...").strip() + "`"
        else:
            default = "required" if option.get("required") else "-"
        description = option.get("description", "")
        if isinstance(description, list):
            description = " ".join(description)
        lines.append(f"| `{name}` | {kind} | {default.replace('|', '&#124;')} | {description.replace('|', '&#124;')} |")
    exports_file = role_dir / "meta" / "exports.yml"
    exports = (yaml.safe_load(exports_file.read_text()) if exports_file.exists() else None) or {}
    lines += ["", "## Exports", "",
              "Facts this role sets for the roles after it (`meta/exports.yml`); other roles read nothing else",
              "of it.", ""]
    lines += ([f"- `{name}`: {text.strip()}" for name, text in exports.items()] or ["None."])
    lines += ["", "## Paths", "",
              "What this role creates, rewrites or removes, and what it only reads (`module_utils/path_ownership.py`;",
              "site.yml's first play refuses two roles of one host in one place, and the role refuses a file it did",
              "not write or a directory it did not create before changing it). Packages, accounts and systemd state",
              "aside, these are all the paths it changes.",
              ""]
    lines += ([f"- `{source.replace('|dirname', '')}` ({'its directory; ' if '|dirname' in source else ''}{access}): "
               f"{what}" for source, access, what in ROLE_PATHS.get(role_dir.name, ())] or ["None."])
    lines += ["", "## Example playbook", "", "```yaml", f"- hosts: {HOSTS.get(role_dir.name, 'llm_servers')}",
              "  become: true", "  roles:", f"    - {role_dir.name}", "```", "",
              "In this repository the roles run together from `site.yml`; see the top-level README.", ""]
    return "\n".join(lines)


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    for role_dir in sorted((ROOT / "roles").iterdir()):
        if not (role_dir / "meta" / "argument_specs.yml").exists():
            continue
        text, target = render(role_dir), role_dir / "README.md"
        if check:
            if not target.exists() or target.read_text() != text:
                stale.append(str(target.relative_to(ROOT)))
        else:
            target.write_text(text)
    if stale:
        sys.exit("out of date (run scripts/role_docs.py): " + ", ".join(stale))


if __name__ == "__main__":
    main()
