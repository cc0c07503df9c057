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

    def run(self, method: str, jobs: list[tuple], description: str = "runs") -> None:
        """Call ``runner.<method>(*job)`` for every job, at most ``workers`` at a time."""
        from tqdm.auto import tqdm

        pending = [self.executor.submit(_call, method, job) for job in jobs]
        try:
            for done in tqdm(futures.as_completed(pending), total=len(pending), leave=False,
                             desc=f"{description} on {self.workers} processes"):
                done.result()
        except BaseException:
            for f in pending:
                f.cancel()
            raise

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
