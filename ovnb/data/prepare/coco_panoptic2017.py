"""COCO panoptic 2017: FC-CLIP's training set (133 classes) and Table 1's / Table 5's COCO columns.

    ovnb data prepare coco-panoptic-2017 --root data

Result: ``data/coco/annotations/panoptic_{train,val}2017.json`` and ``data/coco/panoptic_{train,val}2017/*.png``
(from ``panoptic_annotations_trainval2017.zip``, whose two inner zips hold the PNGs), beside COCO 2017's
images ``data/coco/{train,val}2017/`` (fetched here too when COCO-Stuff-164k has not fetched them).
Nothing else is converted: ``ovnb.data.panoptic.coco_panoptic`` derives the semantic masks from the
panoptic ones when an image is read, as the official ``prepare_coco_semantic_annos_from_panoptic_annos.py``
writes them (every segment's class, crowds included; unlabeled 255).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from . import coco_stuff164k
from .download import download, extract, fetch_missing

SOURCES = {
    "panoptic": ("http://images.cocodataset.org/annotations/panoptic_annotations_trainval2017.zip",
                 "panoptic_annotations_trainval2017.zip", None),
    "train2017": coco_stuff164k.SOURCES["train2017"],
    "val2017": coco_stuff164k.SOURCES["val2017"],
}


def prepare(root: Path, sources: dict = SOURCES) -> Path:
    root = Path(root)
    base = root / "coco"
    downloads = root / "downloads"
    fetch_missing(downloads, [(sources[s], s, base / s) for s in ("train2017", "val2017")])
    sets = ("train2017", "val2017")
    if not all((base / f"panoptic_{s}").is_dir() and (base / "annotations" / f"panoptic_{s}.json").is_file()
               for s in sets):
        url, name, digest = sources["panoptic"]
        scratch = downloads / "x_coco_panoptic"
        extract(download(url, downloads / name, digest), scratch)
        for s in sets:
            found = next(iter(sorted(scratch.rglob(f"panoptic_{s}.json"))), None)
            inner = next(iter(sorted(scratch.rglob(f"panoptic_{s}.zip"))), None)
            if found is None or inner is None:
                raise FileNotFoundError(f"{name} holds no panoptic_{s}.json or panoptic_{s}.zip")
            (base / "annotations").mkdir(parents=True, exist_ok=True)
            shutil.move(str(found), base / "annotations" / found.name)
            extract(inner, base)  # -> coco/panoptic_<set>/*.png
        shutil.rmtree(scratch, ignore_errors=True)
    missing = [p for s in sets for p in (base / f"panoptic_{s}", base / "annotations" / f"panoptic_{s}.json")
               if not p.exists()]
    if missing:
        raise FileNotFoundError(f"{base}: missing {[str(p) for p in missing]} after preparation")
    print(f"COCO panoptic 2017 ready in {base}")
    return base
