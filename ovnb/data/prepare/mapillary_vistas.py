"""Mapillary Vistas v1.2 panoptic (65 classes): FC-CLIP's Table 2 and Table 7 street-view columns.

    ovnb data prepare mapillary-vistas --root data

Mapillary Vistas needs a registration: request ``mapillary-vistas-dataset_public_v1.2.zip`` (tens of GB)
at https://www.mapillary.com/dataset/vistas, put it in ``data/downloads/`` (or give its path or a mirror
with ``--source``); this step only extracts it. Result: ``data/mapillary_vistas/{training,validation}/
{images,labels,instances,panoptic}/`` as the archive ships it, with ``panoptic/panoptic_2018.json`` (the
COCO panoptic format): no preprocessing, as in the official code.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .download import extract, user_archive

SOURCES = {"vistas": (None, "mapillary-vistas-dataset_public_v1.2.zip", None)}
WHERE = "https://www.mapillary.com/dataset/vistas (free registration)"


def prepare(root: Path, sources: dict = SOURCES) -> Path:
    root = Path(root)
    base = root / "mapillary_vistas"
    downloads = root / "downloads"
    if not (base / "validation" / "panoptic").is_dir():
        archive = user_archive(sources["vistas"], downloads, "mapillary-vistas", "vistas", WHERE, "needs a registration")
        scratch = downloads / "x_mapillary_vistas"
        extract(archive, scratch)
        top = next((p.parent for p in sorted(scratch.rglob("validation")) if p.is_dir()), None)
        if top is None:
            raise FileNotFoundError(f"{archive} holds no validation/ folder")
        base.mkdir(parents=True, exist_ok=True)
        for item in top.iterdir():
            if not (base / item.name).exists():
                shutil.move(str(item), base / item.name)
        shutil.rmtree(scratch, ignore_errors=True)
    if not (base / "validation" / "panoptic" / "panoptic_2018.json").is_file():
        raise FileNotFoundError(f"{base}: validation/panoptic/panoptic_2018.json missing after preparation "
                                f"(is it the v1.2 archive?)")
    print(f"Mapillary Vistas ready in {base}")
    return base
