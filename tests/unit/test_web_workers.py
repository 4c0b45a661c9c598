"""`bpm serve` runs one HTTP worker per CPU it may use, at least two, unless BPM_WEB_WORKERS says otherwise."""

import os
import subprocess
import sys

import pytest

from api.cli import web_workers


def workers_on_cpus(cpus: set[int]) -> int:
    """web_workers() in a process allowed to run only on `cpus`."""
    script = f"import os; os.sched_setaffinity(0, {cpus!r}); from api.cli import web_workers; print(web_workers())"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return int(done.stdout)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs os.sched_setaffinity (Linux)")
def test_one_per_cpu_and_never_fewer_than_two():
    assert workers_on_cpus({0}) == 2
    cpus = sorted(os.sched_getaffinity(0))
    assert workers_on_cpus(set(cpus)) == max(2, len(cpus))


def test_the_setting_wins_and_blank_means_the_default():
    assert web_workers("3") == 3
    assert web_workers(" 1 ") == 1
    assert web_workers("") == web_workers(None) == web_workers("  ")


@pytest.mark.parametrize("bad", ["0", "-2", "four", "2.5"])
def test_a_bad_setting_is_refused_by_name(bad):
    with pytest.raises(SystemExit, match="BPM_WEB_WORKERS must be a whole number"):
        web_workers(bad)
