#!/usr/bin/python
"""Module llm_wait_healthy: wait for a service's health URL, failing fast if it crashes (see DOCUMENTATION)."""

DOCUMENTATION = r"""
module: llm_wait_healthy
short_description: Wait until a systemd service answers 200 on its health URL, or fail fast when it crashes
description:
  - Polls I(url) until it answers 200, up to I(timeout) seconds.
  - Watches the systemd unit meanwhile. When the service restarts (its NRestarts counter grows) or
    enters the failed state, it stops waiting at once, since a model that cannot load never turns healthy,
    and waiting out a timeout sized for a 300 GB load would only delay the rollback.
  - Read-only; in check mode it does nothing.
options:
  url: {description: Health URL, type: str, required: true}
  unit: {description: systemd unit to watch, type: str, required: true}
  timeout: {description: Seconds to wait at most, type: int, default: 300}
  interval: {description: Seconds between polls, type: float, default: 1}
"""

EXAMPLES = r"""
- name: Wait for llama-server
  cpu_llm.infra.llm_wait_healthy:
    url: http://127.0.0.1:8080/health
    unit: llama-server.service
    timeout: 900
"""

RETURN = r"""
seconds: {description: Seconds waited, returned: always, type: float}
crashed: {description: The service restarted or failed while waiting, returned: always, type: bool}
restarts: {description: Restarts seen while waiting, returned: always, type: int}
"""

import ssl
import time
import urllib.error
import urllib.request

from ansible.module_utils.basic import AnsibleModule


def unit_state(module, unit):
    rc, out, _ = module.run_command(["systemctl", "show", unit, "--property", "ActiveState,NRestarts"])
    state = dict(line.split("=", 1) for line in out.splitlines() if "=" in line) if rc == 0 else {}
    restarts = state.get("NRestarts", "0")
    return state.get("ActiveState", "unknown"), int(restarts) if restarts.isdigit() else 0


def healthy(url):
    context = ssl._create_unverified_context()  # loopback, possibly a self-signed certificate  # noqa: S323
    try:
        with urllib.request.urlopen(url, timeout=5, context=context) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def main():
    module = AnsibleModule(
        argument_spec={
            "url": {"type": "str", "required": True},
            "unit": {"type": "str", "required": True},
            "timeout": {"type": "int", "default": 300},
            "interval": {"type": "float", "default": 1.0},
        },
        supports_check_mode=True,
    )
    if module.check_mode:
        module.exit_json(changed=False, seconds=0, crashed=False, restarts=0)
    url, unit = module.params["url"], module.params["unit"]
    start = time.monotonic()
    _, restarts_before = unit_state(module, unit)
    while True:
        if healthy(url):
            module.exit_json(changed=False, seconds=round(time.monotonic() - start, 1), crashed=False, restarts=0)
        state, restarts = unit_state(module, unit)
        waited = round(time.monotonic() - start, 1)
        if restarts > restarts_before or state == "failed":
            module.fail_json(msg=f"{unit} crashed while loading (state {state}, {restarts - restarts_before} "
                                 f"restart(s) in {waited} s): it will not turn healthy", seconds=waited,
                             crashed=True, restarts=restarts - restarts_before)
        if waited >= module.params["timeout"]:
            module.fail_json(msg=f"{url} did not answer 200 within {module.params['timeout']} s (state {state})",
                             seconds=waited, crashed=False, restarts=restarts - restarts_before)
        time.sleep(module.params["interval"])


if __name__ == "__main__":
    main()
