"""COCO-Stuff-164k: COCO 2017 images with the COCO-Stuff pixel maps (SimBaseline's zero-shot split
156/15; FC-CLIP and PnP-OVSS evaluate on it too).

    ovnb data prepare coco-stuff-164k --root data

Result: ``data/coco/{train2017,val2017}/*.jpg`` and ``data/coco/stuffthingmaps/{train2017,val2017}/*.png``
(the released ``stuffthingmaps``: COCO category id - 1 per pixel, 255 unlabeled). Nothing is converted
on disk: ``ovnb.data.semseg.label_map("coco-stuff-171")`` maps the stored values to the 171 contiguous
ids when a mask is read, and the unseen-pixel rule is applied on the fly for training (zsseg writes a
second, ``_base`` copy of every mask, and its script writes into a folder it never creates).
"""

from __future__ import annotations

from pathlib import Path

from .download import fetch_missing

SOURCES = {
    "train2017": ("http://images.cocodataset.org/zips/train2017.zip", "train2017.zip", None),
    "val2017": ("http://images.cocodataset.org/zips/val2017.zip", "val2017.zip", None),
    "stuffthingmaps": ("http://calvin.inf.ed.ac.uk/wp-content/uploads/data/cocostuffdataset/"
                       "stuffthingmaps_trainval2017.zip", "stuffthingmaps_trainval2017.zip", None),
}


def prepare(root: Path, sources: dict = SOURCES) -> Path:
    root = Path(root)
    base = root / "coco"
    downloads = root / "downloads"
    fetch_missing(downloads, [(sources[key], split, base / sub / split) for split in ("train2017", "val2017")
                              for key, sub in ((split, ""), ("stuffthingmaps", "stuffthingmaps"))])
    print(f"COCO-Stuff-164k ready in {base}")
    return base
