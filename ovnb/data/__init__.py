"""Datasets. Every dataset yields the same sample format:

``{"image": uint8 [3, H, W], "mask": int64 [H, W] (255 = ignore), "caption": str,
  "classes": list[int] (class ids present), "id": str}``

Class ids index the dataset's ``class_names``; normalisation and resizing belong to the encoder
that consumes the image, not to the dataset. Panoptic samples (the toy world's, ``panoptic``) add
``"instances"`` (one id per thing instance) and, for real panoptic data, ``"segments"`` with
``"segments_info"`` (each segment's class and crowd flag).
"""

from .toy_world import IGNORE_INDEX, ToyWorld, splits, vocabulary

__all__ = ["IGNORE_INDEX", "ToyWorld", "splits", "vocabulary"]
