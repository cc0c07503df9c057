"""The running environment: device choice, offline flags, and the report every notebook prints.

``report()`` is the first thing each notebook calls, so an executed copy always says which
versions, device, git commit, profile and seed produced its numbers; ``collect()`` returns the
same facts as a dict, which run records store next to every reproduced number.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

import torch

OFFLINE_FLAGS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
REPORTED_PACKAGES = ("torch", "torchvision", "open_clip_torch", "timm", "transformers", "numpy", "ovnb")


def device(prefer: str | None = None) -> torch.device:
    """The device to compute on: ``prefer`` if given, else CUDA, then Apple MPS, then CPU.

    ``prefer`` may be ``"auto"`` (the default order), ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or
    ``"mps"``; asking for an accelerator that is not there is an error, not a silent fallback.
    """
    if prefer in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(prefer)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {prefer!r} was requested but CUDA is not available; use 'auto' or 'cpu'")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RuntimeError(f"device {prefer!r} was requested but MPS is not available; use 'auto' or 'cpu'")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unknown device {prefer!r}; expected 'auto', 'cpu', 'cuda[:N]' or 'mps'")
    return dev


def set_offline(offline: bool = True) -> None:
    """Set (or clear) the Hugging Face offline flags for this process and its children."""
    for flag in OFFLINE_FLAGS:
        if offline:
            os.environ[flag] = "1"
        else:
            os.environ.pop(flag, None)


def is_offline(probe_host: str = "huggingface.co", timeout: float = 1.0) -> bool:
    """True when model hubs must not (flags set) or cannot (no route within ``timeout``) be reached."""
    if any(os.environ.get(flag, "").lower() in ("1", "true", "yes") for flag in OFFLINE_FLAGS):
        return True
    try:
        with socket.create_connection((probe_host, 443), timeout=timeout):
            return False
    except OSError:
        return True


def project_root() -> Path | None:
    """The checkout that holds this package (the folder with ``pyproject.toml``), if any."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").is_file() else None


def git_sha(short: bool = True) -> str | None:
    root = project_root()
    if root is None:
        return None
    cmd = ["git", "rev-parse", "--short" if short else "--verify", "HEAD"]
    try:
        out = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    sha = out.stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                           capture_output=True, text=True, timeout=5).stdout.strip()
    return sha + ("-dirty" if dirty else "")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def collect(profile: str | None = None, seed: int | None = None) -> dict:
    """The environment as a dict (what ``report`` prints and run records store)."""
    dev = device()
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in REPORTED_PACKAGES},
        "device": str(dev),
        "gpu": torch.cuda.get_device_name(0) if dev.type == "cuda" else None,
        "cpu_threads": torch.get_num_threads(),
        "offline": any(os.environ.get(flag) for flag in OFFLINE_FLAGS),
        "git_sha": git_sha(),
        "profile": profile,
        "seed": seed,
    }
    return info


def report(profile: str | None = None, seed: int | None = None, file=None) -> dict:
    """Print the environment (versions, device, GPU, git sha, profile, seed) and return it."""
    info = collect(profile, seed)
    file = file or sys.stdout
    rows = [("python", info["python"])]
    rows += [(name, version or "not installed") for name, version in info["packages"].items()]
    rows += [
        ("device", info["device"] + (f" ({info['gpu']})" if info["gpu"] else "")),
        ("cpu threads", info["cpu_threads"]),
        ("offline", info["offline"]),
        ("git sha", info["git_sha"] or "unknown"),
        ("profile", profile if profile is not None else "-"),
        ("seed", seed if seed is not None else "-"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}", file=file)
    return info
