"""What a model costs: its parameters, the time of one call and the memory it peaks at.

* ``parameter_count(module, trainable=...)`` - distinct parameters (shared tensors counted once).
* ``Meter`` - times calls (``torch.cuda.synchronize`` around each on a GPU) and tracks the peak memory
  of the calls it wraps:

  - **GPU**: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` - every tensor the
    process holds on the device at the peak, the model's weights included;
  - **CPU** (Linux): the process's peak resident set (``VmHWM``), reset first by writing ``5`` to
    ``/proc/self/clear_refs``, minus the resident set before: the memory the calls added on top of
    what was loaded already. Free heap pages are handed back first (``malloc_trim``), or the calls
    would reuse them unseen. ``peak_mib`` adds the model's own parameter and buffer bytes, so that both
    devices report weights + working memory. Elsewhere (no ``/proc``) the peak is NaN.

Timing is wall-clock per call; ``median_s`` is robust to the first call's one-off costs (text
embeddings computed once per vocabulary, lazy initialisation), which ``first_s`` keeps apart.
"""

from __future__ import annotations

import math
import re
import statistics
import time
from contextlib import contextmanager
from pathlib import Path

import torch

MIB = 2 ** 20
_STATUS = Path("/proc/self/status")
_CLEAR = Path("/proc/self/clear_refs")


def parameter_count(module: torch.nn.Module, trainable: bool | None = None) -> int:
    """Parameters of ``module`` (each tensor once); ``trainable=True`` only those with
    ``requires_grad``, ``False`` only frozen ones, ``None`` all."""
    seen, total = set(), 0
    for p in module.parameters():
        if id(p) in seen or (trainable is not None and p.requires_grad != trainable):
            continue
        seen.add(id(p))
        total += p.numel()
    return total


def model_bytes(module: torch.nn.Module) -> int:
    """Bytes of ``module``'s parameters and buffers (each tensor once)."""
    seen, total = set(), 0
    for t in [*module.parameters(), *module.buffers()]:
        if id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()
    return total


def _status_kib(field: str) -> int | None:
    try:
        match = re.search(rf"{field}:\s+(\d+)\s*kB", _STATUS.read_text())
    except OSError:
        return None
    return int(match.group(1)) if match else None


def release_free_memory() -> None:
    """Hand the allocator's free pages back to the system (glibc ``malloc_trim``), so that memory a later
    call needs shows up as new resident pages instead of reusing pages freed earlier (which would make
    its working memory invisible). Does nothing where the C library has no ``malloc_trim``."""
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def reset_cpu_peak() -> bool:
    """Reset the process's peak resident set to the current one (after ``release_free_memory``); False
    where the system cannot."""
    release_free_memory()
    try:
        _CLEAR.write_text("5")
    except OSError:
        return False
    return _status_kib("VmHWM") is not None


class Meter:
    """Times the calls it wraps and the peak memory over all of them, on ``device``.

    >>> meter = Meter("cpu")
    >>> for image in images:
    ...     with meter.call():
    ...         scores = model.segment(image[None], names)
    >>> meter.median_s, meter.peak_mib(model)
    """

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.seconds: list[float] = []
        self._baseline_kib: int | None = None
        self._peak_kib: int | None = None
        self._cuda_peak: int | None = None
        self._started = False

    def _start(self) -> None:
        self._started = True
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        elif reset_cpu_peak():
            self._baseline_kib = _status_kib("VmRSS")

    @contextmanager
    def call(self):
        if not self._started:
            self._start()
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(self.device)
        t0 = time.perf_counter()
        try:
            yield self
        finally:
            if cuda:
                torch.cuda.synchronize(self.device)
            self.seconds.append(time.perf_counter() - t0)
            if cuda:
                self._cuda_peak = torch.cuda.max_memory_allocated(self.device)
            elif self._baseline_kib is not None:
                self._peak_kib = _status_kib("VmHWM")

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds) if self.seconds else math.nan

    @property
    def first_s(self) -> float:
        return self.seconds[0] if self.seconds else math.nan

    def added_mib(self) -> float:
        """Memory the calls added on top of what was held before the first (CPU), or the device's peak
        allocation (GPU); NaN where it cannot be read."""
        if self._cuda_peak is not None:
            return self._cuda_peak / MIB
        if self._peak_kib is None or self._baseline_kib is None:
            return math.nan
        return max(self._peak_kib - self._baseline_kib, 0) / 1024

    def peak_mib(self, module: torch.nn.Module | None = None) -> float:
        """Weights + working memory at the peak: the GPU's peak allocation as it is, the CPU's added
        peak plus ``module``'s parameter and buffer bytes."""
        if self.device.type == "cuda" or module is None:
            return self.added_mib()
        return self.added_mib() + model_bytes(module) / MIB
