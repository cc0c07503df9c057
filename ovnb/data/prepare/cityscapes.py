"""Cityscapes (19 evaluation classes): SimBaseline's Table 1 cross-dataset target.

    ovnb data prepare cityscapes-19 --root data

Cityscapes is behind a login: download ``leftImg8bit_trainvaltest.zip`` (about 11 GB) and
``gtFine_trainvaltest.zip`` (about 241 MB) from https://www.cityscapes-dataset.com/downloads/ yourself
and put them in ``data/downloads/`` (or give their paths or a mirror with ``--source``); this step only
verifies and extracts them. Result: ``data/cityscapes/{leftImg8bit,gtFine}/{train,val,test}/<city>/``
as the archives ship it. Nothing is converted on disk: ``ovnb.data.semseg.label_map("cityscapes-19")``
maps the ``*_gtFine_labelIds.png`` ids (7 road ... 33 bicycle) to the 19 train ids when a mask is read
(``createTrainIdLabelImgs.py`` of cityscapesScripts writes the same as a second copy).
"""

from __future__ import annotations

from pathlib import Path

from .download import extract, user_archive

SOURCES = {"leftImg8bit": (None, "leftImg8bit_trainvaltest.zip", None),
           "gtFine": (None, "gtFine_trainvaltest.zip", None)}
WHERE = "https://www.cityscapes-dataset.com/downloads/ (free account)"


def prepare(root: Path, sources: dict = SOURCES) -> Path:
    root = Path(root)
    base = root / "cityscapes"
    downloads = root / "downloads"
    for key in ("leftImg8bit", "gtFine"):
        if (base / key / "val").is_dir():
            continue
        extract(user_archive(sources[key], downloads, "cityscapes-19", key, WHERE, "needs a login"), base)
    missing = [d for d in ("leftImg8bit/val", "gtFine/val") if not (base / d).is_dir()]
    if missing:
        raise FileNotFoundError(f"{base}: missing {missing} after preparation")
    print(f"Cityscapes ready in {base}")
    return base
