"""Reading prepared datasets: images, masks, and the error that says how to prepare what is missing.

Every dataset loader (``fewshot``, ``semseg``) reads through these, so a missing file always fails the
same way: a ``DatasetMissingError`` naming the path, the layout's documentation and the
``ovnb data prepare`` command that lays it out (and, in a notebook, ``PREPARE_DATA = True``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


class DatasetMissingError(FileNotFoundError):
    """A dataset (or part of it) is not where the loaders expect it; ``datasets`` names what
    ``ovnb.data.prepare`` must prepare and ``root`` where."""

    def __init__(self, message: str, datasets: tuple[str, ...] = (), root: Path | None = None):
        super().__init__(message)
        self.datasets, self.root = datasets, root


def require(path: Path, needs: tuple[str, ...], root: Path, what: str, prefix: str = "", layout: str = "") -> Path:
    """``path`` if it exists; otherwise a ``DatasetMissingError`` for the prepared datasets ``needs``."""
    if not path.exists():
        from .prepare import command

        raise DatasetMissingError(
            f"{prefix}{what} not found at {path}.\nExpected layout: see {layout} (module docstring).\n"
            f"Prepare it with: {command(list(needs), root)}\n(in a notebook: set PREPARE_DATA = True, or call "
            f"ovnb.data.prepare.prepare(name, {str(root)!r}) for each of {', '.join(needs)})", tuple(needs), Path(root))
    return path


def read_image(path: Path) -> torch.Tensor:
    """An RGB image as uint8 ``[3, H, W]``."""
    from PIL import Image

    with Image.open(path) as im:
        return torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


def read_mask(path: Path) -> torch.Tensor:
    """A single-channel label PNG (8 or 16 bits) as int64 ``[H, W]`` (its stored values, unchanged)."""
    from PIL import Image

    with Image.open(path) as im:
        return torch.from_numpy(np.asarray(im).astype(np.int64))
