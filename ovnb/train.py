"""One training loop for every trained method of the book.

* a finite schedule of ``iterations`` optimizer steps (the official Fusioner loop never stops);
* AdamW (or SGD with momentum), linear warmup then cosine decay of the learning rate, computed per iteration (DINO-style
  ``cosine_scheduler``, as the official Fusioner code), or detectron2's ``WarmupPolyLR``
  (``schedule="poly"``: ``lr (1 - t / T)^0.9``, the MaskFormer-based SimBaseline and FC-CLIP); optionally a cosine *increase* of the weight
  decay (official Fusioner: 0.01 -> 0.4); per-group ``"constant"`` schedules for parts that the
  official code trains with a fixed learning rate;
* gradient accumulation (the official code accumulates 32 single-image tasks per step);
* mixed precision on CUDA (bf16 where supported, else fp16 with a gradient scaler); fp32 elsewhere;
* tqdm progress;
* atomic checkpoints (written to a temporary file, then renamed) every ``checkpoint_every`` steps
  and at the end, and **exact resume**: the batch of step ``t`` must be a pure function of ``t``
  (``loss_fn(step, micro)`` draws its data from ``step_generator(seed, step)``), and the checkpoint
  holds the weights, the optimizer, the scaler and the RNG state, so an interrupted-and-resumed run
  ends with the same weights as an uninterrupted one (on CPU; ``tests/test_train.py``). The final
  checkpoint keeps the weights only: a finished run is never resumed, and AdamW's two moments would
  triple its size (Fusioner's paper-size module: 190 MB instead of 560 MB).

A run directory whose final checkpoint exists is not retrained: ``fit`` loads it and returns, so
notebooks that share a configuration share its training.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

CHECKPOINT = "checkpoint.pt"
SNAPSHOTS = "snapshots"


@dataclass
class TrainConfig:
    iterations: int
    lr: float = 1e-3
    min_lr: float = 2e-6
    warmup: int = 0
    weight_decay: float = 0.01
    weight_decay_end: float | None = None  # None: constant weight decay
    betas: tuple[float, float] = (0.9, 0.999)
    accumulation: int = 1
    amp: bool = True
    clip_grad: float | None = None
    checkpoint_every: int = 200
    seed: int = 0
    schedule: str = "cosine"  # "cosine" (warmup + cosine to min_lr), "poly" (warmup + (1 - t/T)^poly_power)
    # or "step" (warmup, then x gamma at each of ``milestones``: detectron2's WarmupMultiStepLR)
    poly_power: float = 0.9
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    optimizer: str = "adamw"  # "adamw" or "sgd" (momentum ``momentum``; detectron2's default solver)
    momentum: float = 0.9

    SCHEDULES = ("cosine", "poly", "step")
    OPTIMIZERS = ("adamw", "sgd")

    def __post_init__(self):
        if self.iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {self.iterations}")
        if not 0 <= self.warmup <= self.iterations:
            raise ValueError(f"warmup must lie in [0, iterations={self.iterations}], got {self.warmup}")
        if self.accumulation < 1:
            raise ValueError(f"accumulation must be >= 1, got {self.accumulation}")
        if self.schedule not in self.SCHEDULES:
            raise ValueError(f"schedule must be one of {self.SCHEDULES}, got {self.schedule!r}")
        if list(self.milestones) != sorted(self.milestones) or any(not 0 < m <= self.iterations for m in self.milestones):
            raise ValueError(f"milestones must be increasing steps in (0, iterations={self.iterations}], "
                             f"got {self.milestones}")
        if self.optimizer not in self.OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {self.OPTIMIZERS}, got {self.optimizer!r}")


def cosine_value(step: int, total: int, base: float, final: float, warmup: int = 0, warmup_from: float = 0.0) -> float:
    """Linear warmup from ``warmup_from`` to ``base`` over ``warmup`` steps, then cosine to ``final``
    at ``total``."""
    if step < warmup:
        return warmup_from + (base - warmup_from) * step / warmup
    span = max(total - warmup, 1)
    progress = min(max(step - warmup, 0) / span, 1.0)
    return final + 0.5 * (base - final) * (1 + math.cos(math.pi * progress))


def poly_value(step: int, total: int, base: float, power: float = 0.9, warmup: int = 0) -> float:
    """detectron2's ``WarmupPolyLR`` (warmup factor 1 after a linear ramp): ``base (1 - step/total)^power``."""
    if step < warmup:
        return base * step / warmup
    return base * (1.0 - step / total) ** power


