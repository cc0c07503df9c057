"""One-time environment set-up, run by ``make setup`` (``python -m ovnb.setup_env``).

PyPI's torchvision wheels are CUDA builds. Installed next to a CPU-only torch, their native
library cannot load, and ``import torchvision`` fails with
``RuntimeError: operator torchvision::nms does not exist``: torchvision's meta registrations
refer to ``torchvision::nms`` / ``torchvision::qnms``, which only the native library defines.
timm and open_clip import torchvision, so they fail too.

The fix is a start-up hook (a ``.pth`` file) that, the first time ``torchvision`` is imported,
defines those two operators in pure PyTorch through ``torch.library``. It is written into the
environment's ``site-packages`` **only if** ``import torchvision`` fails there; on Colab, on a
CUDA torch or with matching wheels nothing is installed. Nothing in ``ovnb``'s model code knows
about it. ``python -m ovnb.setup_env --remove`` takes it out again.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import sysconfig
from pathlib import Path

HOOK_MODULE = "_ovnb_torchvision_cpu_hook"
PTH_NAME = "ovnb-torchvision-cpu-hook.pth"

# The hook module's source. It is copied verbatim into site-packages, so it imports nothing from
# ovnb and does no work at interpreter start: it only installs an import finder that acts on the
# first ``import torchvision``.
HOOK_SOURCE = '''"""Installed by ``python -m ovnb.setup_env`` because torchvision's native library failed to
load next to this (CPU-only) torch. Defines torchvision::nms and torchvision::qnms in pure
PyTorch before torchvision is imported. Remove with ``python -m ovnb.setup_env --remove``."""
import sys


def _nms(dets, scores, iou_threshold):
    import torch

    if dets.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=dets.device)
    order = scores.argsort(descending=True)
    x1, y1, x2, y2 = dets.unbind(1)
    areas = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    keep = []
    suppressed = torch.zeros(len(order), dtype=torch.bool, device=dets.device)
    for rank, i in enumerate(order.tolist()):
        if suppressed[rank]:
            continue
        keep.append(i)
        rest = order[rank + 1:]
        xx1 = torch.maximum(x1[i], x1[rest])
        yy1 = torch.maximum(y1[i], y1[rest])
        xx2 = torch.minimum(x2[i], x2[rest])
        yy2 = torch.minimum(y2[i], y2[rest])
        inter = (xx2 - xx1).clamp(min=0) * (yy2 - yy1).clamp(min=0)
        iou = inter / (areas[i] + areas[rest] - inter)
        suppressed[rank + 1:] |= iou > iou_threshold
    return torch.tensor(keep, dtype=torch.long, device=dets.device)


def _define_ops():
    import torch

    try:
        torch.ops.torchvision.nms
        return  # the native library (or an earlier call) already defined it
    except (AttributeError, RuntimeError):
        pass
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.impl("nms", _nms, "CompositeExplicitAutograd")
    sys.modules[__name__]._lib = lib  # keep the library object alive


class _Finder:
    def find_spec(self, name, path=None, target=None):
        if name == "torchvision":
            sys.meta_path.remove(self)
            _define_ops()
        return None


sys.meta_path.insert(0, _Finder())
'''


def _site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def torchvision_imports(python: str = sys.executable) -> tuple[bool, str]:
    """Try ``import torchvision`` in a fresh interpreter; return (ok, error text)."""
    proc = subprocess.run(
        [python, "-c", "import torchvision, torchvision.transforms"],
        capture_output=True,
        text=True,
    )
    return proc.returncode == 0, proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""


def install_hook(target: Path | None = None) -> Path:
    target = target or _site_packages()
    (target / f"{HOOK_MODULE}.py").write_text(HOOK_SOURCE)
    (target / PTH_NAME).write_text(f"import {HOOK_MODULE}\n")
    return target / PTH_NAME


def remove_hook(target: Path | None = None) -> None:
    target = target or _site_packages()
    for name in (f"{HOOK_MODULE}.py", PTH_NAME):
        (target / name).unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--remove", action="store_true", help="remove the torchvision hook")
    args = parser.parse_args(argv)
    if args.remove:
        remove_hook()
        print("ovnb.setup_env: torchvision hook removed")
        return 0
    ok, err = torchvision_imports()
    if ok:
        print("ovnb.setup_env: torchvision imports natively; no hook needed")
        return 0
    if "torchvision::nms" not in err:
        print(f"ovnb.setup_env: import torchvision failed for another reason: {err}", file=sys.stderr)
        return 1
    path = install_hook()
    ok, err = torchvision_imports()
    if not ok:
        remove_hook()
        print(f"ovnb.setup_env: the CPU hook did not fix torchvision ({err}); removed it", file=sys.stderr)
        return 1
    print(f"ovnb.setup_env: torchvision's native library does not load with this torch; "
          f"installed the pure-PyTorch operator hook {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
