"""Filters for the benchmark role: thin Ansible glue over module_utils/bench_report.py."""

from ansible.errors import AnsibleFilterError
from ansible_collections.cpu_llm.infra.plugins.module_utils import bench_report

DOCUMENTATION = r"""
name: llm_exec_start
short_description: The llama-server command line from a systemd unit
description:
  - Parses the ExecStart of C(systemctl cat llama-server) into numactl arguments, binary and options, so a
    benchmark runs with exactly the service's binary, model, threads and NUMA policy. The same file provides
    C(llm_likwid_gbs), C(llm_llama_bench), C(llm_service_tps), C(llm_bench_report), C(llm_bench_markdown)
    and C(llm_bench_svg).
options:
  _input:
    description: Text of the unit.
    type: str
    required: true
"""

EXAMPLES = r"""
service: "{{ unit.stdout | cpu_llm.infra.llm_exec_start }}"
"""

RETURN = r"""
_value:
  description: Dict with numactl (list), binary (str) and options (dict of llama-server options).
  type: dict
"""


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
            "llm_exec_start": _wrap(bench_report.parse_exec_start),
            "llm_likwid_gbs": _wrap(bench_report.bandwidth_from_likwid),
            "llm_llama_bench": _wrap(bench_report.llama_bench_results),
            "llm_service_tps": _wrap(bench_report.service_tps),
            "llm_bench_report": _wrap(report),
            "llm_bench_markdown": _wrap(bench_report.markdown),
            "llm_bench_svg": _wrap(bench_report.svg),
        }
