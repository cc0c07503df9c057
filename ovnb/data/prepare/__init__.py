"""Dataset preparation, shipped with the package: download, verify, extract, lay out under ``DATA_ROOT``.

    ovnb data list                              what can be prepared, what it downloads
    ovnb data prepare voc2012 --root data       one dataset (several names may follow)
    python -c "import ovnb.data.prepare as p; p.prepare('voc2012', 'data')"   the same from Python

The same works from a clone, a pip install and Colab; the top-level ``data_scripts/*.py`` of a clone
are thin entry points to these functions. One module per dataset (``voc2012``, ``coco2014``,
``fss1000``, ``fewshot_splits``, ``coco_stuff164k``, ``ade20k``, ``cityscapes``, ``pascal_context``,
``ade20k_full``, ``coco_instances2017``, ``gpt4o_lists``, ``fcclip_class_lists``, ``coco_panoptic2017``,
``ade20k_panoptic``, ``mapillary_vistas``), each with its public ``SOURCES`` and a ``prepare(root, sources)``
that skips whatever is in place already; ``download.py`` holds the resumable, verified downloads and
the safe extraction they share.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Dataset:
    name: str
    module: str
    what: str  # what it is for
    downloads: str  # what it fetches and about how much (where the hosts publish a size)
    needs: tuple[str, ...] = ()  # datasets a loader also needs (the split lists)
    into: str = "downloads"  # the folder under DATA_ROOT that downloads are written to


DATASETS = {d.name: d for d in (
    Dataset("voc2012", "voc2012", "PASCAL VOC 2012 + SBD-augmented masks (PASCAL-5i, Fusioner Tables 1, 2, 4, 5)",
            "VOCtrainval_11-May-2012.tar (about 1.9 GB) and HSNet's SegmentationClassAug.zip", ("fewshot-splits",)),
    Dataset("coco2014", "coco2014", "COCO 2014 images + HSNet's class-id masks (COCO-20i, Fusioner Tables 2, 5)",
            "train2014.zip (about 13 GB), val2014.zip (about 6 GB) and HSNet's two mask archives", ("fewshot-splits",)),
    Dataset("fss1000", "fss1000", "FSS-1000 (Mosaic-4, Fusioner Table 3)", "HSNet's FSS-1000.zip",
            ("fewshot-splits",)),
    Dataset("coco-stuff-164k", "coco_stuff164k", "COCO-Stuff-164k: COCO 2017 + stuffthingmaps (SimBaseline 156/15)",
            "train2017.zip (about 18 GB), val2017.zip (about 1 GB) and stuffthingmaps_trainval2017.zip (about 0.7 GB)"),
    Dataset("ade20k-150", "ade20k", "ADE20K-150 (SceneParsing ADEChallengeData2016; SimBaseline Tables 1 and 6)",
            "ADEChallengeData2016.zip (about 0.9 GB)"),
    Dataset("cityscapes-19", "cityscapes", "Cityscapes, 19 classes (SimBaseline Table 1; needs a login: archives you download)",
            "nothing: it verifies and extracts leftImg8bit_trainvaltest.zip (about 11 GB) and gtFine_trainvaltest.zip "
            "(about 241 MB), downloaded by you from www.cityscapes-dataset.com into DATA_ROOT/downloads"),
    Dataset("pascal-context", "pascal_context", "PASCAL-Context, 59 and 459 classes (VOC 2010 images; SimBaseline Table 1)",
            "VOCtrainval_03-May-2010.tar (about 1.3 GB) and PASCAL-Context's trainval.tar.gz (the .mat label maps)"),
    Dataset("ade20k-847", "ade20k_full", "ADE20K-full, 847 classes (ADE20K_2021_17_01; SimBaseline Table 1; needs a "
            "registration: a zip you download)",
            "nothing: it extracts ADE20K_2021_17_01.zip (several GB), downloaded by you from "
            "groups.csail.mit.edu/vision/datasets/ADE20K into DATA_ROOT/downloads, and converts its 2,000 val images"),
    Dataset("coco-instances-2017", "coco_instances2017", "COCO 2017 instance annotations (COCO-Object masks painted "
            "from them; PnP-OVSS Table 3)", "annotations_trainval2017.zip (about 241 MB)", ("coco-stuff-164k",)),
    Dataset("gpt4o-lists", "gpt4o_lists", "PnP-OVSS's published GPT-4o class lists per test image (its Table 3 captions)",
            "5 JSON files (a few MB) from the official PnP-OVSS repository, pinned to one commit", into="gpt4o_lists"),
    Dataset("fcclip-class-lists", "fcclip_class_lists", "FC-CLIP's class names with synonyms per dataset (its text "
            "classifier and seen/unseen rule)", "10 small text files from the official FC-CLIP repository, pinned to "
            "one commit", into="fcclip_class_lists"),
    Dataset("coco-panoptic-2017", "coco_panoptic2017", "COCO panoptic 2017, 133 classes (FC-CLIP's training set; "
            "its Tables 1 and 5)", "panoptic_annotations_trainval2017.zip (about 0.8 GB), and COCO 2017's train2017.zip "
            "(about 18 GB) and val2017.zip (about 1 GB) unless COCO-Stuff-164k fetched them"),
    Dataset("ade20k-panoptic", "ade20k_panoptic", "ADE20K panoptic, 150 classes (FC-CLIP Tables 1, 5, 6, 8), "
            "converted from ADE20K-150 and its instance annotations", "annotations_instance.tar (the 2017 challenge's "
            "instance masks; ADEChallengeData2016.zip too if ade20k-150 is not prepared)", ("ade20k-150",)),
    Dataset("mapillary-vistas", "mapillary_vistas", "Mapillary Vistas v1.2 panoptic, 65 classes (FC-CLIP Tables 2 "
            "and 7; needs a registration: an archive you download)",
            "nothing: it extracts mapillary-vistas-dataset_public_v1.2.zip (tens of GB), downloaded by you from "
            "www.mapillary.com/dataset/vistas into DATA_ROOT/downloads"),
    Dataset("fewshot-splits", "fewshot_splits", "HSNet's fold lists for PASCAL-5i, COCO-20i and FSS-1000",
            "19 small text and pickle files from HSNet's repository", into="splits"),
)}


def names() -> list[str]:
    return list(DATASETS)


def module(name: str):
    """The preparation module of dataset ``name``."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; datasets that can be prepared: {', '.join(DATASETS)}")
    return importlib.import_module(f"{__name__}.{DATASETS[name].module}")


