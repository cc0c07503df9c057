"""The worker pool: jobs in parallel processes, a job handed out as soon as the jobs it needs finish."""

import functools

import pytest

from ovnb.reproduce.pool import WorkerPool


class Recorder:
    """A stand-in runner: ``job`` sleeps, then writes its name and start and end times to ``log``."""

    def __init__(self, log):
        self.log = log

    def job(self, name, seconds):
        import time

        start = time.time()
        time.sleep(seconds)
        if name == "bad":
            raise ValueError("bad job")
        with open(self.log, "a") as f:
            f.write(f"{name} {start} {time.time()}\n")


def test_a_job_starts_after_what_it_needs_and_the_others_do_not_wait(tmp_path):
    log = tmp_path / "log.txt"
    pool = WorkerPool(functools.partial(Recorder, str(log)), 2)
    try:
        slow, quick, after = ("slow", 1.0), ("quick", 0.1), ("after", 0.1)
        pool.run("job", [slow, after, quick], needs=lambda job: [slow] if job == after else [])
        times = {line.split()[0]: tuple(map(float, line.split()[1:])) for line in log.read_text().splitlines()}
        assert set(times) == {"slow", "quick", "after"}
        assert times["after"][0] >= times["slow"][1], "a job waits for the job it needs"
        assert times["quick"][0] < times["slow"][1], "a job that needs nothing runs beside the slow one"
        with pytest.raises(ValueError, match="bad job"):
            pool.run("job", [("bad", 0.0)])
    finally:
        pool.close()
