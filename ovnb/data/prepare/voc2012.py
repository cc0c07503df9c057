"""PASCAL VOC 2012 with the SBD-augmented masks (``SegmentationClassAug``), for PASCAL-5i and Table 5.

    ovnb data prepare voc2012 --root data

Result: ``data/VOCdevkit/VOC2012/{JPEGImages,SegmentationClassAug,ImageSets}``. Downloads resume;
every archive is verified against the SHA-256 stored on its first download.
Then prepare ``fewshot-splits`` for HSNet's fold lists.
"""

from __future__ import annotations

from pathlib import Path

from .download import download, extract, fetch_folder, google_drive

VOC_URL = "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar"
# SBD-augmented masks in the layout HSNet and Fusioner use (HSNet's README link)
SBD_AUG_URL = google_drive("10zxG2VExoEZUeyQl_uXga2OWHjGeZaf2")
SOURCES = {"voc": (VOC_URL, "VOCtrainval_11-May-2012.tar", None),
           "sbd_aug": (SBD_AUG_URL, "SegmentationClassAug.zip", None)}


def prepare(root: Path, sources: dict = SOURCES) -> Path:
    root = Path(root)
    downloads = root / "downloads"
    voc = root / "VOCdevkit" / "VOC2012"
    if not (voc / "JPEGImages").is_dir():
        url, name, digest = sources["voc"]
        extract(download(url, downloads / name, digest), root)
    if not (voc / "SegmentationClassAug").is_dir():
        fetch_folder(sources["sbd_aug"], downloads, "SegmentationClassAug", voc / "SegmentationClassAug")
    missing = [d for d in ("JPEGImages", "SegmentationClassAug", "ImageSets") if not (voc / d).is_dir()]
    if missing:
        raise FileNotFoundError(f"{voc}: missing {missing} after preparation")
    print(f"PASCAL VOC 2012 + SBD masks ready in {voc}")
    return voc

