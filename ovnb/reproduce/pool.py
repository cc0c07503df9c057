"""Independent trainings in parallel processes (the toy profile's seeds on a small CPU).

A chapter's ``Runner`` trains many small, independent models (configurations x folds x seeds).
On a CPU, one process per core with one torch thread each does about twice the work of one
process with two threads (small kernels scale poorly across threads), so ``WorkerPool`` runs a
runner's jobs in ``workers`` spawned processes. Each process builds its own runner once (from a
picklable ``factory``) and keeps it, with its encoders and datasets, for every job it is given.
Results travel through the run directories on disk, as between notebooks, so a job returns
nothing but may raise; the first error is raised in the caller with the worker's traceback.
"""

from __future__ import annotations

import concurrent.futures as futures
import multiprocessing
from typing import Callable

_RUNNER = None


def _start(factory: Callable[[], object]) -> None:
    import torch

    global _RUNNER
    torch.set_num_threads(1)
    _RUNNER = factory()


def _call(method: str, args: tuple) -> None:
    getattr(_RUNNER, method)(*args)


class WorkerPool:
    """``workers`` processes, each holding the runner that ``factory()`` builds."""

    def __init__(self, factory: Callable[[], object], workers: int):
        if workers < 2:
            raise ValueError(f"a worker pool needs at least 2 workers, got {workers}")
        self.workers = workers
        self.executor = futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                                    initializer=_start, initargs=(factory,))

    def run(self, method: str, jobs: list[tuple], description: str = "runs", needs=None) -> None:
        """Call ``runner.<method>(*job)`` for every job, at most ``workers`` at a time, in the order
        given. ``needs(job)``: the jobs (of ``jobs``) that must finish before ``job`` starts; a job is
        handed to a process as soon as they have, so no process idles while work is ready."""
        from tqdm.auto import tqdm

        jobs = list(jobs)
        index = {job: i for i, job in enumerate(jobs)}
        waiting = {i: {index[n] for n in (needs(job) if needs else ()) if n in index} for i, job in enumerate(jobs)}
        running: dict = {}
        finished: set[int] = set()

        def submit_ready():
            for i in [i for i, wait in waiting.items() if wait <= finished]:
                del waiting[i]
                running[self.executor.submit(_call, method, jobs[i])] = i

        bar = tqdm(total=len(jobs), leave=False, desc=f"{description} on {self.workers} processes")
        try:
            submit_ready()
            while running:
                done, _ = futures.wait(running, return_when=futures.FIRST_COMPLETED)
                for f in done:
                    f.result()
                    finished.add(running.pop(f))
                    bar.update()
                submit_ready()
            if waiting:
                raise RuntimeError(f"jobs wait on each other: {[jobs[i] for i in waiting]}")
        except BaseException:
            for f in running:
                f.cancel()
            raise
        finally:
            bar.close()

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
