"""The shared contract's input check: every method's ``segment(images, class_names)`` calls it first.

Bad input is refused here, the same way for every method, with a ``ValueError`` that names the bad
value and what would be right - instead of failing deep inside a model (``stack expects a non-empty
TensorList``) or silently returning NaN masks.

* ``images``: a ``torch.Tensor`` of shape ``[B, 3, H, W]`` with ``B, H, W >= 1``, dtype ``uint8``
  (0..255) or floating point (0..1) with every value finite.
* ``class_names``: a non-empty list (or tuple) of strings, none empty or only whitespace, no name twice.
"""

from __future__ import annotations

import torch


def check_images(images) -> torch.Tensor:
    """``images`` if it is a valid ``[B, 3, H, W]`` batch; otherwise a ``ValueError`` saying why."""
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"images must be a torch.Tensor of shape [B, 3, H, W], got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] != 3:
        hint = " (a single image: add the batch dimension with image[None])" if images.ndim == 3 else ""
        raise ValueError(f"images must have shape [B, 3, H, W], got {list(images.shape)}{hint}")
    if min(images.shape) < 1:
        raise ValueError(f"images must hold at least one image of at least 1x1 pixels, got shape {list(images.shape)}")
    if images.dtype == torch.uint8:
        return images
    if not images.dtype.is_floating_point:
        raise ValueError(f"images must be uint8 (0..255) or floating point (0..1), got dtype {images.dtype}")
    finite = torch.isfinite(images)
    if not bool(finite.all()):
        bad = (~finite).nonzero()[0].tolist()
        count = int((~finite).sum())
        raise ValueError(f"images hold {count} non-finite value(s) (NaN or inf), the first at index {bad} "
                         f"(value {images[tuple(bad)].item()}); every pixel must be a finite number")
    return images


def check_class_names(class_names) -> list[str]:
    """``class_names`` as a list if valid; otherwise a ``ValueError`` naming the bad entry."""
    if isinstance(class_names, str):
        raise ValueError(f"class_names must be a list of names, got the string {class_names!r}; "
                         f"write [{class_names!r}] for one class")
    if not isinstance(class_names, (list, tuple)):
        raise ValueError(f"class_names must be a list of strings, got {type(class_names).__name__}")
    if not class_names:
        raise ValueError("class_names is empty: give at least one class name, e.g. ['cat', 'grass']")
    names = list(class_names)
    for i, name in enumerate(names):
        if not isinstance(name, str):
            raise ValueError(f"class_names[{i}] must be a string, got {type(name).__name__} {name!r}")
        if not name.strip():
            raise ValueError(f"class_names[{i}] is {name!r}: every class name must contain a word")
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        key = name.strip()
        if key in seen:
            raise ValueError(f"class_names[{i}] = {name!r} repeats class_names[{seen[key]}]; each class must "
                             f"appear once (scores are per class)")
        seen[key] = i
    return names


def check_inputs(images, class_names) -> tuple[torch.Tensor, list[str]]:
    """Both checks of the contract ``segment(images, class_names)``."""
    return check_images(images), check_class_names(class_names)
