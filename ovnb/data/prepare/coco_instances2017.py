"""COCO 2017 instance annotations, for COCO-Object (PnP-OVSS's "COCO Object-80": semantic masks painted
from the instances, as the official evaluation does; the images are COCO-Stuff-164k's ``val2017``).

    ovnb data prepare coco-instances-2017 --root data

Result: ``data/coco/annotations/instances_{train,val}2017.json`` (and the archive's other annotation
files), from ``annotations_trainval2017.zip``. ``ovnb.data.semseg.coco_object`` paints the masks when
an image is read (pycocotools): nothing is converted on disk.
"""

from __future__ import annotations

from pathlib import Path

from .download import fetch_missing

SOURCES = {"annotations": ("http://images.cocodataset.org/annotations/annotations_trainval2017.zip",
                           "annotations_trainval2017.zip", None)}


def prepare(root: Path, sources: dict = SOURCES) -> Path:
    root = Path(root)
    dest = root / "coco" / "annotations"
    fetch_missing(root / "downloads", [(sources["annotations"], "annotations", dest)])
    print(f"COCO 2017 instance annotations ready in {dest}")
    return dest
