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

import http.client
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
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError):
        return False


def wait(probe, state, timeout, interval, now=time.monotonic, sleep=time.sleep):
    """Poll probe() until it is true; stop early when the unit restarts or fails, or at the timeout.

    probe() -> bool (is /health 200); state() -> (ActiveState, NRestarts). Returns
    {ok, msg, seconds, crashed, restarts}; now and sleep are injectable for tests.
    """
    start = now()
    _, restarts_before = state()
    while True:
        if probe():
            return {"ok": True, "msg": "", "seconds": round(now() - start, 1), "crashed": False, "restarts": 0}
        active, restarts = state()
        waited = round(now() - start, 1)
        new_restarts = restarts - restarts_before
        # inactive: exited cleanly, which Restart=on-failure does not restart; it will not answer either.
        if new_restarts > 0 or active in ("failed", "inactive"):
            return {"ok": False, "seconds": waited, "crashed": True, "restarts": new_restarts,
                    "msg": f"crashed while loading (state {active}, {new_restarts} restart(s) in {waited} s): "
                           "it will not turn healthy"}
        if waited >= timeout:
            return {"ok": False, "seconds": waited, "crashed": False, "restarts": new_restarts,
                    "msg": f"did not answer 200 within {timeout} s (state {active})"}
        sleep(interval)


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
    result = wait(lambda: healthy(url), lambda: unit_state(module, unit), module.params["timeout"],
                  module.params["interval"])
    if result.pop("ok"):
        result.pop("msg")
        module.exit_json(changed=False, **result)
    subject = unit if result["crashed"] else url
    module.fail_json(msg=f"{subject} {result.pop('msg')}", **result)


if __name__ == "__main__":
    main()
