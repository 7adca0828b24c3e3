"""Action llm_async_watch: wait for a background (async) task, printing progress lines in the play.

An Ansible task shows nothing until it ends; a multi-hour download or a long build must show that
it moves. This waits for the job like async_status with until/retries would, but between polls it
reads the job's progress (a download's status file, a build's log) on the host and prints one line
per interval through Ansible's display, so the lines reach the terminal and the log file.
Documentation: plugins/modules/llm_async_watch.py.
"""

import json
import shlex
import time

from ansible import constants
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible_collections.cpu_llm.infra.plugins.module_utils.progress_lines import (
    ProgressError,
    build_line,
    download_line,
    duration,
    merge,
)

RATE_WINDOW = 10.0  # seconds of readings the printed rate is averaged over

display = Display()

ARGS = {
    "job": {"type": "dict", "required": True},
    "progress_file": {"type": "str", "default": ""},
    "kind": {"type": "str", "choices": ["download", "build"], "default": "download"},
    "what": {"type": "str", "default": "the build"},
    "interval": {"type": "float", "default": 10.0},
    "quiet_seconds": {"type": "float", "default": 0.0},
    "timeout": {"type": "float", "default": 604800.0},
}
# Keys async_status adds to the job's own result; the caller gets the module's result without them.
ASYNC_KEYS = ("ansible_job_id", "started", "finished", "results_file", "erased", "stdout_lines", "stderr_lines")


def show(line):
    """Print a progress line where the play's output goes; to stderr under a JSON stdout callback,
    whose stdout must stay one parseable document."""
    callback = str(constants.config.get_config_value("DEFAULT_STDOUT_CALLBACK") or "")
    display.display(line, stderr="json" in callback)


class ActionModule(ActionBase):
    _VALID_ARGS = frozenset(ARGS)

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=ARGS)
        job = args["job"]
        if job.get("skipped"):
            return dict(result, skipped=True, msg="the job was skipped")
        if "ansible_job_id" not in job:  # ran in the foreground (poll > 0): its result is already here
            return dict(result, **job)
        if args["interval"] <= 0:
            return dict(result, failed=True,
                        msg=f"interval must be a positive number of seconds, got {args['interval']}")
        host = task_vars.get("inventory_hostname", "") if task_vars else ""
        self._async_dir = self._remote_expand_user(self.get_shell_option("async_dir", default="~/.ansible_async"))
        jid = job["ansible_job_id"]
        start = time.monotonic()
        next_line = start + max(args["quiet_seconds"], args["interval"])
        lines, pause, self._samples = [], 0.5, []
        while True:
            status = self._status(jid, task_vars)
            if status.get("finished"):
                break
            if status.get("failed"):  # the job is gone (its results file could not be read)
                return dict(result, failed=True, msg=f"lost track of background job {jid}: {status.get('msg', '')}")
            now = time.monotonic()
            if now - start > args["timeout"]:
                return dict(result, failed=True, ansible_job_id=jid,
                            msg=f"still running after {duration(args['timeout'])}; job {jid} goes on in the "
                                "background (watch it again, or re-run to resume)")
            if now >= next_line and not self._task.check_mode:
                line = self._line(args, host, now - start)
                if line:
                    show(line)
                    lines.append(line)
                next_line = now + args["interval"]
            # Short jobs (nothing to fetch) are seen at once; long ones are polled at the interval.
            time.sleep(min(pause, args["interval"], max(next_line - time.monotonic(), 0.1)))
            pause = min(pause * 2, args["interval"])
        self._execute_module(module_name="ansible.legacy.async_status", task_vars=task_vars,
                             module_args={"jid": jid, "mode": "cleanup", "_async_dir": self._async_dir})
        final = "" if self._task.check_mode else self._final_line(args, host, time.monotonic() - start, bool(lines))
        if final:
            show(final)
            lines.append(final)
        outcome = {k: v for k, v in status.items() if k not in ASYNC_KEYS}
        outcome["progress_lines"] = lines
        if outcome.get("failed") and args["kind"] == "build" and args["progress_file"]:
            outcome["log_tail"] = self._tail(args["progress_file"], 4000).splitlines()[-40:]
            outcome["msg"] = (f"{args['what']} failed (exit code {outcome.get('rc', '?')}); the last lines of "
                              f"{args['progress_file']} are in log_tail")
        return dict(result, **outcome)

    def _status(self, jid, task_vars):
        return self._execute_module(module_name="ansible.legacy.async_status", task_vars=task_vars,
                                    module_args={"jid": jid, "_async_dir": self._async_dir})

    def _tail(self, path, size=65536):
        if not path:
            return ""
        res = self._low_level_execute_command(f"tail -c {int(size)} {shlex.quote(path)}", sudoable=True)
        return res.get("stdout", "") if res.get("rc") == 0 else ""

    def _line(self, args, host, elapsed):
        if args["kind"] == "build":
            return build_line(self._tail(args["progress_file"], 4000), elapsed, host, args["what"])
        try:
            progress = json.loads(self._tail(args["progress_file"]) or "null")
            merged = merge(progress if isinstance(progress, list) else [progress])
        except (ValueError, TypeError, ProgressError):  # not written yet, or replaced while read: next time
            return ""
        if merged["state"] != "running":
            return ""  # all there (or failed): the final line follows
        now = time.monotonic()
        self._samples = [s for s in self._samples if now - s[0] <= RATE_WINDOW] + [(now, merged["bytes_done"])]
        (t0, d0), (t1, d1) = self._samples[0], self._samples[-1]
        rate = (d1 - d0) / (t1 - t0) if t1 > t0 else None
        return download_line(progress, host, rate_bytes_per_s=rate)

    def _final_line(self, args, host, elapsed, printed):
        if args["kind"] == "build":
            return f"{host}: {args['what']}: finished in {duration(elapsed)}" if printed else ""
        try:
            progress = json.loads(self._tail(args["progress_file"]) or "null")
            fetched = [p for p in (progress if isinstance(progress, list) else [progress])
                       if isinstance(p, dict) and (p.get("bytes_done") or 0) > (p.get("resumed_from") or 0)]
            return download_line(progress, host, final=True) if fetched or printed else ""
        except (ValueError, ProgressError):
            return ""
