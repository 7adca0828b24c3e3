"""Filters for the benchmark role: thin Ansible glue over module_utils/bench_report.py (and server_command.py's
reader of the command record a unit carries).

Each filter's documentation is the adjacent <filter name>.yml (ansible-doc reads it).
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.cpu_llm.infra.plugins.module_utils import bench_report, server_command


def _wrap(function):
    def call(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except (ValueError, KeyError, TypeError) as exc:
            raise AnsibleFilterError(f"{function.__name__}: {exc}") from exc
    return call


def report(raw):
    """raw: dict of build()'s keyword arguments."""
    return bench_report.build(**raw)


class FilterModule:
    def filters(self):
        return {
            "llm_server_record": _wrap(server_command.read_record),
            "llm_likwid_gbs": _wrap(bench_report.bandwidth_from_likwid),
            "llm_llama_bench": _wrap(bench_report.llama_bench_results),
            "llm_service_tps": _wrap(bench_report.service_tps),
            "llm_bench_report": _wrap(report),
            "llm_bench_markdown": _wrap(bench_report.markdown),
            "llm_bench_svg": _wrap(bench_report.svg),
        }