def plan(name: str, root: str | Path) -> str:
    """What preparing ``name`` will download, about how much, and where it will land."""
    d = DATASETS[name] if name in DATASETS else module(name)  # module() raises for unknown names
    root = Path(root).resolve()
    return (f"{d.name}: {d.what}\n  downloads {d.downloads}\n  into {root / d.into}, prepared under {root}"
            + (f"\n  also needs: {', '.join(d.needs)}" if d.needs else ""))


def prepare(name: str, root: str | Path = "data", sources: dict | None = None) -> Path:
    """Prepare dataset ``name`` under ``root`` (what is there already is kept); returns its folder."""
    mod = module(name)
    return mod.prepare(Path(root), mod.SOURCES if sources is None else sources)


def load_or_prepare(make, root: str | Path, prepare_missing: bool):
    """``make()`` (a loader); when it finds a dataset missing and ``prepare_missing`` is set (the notebooks'
    ``PREPARE_DATA``), prepare the missing datasets under ``root`` first - saying what each downloads,
    about how much, and where - then load again."""
    from ..files import DatasetMissingError

    try:
        return make()
    except DatasetMissingError as missing:
        if not prepare_missing or not missing.datasets:
            raise
        for name in missing.datasets:
            print(plan(name, root), flush=True)
            prepare(name, root)
        return make()


def command(names_: list[str], root: str | Path) -> str:
    """The shell command that prepares ``names_`` under ``root``, wherever ``ovnb`` is installed."""
    return f"ovnb data prepare {' '.join(names_)} --root {root}"


def main(name: str, argv=None) -> int:
    """The command line of a thin ``data_scripts/<name>.py``: ``--root DATA_ROOT``."""
    import argparse

    parser = argparse.ArgumentParser(description=DATASETS[name].what)
    parser.add_argument("--root", default="data", type=Path, help="where the datasets live (DATA_ROOT)")
    args = parser.parse_args(argv)
    print(plan(name, args.root))
    prepare(name, args.root)
    return 0
