"""The health gate's three outcomes: healthy, crash-looping (stop early), silent past the timeout."""

from ansible_collections.cpu_llm.infra.plugins.modules.llm_wait_healthy import wait


class Clock:
    """A fake monotonic clock that sleep() advances, so the tests take no time."""

    def __init__(self):
        self.t = 100.0

    def now(self):
        return self.t

    def sleep(self, seconds):
        self.t += seconds


def run(probes, states, timeout=30, interval=1.0):
    clock, probes, states = Clock(), iter(probes), iter(states)
    return wait(lambda: next(probes), lambda: next(states), timeout, interval, clock.now, clock.sleep)


def test_healthy_after_a_few_polls():
    result = run([False, False, True], [("activating", 0), ("activating", 0), ("activating", 0)])
    assert result == {"ok": True, "msg": "", "seconds": 2.0, "crashed": False, "restarts": 0}


def test_a_restart_while_waiting_stops_early_as_a_crash():
    # systemd's NRestarts went 3 -> 4: the service died and was restarted, it will not load.
    result = run([False, False, False], [("activating", 3), ("active", 3), ("activating", 4)], timeout=600)
    assert result["ok"] is False and result["crashed"] is True and result["restarts"] == 1
    assert result["seconds"] == 1.0, "it must stop at the crash, not wait for the timeout"
    assert "crashed while loading" in result["msg"]


def test_a_failed_unit_is_a_crash_without_restarts():
    result = run([False], [("active", 0), ("failed", 0)])
    assert result["crashed"] is True and result["restarts"] == 0 and "state failed" in result["msg"]


def test_silence_until_the_timeout():
    polls = 6
    result = run([False] * polls, [("active", 0)] * (polls + 1), timeout=5, interval=1.0)
    assert result["ok"] is False and result["crashed"] is False
    assert result["seconds"] == 5.0 and "within 5 s (state active)" in result["msg"]


def test_a_unit_that_exited_cleanly_is_not_waited_for():
    result = run([False], [("active", 0), ("inactive", 0)], timeout=600)
    assert result["crashed"] is True and result["seconds"] == 0.0