def step_value(step: int, base: float, milestones=(), gamma: float = 0.1, warmup: int = 0) -> float:
    """detectron2's ``WarmupMultiStepLR`` with a linear warmup from 0 (FC-CLIP: warmup factor 1.0 over
    10 iterations, i.e. no ramp at all): ``base gamma^(number of milestones <= step)``."""
    if step < warmup:
        return base * step / warmup
    return base * gamma ** sum(1 for m in milestones if step >= m)


def learning_rate(step: int, config: "TrainConfig", base: float) -> float:
    """The learning rate of a group whose peak is ``base`` at ``step``, by ``config.schedule``."""
    if config.schedule == "poly":
        return poly_value(step, config.iterations, base, config.poly_power, config.warmup)
    if config.schedule == "step":
        return step_value(step, base, config.milestones, config.gamma, config.warmup)
    return cosine_value(step, config.iterations, base, config.min_lr, config.warmup)


def step_generator(seed: int, step: int, micro: int = 0) -> torch.Generator:
    """The random generator of one (micro-)step: data drawn from it make step ``t`` reproducible."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 131 + micro)


def default_param_groups(module: nn.Module) -> list[dict]:
    """Weights get weight decay; biases and norm parameters (1-D) do not (official ``get_params_groups``)."""
    decay, no_decay = [], []
    for p in module.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "decay": True}, {"params": no_decay, "decay": False}]
    return [g for g in groups if g["params"]]


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)  # {"step", "loss", "lr"} per optimizer step
    steps_run: int = 0  # steps run by this call
    resumed_from: int = 0
    wall_s: float = 0.0
    run_dir: str | None = None

    @property
    def final_loss(self) -> float:
        return self.history[-1]["loss"] if self.history else float("nan")


def _autocast(device: torch.device, enabled: bool):
    if enabled and device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype), dtype
    return torch.autocast(device.type, enabled=False), None


def save_atomic(payload, path: Path) -> None:
    """``torch.save`` through a temporary file: processes side by side never read half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def fit(module: nn.Module, loss_fn: Callable[[int, int], torch.Tensor], config: TrainConfig,
        run_dir: str | Path | None = None, param_groups: list[dict] | None = None,
        progress: bool = True, stop_after: int | None = None, description: str = "train",
        keep_every: int | None = None) -> TrainResult:
    """Train ``module``'s trainable parameters for ``config.iterations`` optimizer steps.

    ``loss_fn(step, micro)`` returns the loss of micro-batch ``micro`` of optimizer step ``step``.
    ``param_groups``: dicts with ``params`` and optionally ``lr`` (peak), ``decay`` (bool),
    ``schedule`` (``"constant"`` keeps the peak; otherwise ``config.schedule``). ``stop_after`` ends this call after that
    many total steps (an interruption, for tests and time-boxed runs); a later call resumes. ``keep_every``:
    also keep the weights of every that many steps as ``snapshots/step-<n>.pt`` (for a checkpoint-selection
    policy, ``snapshots``).
    """
    from tqdm.auto import tqdm

    run_dir = Path(run_dir) if run_dir is not None else None
    groups = param_groups or default_param_groups(module)
    torch_groups = []
    for g in groups:
        torch_groups.append({"params": g["params"], "lr": g.get("lr", config.lr),
                             "weight_decay": config.weight_decay if g.get("decay", True) else 0.0,
                             "peak_lr": g.get("lr", config.lr), "decay": g.get("decay", True),
                             "schedule": g.get("schedule", "config")})
    device = next(module.parameters()).device
    if config.optimizer == "sgd":
        optimizer = torch.optim.SGD(torch_groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    else:  # the fused kernel is the same update in one pass (5x faster than the per-tensor loop on a CPU)
        optimizer = torch.optim.AdamW(torch_groups, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay,
                                      fused=device.type in ("cpu", "cuda") or None)
    autocast, amp_dtype = _autocast(device, config.amp)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

    result = TrainResult(run_dir=str(run_dir) if run_dir else None)
    start = 0
    path = run_dir / CHECKPOINT if run_dir is not None else None
    if path is not None and path.is_file():
        state = torch.load(path, map_location=device, weights_only=False)
        saved = state["config"]
        if saved["iterations"] != config.iterations or saved["seed"] != config.seed:
            raise ValueError(f"{path} was written by a run with iterations={saved['iterations']}, "
                             f"seed={saved['seed']}; this run asks for iterations={config.iterations}, "
                             f"seed={config.seed}. Use another run directory or delete it.")
        module.load_state_dict(state["module"])
        if "optimizer" in state:  # an interrupted run: resume exactly where it stopped
            optimizer.load_state_dict(state["optimizer"])
            scaler.load_state_dict(state["scaler"])
            torch.set_rng_state(state["rng"])
            if device.type == "cuda" and state.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(state["cuda_rng"])
        start = state["step"]
        result.history = state["history"]
        result.resumed_from = start

    def checkpoint(step: int) -> None:
        if path is None:
            return
        payload = {"step": step, "module": module.state_dict(), "history": result.history, "config": asdict(config)}
        if step < config.iterations:  # a finished run never resumes: its optimizer state (2x the weights) is dropped
            payload.update(optimizer=optimizer.state_dict(), scaler=scaler.state_dict(), rng=torch.get_rng_state(),
                           cuda_rng=torch.cuda.get_rng_state() if device.type == "cuda" else None)
        save_atomic(payload, path)

    end = config.iterations if stop_after is None else min(config.iterations, stop_after)
    t0 = time.perf_counter()
    module.train()
    bar = tqdm(range(start, end), desc=description, disable=not progress or start >= end,
               initial=start, total=config.iterations, leave=False)
    for step in bar:
        for g in optimizer.param_groups:
            if g["schedule"] != "constant":
                g["lr"] = learning_rate(step, config, g["peak_lr"])
            if g["decay"] and config.weight_decay_end is not None:
                g["weight_decay"] = cosine_value(step, config.iterations, config.weight_decay, config.weight_decay_end)
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for micro in range(config.accumulation):
            with autocast:
                loss = loss_fn(step, micro) / config.accumulation
            scaler.scale(loss).backward()
            total += float(loss.detach())
        if config.clip_grad is not None:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(module.parameters(), config.clip_grad)
        scaler.step(optimizer)
        scaler.update()
        if not math.isfinite(total):
            raise FloatingPointError(f"loss became {total} at step {step}; lower the learning rate "
                                     f"(lr={config.lr}) or check the inputs")
        result.history.append({"step": step + 1, "loss": total, "lr": optimizer.param_groups[0]["lr"]})
        result.steps_run += 1
        if progress and (step + 1) % 10 == 0:
            bar.set_postfix(loss=f"{total:.4f}")
        done = step + 1
        if keep_every and run_dir is not None and (done % keep_every == 0 or done == config.iterations):
            save_atomic({"step": done, "module": module.state_dict()}, run_dir / SNAPSHOTS / f"step-{done:07d}.pt")
        if done % config.checkpoint_every == 0 or done == end:
            checkpoint(done)
    bar.close()
    module.eval()
    result.wall_s = time.perf_counter() - t0
    return result


def snapshots(run_dir: str | Path) -> dict[int, Path]:
    """The weights ``fit(keep_every=...)`` kept, by step (the last one is the final weights)."""
    folder = Path(run_dir) / SNAPSHOTS
    return {int(p.stem.split("-")[1]): p for p in sorted(folder.glob("step-*.pt"))} if folder.is_dir() else {}


def is_finished(run_dir: str | Path, iterations: int) -> bool:
    """Whether ``run_dir`` holds the final checkpoint of a run of ``iterations`` steps."""
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        return False
    return torch.load(path, map_location="cpu", weights_only=False)["step"] >= iterations
