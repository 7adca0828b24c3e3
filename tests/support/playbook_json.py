"""Reading an ansible-playbook run made with the json stdout callback (ANSIBLE_STDOUT_CALLBACK=json)."""


def first_failures(result, hosts):
    """{host: (name of the first task that failed there, its result), or (None, None)} for each host."""
    first = {}
    for task in result["plays"][0]["tasks"]:
        for host, res in task["hosts"].items():
            if res.get("failed") and host not in first:
                first[host] = (task["task"]["name"], res)
    return {host: first.get(host, (None, None)) for host in hosts}


def run_plays(tmp, inventory, plays, forks=8):
    """The json callback's document of one local ansible-playbook run of `plays` over `inventory` (a dict in
    Ansible's YAML/JSON inventory form), with this repository's roles, collections and ansible.cfg."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[2]
    tmp = Path(tmp)
    (tmp / "hosts.json").write_text(json.dumps(inventory))
    (tmp / "play.yml").write_text(yaml.safe_dump(plays))
    env = dict(os.environ, ANSIBLE_CONFIG=str(root / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_ROLES_PATH=str(root / "roles"),
               ANSIBLE_COLLECTIONS_PATH=str(root / "collections"),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    out = subprocess.run(["ansible-playbook", str(tmp / "play.yml"), "-i", str(tmp / "hosts.json"), "-f", str(forks)],
                         cwd=root, env=env, capture_output=True, text=True, check=False, timeout=300)
    try:
        return json.loads(out.stdout)
    except json.JSONDecodeError:
        raise AssertionError(out.stderr[-2000:]) from None


def run_checks(tmp, hosts, tasks, name, common_vars=None):
    """first_failures() of one local ansible-playbook run of `tasks` over `hosts` ({host: its vars}).

    Each host is a case (a bad value, or a good one); the play runs them all at once, so a role's checks
    are exercised in one run instead of one per case. common_vars go to every host.
    """
    import sys

    inventory = {"all": {"vars": {**(common_vars or {}), "ansible_connection": "local",
                                  "ansible_python_interpreter": sys.executable}, "hosts": hosts}}
    result = run_plays(tmp, inventory, [{"name": name, "hosts": "all", "gather_facts": False, "tasks": tasks}])
    assert set(result["stats"]) == set(hosts), result["stats"]
    return first_failures(result, hosts)


def case_hosts(bad, good):
    """run_checks' hosts for {case: (vars, message)} bad cases and {case: vars} good ones."""
    return {**{f"bad-{k}": v[0] for k, v in bad.items()}, **{f"good-{k}": v for k, v in good.items()}}


def assert_refused(outcome, value, message):
    """A bad case failed at an input check (argument spec or a "Check ..." task) whose result names message."""
    import json

    task, res = outcome
    assert task is not None, f"{value} passed the checks"
    assert task.split(" : ")[-1].startswith(("Validating arguments", "Check ")), task
    assert message in json.dumps(res), res.get("msg")
