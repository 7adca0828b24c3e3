#!/usr/bin/python
"""Module llm_haproxy_server: drain, ready or read one HAProxy server through the runtime socket (see DOCUMENTATION)."""

DOCUMENTATION = r"""
module: llm_haproxy_server
short_description: Drain an HAProxy backend server until its requests finish, or put it back once it is healthy
description:
  - Talks to HAProxy's runtime API (the admin-level C(stats socket)) on the gateway. It reads the server's
    administrative state from C(show servers state) and its current requests and health from C(show stat),
    and sets the state with C(set server <backend>/<server> state ...).
  - I(state=drain) stops new requests to the server (health checks go on) and waits until the requests
    it is serving (C(scur)) and its own queue (C(qcur)) are 0, at most I(timeout) seconds. Used before a
    rolling upgrade restarts llama-server, so no generation is cut.
  - I(state=ready) puts the server back and waits until its health checks pass (status C(UP)). After a
    restart HAProxy sends it nothing before its checks saw C(/health) answer 200 I(rise) times.
  - I(state=maint) stops all traffic and the health checks; waits like drain.
  - Without I(state) it only reads. The state lives in the running HAProxy only; a reload or restart
    starts every server ready again.
  - Check mode reads and reports what would change, without setting or waiting.
options:
  socket:
    description: The runtime API's UNIX socket (C(stats socket ... level admin) in haproxy.cfg).
    type: path
    default: /run/haproxy/admin.sock
  backend:
    description: The backend's name in haproxy.cfg.
    type: str
    required: true
  server:
    description: The server's name in that backend.
    type: str
    required: true
  state:
    description: Administrative state to set; omitted, nothing is changed.
    type: str
    choices: [ready, drain, maint]
  wait:
    description: Wait until the server is drained (drain, maint) or up (ready).
    type: bool
    default: true
  timeout:
    description: Seconds to wait at most.
    type: int
    default: 600
  interval:
    description: Seconds between readings while waiting.
    type: float
    default: 1
  fail_on_timeout:
    description:
      - Fail when the wait times out. When false the module returns C(timed_out=true) and a warning
        (for drain, the requests still running will be cut by whatever comes next).
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Drain llm-1 at the gateway, waiting up to 15 minutes for its generations to finish
  cpu_llm.infra.llm_haproxy_server:
    backend: llm_servers
    server: llm-1
    state: drain
    timeout: 900
  delegate_to: gateway-1

- name: Put llm-1 back once the gateway's health checks pass
  cpu_llm.infra.llm_haproxy_server:
    backend: llm_servers
    server: llm-1
    state: ready
    timeout: 60
  delegate_to: gateway-1

- name: Read the state only
  cpu_llm.infra.llm_haproxy_server:
    backend: llm_servers
    server: llm-1
  register: llm_1_at_gateway
"""

RETURN = r"""
state:
  description: Administrative state after the call (in check mode, the one that would be set).
  returned: always
  type: str
  sample: drain
previous_state:
  description: Administrative state before the call (ready, drain or maint).
  returned: always
  type: str
  sample: ready
reasons:
  description: Why the server is in drain or maint (e.g. forced drain, disabled in the configuration).
  returned: always
  type: list
  elements: str
status:
  description: HAProxy's status of the server (UP, DOWN, DRAIN, MAINT; 'DOWN 1/2' while checks change it).
  returned: always
  type: str
  sample: DRAIN
check_status:
  description: Result of the last health check (L7OK, L7STS for a non-200 answer, L4CON refused, ...).
  returned: always
  type: str
  sample: L7OK
sessions:
  description: Requests the server was serving at the last reading (show stat scur).
  returned: always
  type: int
  sample: 0
queued:
  description: Requests waiting in the server's own queue at the last reading (qcur).
  returned: always
  type: int
  sample: 0
waited:
  description: Seconds spent waiting.
  returned: always
  type: float
  sample: 12.0
timed_out:
  description: The wait ended at the timeout before the server was drained or up.
  returned: always
  type: bool
  sample: false
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.cpu_llm.infra.plugins.module_utils import haproxy_runtime as rt


def run(params, check_mode, runtime=rt, warn=None):
    """The module's work without AnsibleModule: returns (failed?, result dict). Tests call it directly."""
    path, backend, server, wanted = params["socket"], params["backend"], params["server"], params["state"]
    before = runtime.server_state(path, backend, server)
    result = {"changed": False, "previous_state": before["state"], "waited": 0.0, "timed_out": False}
    current = before
    if wanted and before["state"] != wanted:
        result["changed"] = True
        if check_mode:
            return False, {**result, **_public(before), "state": wanted}
        runtime.set_state(path, backend, server, wanted)
        current = runtime.server_state(path, backend, server)
    if wanted and params["wait"] and not check_mode:
        done = runtime.up if wanted == "ready" else runtime.drained
        current, result["waited"], result["timed_out"] = runtime.wait(
            lambda: runtime.server_state(path, backend, server), done, params["timeout"], params["interval"])
    result.update(_public(current))
    if result["timed_out"]:
        if wanted == "ready":
            what = (f"{backend}/{server} is not up after {params['timeout']} s: status {current['status']}, last check "
                    f"{current['check_status'] or 'none'}")
            if current["check_status"].startswith("L4"):
                what += (" (the gateway cannot connect: the node must listen on the address and port the gateway "
                         "uses, not only on loopback, and no firewall may drop it)")
        else:
            what = (f"{backend}/{server} still serves {current['sessions']} request(s) ({current['queued']} queued) "
                    f"after {params['timeout']} s of {wanted}")
        if params["fail_on_timeout"]:
            return True, {**result, "msg": what}
        if warn:
            warn(what + ("; going on: they will be cut" if wanted != "ready" else "; going on"))
    return False, result


def _public(state):
    return {key: state[key] for key in ("state", "reasons", "status", "check_status", "sessions", "queued")}


def main():
    module = AnsibleModule(
        argument_spec={
            "socket": {"type": "path", "default": "/run/haproxy/admin.sock"},
            "backend": {"type": "str", "required": True},
            "server": {"type": "str", "required": True},
            "state": {"type": "str", "choices": list(rt.STATES)},
            "wait": {"type": "bool", "default": True},
            "timeout": {"type": "int", "default": 600},
            "interval": {"type": "float", "default": 1.0},
            "fail_on_timeout": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    if module.params["timeout"] < 0 or module.params["interval"] <= 0:
        module.fail_json(msg="timeout must be >= 0 and interval > 0")
    try:
        failed, result = run(module.params, module.check_mode, warn=module.warn)
    except (rt.HaproxyError, ValueError) as exc:
        module.fail_json(msg=str(exc))
    if failed:
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
