"""Reading an ansible-playbook run made with the json stdout callback (ANSIBLE_STDOUT_CALLBACK=json)."""


def first_failures(result, hosts):
    """{host: (name of the first task that failed there, its result), or (None, None)} for each host."""
    first = {}
    for task in result["plays"][0]["tasks"]:
        for host, res in task["hosts"].items():
            if res.get("failed") and host not in first:
                first[host] = (task["task"]["name"], res)
    return {host: first.get(host, (None, None)) for host in hosts}
