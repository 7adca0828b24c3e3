#!/usr/bin/python
"""Documentation of the llm_async_watch action (the work is done on the controller: plugins/action)."""

DOCUMENTATION = r"""
module: llm_async_watch
short_description: Wait for a background task and print its progress in the play
description:
  - "Waits for a job started with C(async) and C(poll: 0) (as M(ansible.builtin.async_status) with
    C(until) would), and every I(interval) seconds prints one line per host through Ansible's display, so
    a person watching a long run sees it move (and the lines reach the log file)."
  - "I(kind=download): reads the status file of M(cpu_llm.infra.gguf_download) (C(llm-1: 212.4 / 404.4 GB,
    1.12 GB/s, ETA 2m51s); MB and MB/s below a GB), and ends with the average rate
    (C(llm-1: 404.4 GB in 6m25s, average 1.05 GB/s)) when it fetched anything."
  - "I(kind=build): reads the last C([ NN%] step) line of the build log (CMake's Makefile generator) and prints
    the stage and the time so far, after I(quiet_seconds) (a build that takes less prints nothing)."
  - Returns the job's own result (as if the task had run in the foreground), plus C(progress_lines); cleans up
    the job's status file on the host.
  - Check mode runs the job's own check.
options:
  job: {description: The registered result of the async task, type: dict, required: true}
  progress_file: {description: Path on the host of the download status file or the build log, type: str, default: ""}
  kind: {description: What the job does, type: str, choices: [download, build], default: download}
  what: {description: Name of the build in its lines, type: str, default: the build}
  interval: {description: Seconds between progress lines, type: float, default: 10.0}
  quiet_seconds: {description: Print nothing before this many seconds, type: float, default: 0.0}
  timeout: {description: Give up waiting after this many seconds (the job goes on), type: float, default: 604800.0}
author: cpu_llm.infra maintainers
"""

EXAMPLES = r"""
- name: Build in the background
  ansible.builtin.command:
    argv: [sh, -c, 'exec "$0" "$@" >/opt/build.log 2>&1', cmake, --build, /opt/build]
  async: 86400
  poll: 0
  register: build_job
  changed_when: true

- name: Wait for the build, printing its stage every 30 s once it has taken a minute
  cpu_llm.infra.llm_async_watch:
    job: "{{ build_job }}"
    kind: build
    what: building llama.cpp
    progress_file: /opt/build.log
    interval: 30
    quiet_seconds: 60
"""

RETURN = r"""
progress_lines: {description: The lines printed, returned: always, type: list, elements: str}
log_tail: {description: The last lines of the build log when the build failed, returned: on a failed build, type: list}
"""
