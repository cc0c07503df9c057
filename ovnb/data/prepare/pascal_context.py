"""PASCAL-Context (59 and 459 classes): SimBaseline's Table 1 cross-dataset target (PnP-OVSS and
FC-CLIP evaluate on it too).

    ovnb data prepare pascal-context --root data

Downloads VOC 2010's trainval tar (the images and ``ImageSets/Main/{train,val}.txt``, 4,998 / 5,105
images) and PASCAL-Context's ``trainval.tar.gz`` (one ``<id>.mat`` per image whose ``LabelMap`` holds
the 459 labels, 1..459, 0 = unlabeled). Result: ``data/VOCdevkit/VOC2010/{JPEGImages,ImageSets,trainval}``.
Nothing is converted on disk: ``ovnb.data.semseg.pascal_context`` reads each ``LabelMap`` and
``label_map("pascal-context-59" | "pascal-context-459")`` maps it when a mask is read.

**Deviation**: zsseg, MaskFormer and FC-CLIP make the 59-class masks with the Detail API from
``trainval_merged.json`` (a package not on PyPI that needs compiling). Its 59-class masks keep the 59
frequent labels of the same annotation and turn every other label into background, which their scripts
then ignore; this reads the same labels from the ``.mat`` files (FC-CLIP's own PC-459 script reads
them too) and ignores every other label.
"""

from __future__ import annotations

from pathlib import Path

from .download import download, extract

SOURCES = {"voc2010": ("http://host.robots.ox.ac.uk/pascal/VOC/voc2010/VOCtrainval_03-May-2010.tar",
                       "VOCtrainval_03-May-2010.tar", None),
           "context": ("https://www.cs.stanford.edu/~roozbeh/pascal-context/trainval.tar.gz",
                       "pascal-context-trainval.tar.gz", None)}


def prepare(root: Path, sources: dict = SOURCES) -> Path:
    root = Path(root)
    downloads = root / "downloads"
    base = root / "VOCdevkit" / "VOC2010"
    if not (base / "JPEGImages").is_dir():
        url, name, digest = sources["voc2010"]
        extract(download(url, downloads / name, digest), root)
    if not (base / "trainval").is_dir():  # the archive holds trainval/<id>.mat
        url, name, digest = sources["context"]
        extract(download(url, downloads / name, digest), base)
    missing = [d for d in ("JPEGImages", "ImageSets/Main", "trainval") if not (base / d).is_dir()]
    if missing:
        raise FileNotFoundError(f"{base}: missing {missing} after preparation")
    print(f"PASCAL-Context ready in {base}")
    return base
