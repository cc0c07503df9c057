"""COCO 2014 images with HSNet's class-id masks, for COCO-20i and Table 5.

    ovnb data prepare coco2014 --root data

Result: ``data/COCO2014/{train2014,val2014}/*.jpg`` and
``data/COCO2014/annotations/{train2014,val2014}/*.png`` (class ids 1..80 in HSNet's order, 0 background).
The images come from cocodataset.org, the masks from HSNet's release (its README's links). The
official Fusioner code expects one more nesting level (``train2014/train2014/``); the loaders of
``ovnb`` use HSNet's layout above. Then prepare ``fewshot-splits``.
"""

from __future__ import annotations

from pathlib import Path

from .download import fetch_missing, google_drive

SOURCES = {
    "train2014": ("http://images.cocodataset.org/zips/train2014.zip", "train2014.zip", None),
    "val2014": ("http://images.cocodataset.org/zips/val2014.zip", "val2014.zip", None),
    "masks_train2014": (google_drive("1cwup51kcr4m7v9jO14ArpxKMA4O3-Uge"), "hsnet_masks_train2014.zip", None),
    "masks_val2014": (google_drive("1PNw4U3T2MhzAEBWGGgceXvYU3cZ7mJL1"), "hsnet_masks_val2014.zip", None),
}


def prepare(root: Path, sources: dict = SOURCES) -> Path:
    root = Path(root)
    base = root / "COCO2014"
    downloads = root / "downloads"
    fetch_missing(downloads, [(sources[key], split, base / sub / split) for split in ("train2014", "val2014")
                              for key, sub in ((split, ""), (f"masks_{split}", "annotations"))])
    print(f"COCO 2014 with HSNet masks ready in {base}")
    return base

