"""Semantic-segmentation benchmarks with seen/unseen splits: class lists, label maps, the
unseen-pixel rule (SimBaseline Sec. 6.1; also PnP-OVSS's and FC-CLIP's datasets, which extend this).

A ``Split`` names a benchmark's classes (contiguous ids ``0..C-1``, in the order of the dataset's
own ids) and which of them are unseen. Masks handed to training and evaluation hold contiguous ids,
and ``IGNORE_INDEX`` (255) where a pixel is unlabeled or excluded by the protocol:

* ``coco-stuff-171``: COCO-Stuff-164k; the released stuffthingmaps store COCO category id - 1 (things
  0..89 with gaps, stuff 91..181) and 255 = unlabeled; ``label_map`` turns them into 0..170. Zero-shot
  split 156/15 (``semseg_classes.yaml``).
* ``voc-20``: PASCAL VOC 2012 with background ignored (zsseg's protocol): values 1..20 -> 0..19,
  background 0 and the void border 255 -> 255. Split 15/5.
* ``ade20k-150``: ADE20K's SceneParsing benchmark (ADEChallengeData2016), values 1..150 -> 0..149,
  0 ("other") -> 255; a cross-dataset target only (no seen/unseen split: every class is named).
* ``cityscapes-19``: Cityscapes' 19 evaluation classes from the ``*_gtFine_labelIds.png`` ids (7 road ...
  33 bicycle -> 0..18, every other id -> 255); a cross-dataset target only.
* ``pascal-context-59`` / ``pascal-context-459``: PASCAL-Context (VOC 2010 images) from its ``LabelMap``
  (``trainval/*.mat``, labels 1..459, 0 = unlabeled): the 59 frequent classes (every other label
  ignored, as the Detail API's 59-class masks have it) or all 459 (label - 1). Cross-dataset targets.
* ``voc-21`` / ``pascal-context-60`` / ``ade20k-151`` / ``coco-stuff-172``: the same datasets with a
  background class 0, as PnP-OVSS scores them (training-free, so no seen/unseen split): VOC's
  background 0 (its 255 boundary stays 255: the ``pnp-ovss-background-as-class`` metric protocol
  relabels it to 0), PASCAL-Context's unlabeled pixels and every label outside the 59, ADE20K's
  "other", COCO-Stuff's unlabeled 255.
* ``ade20k-847``: ADE20K-full's 847 classes, masks as ``ovnb data prepare ade20k-847`` converts them
  (16-bit, train id 0..846, 65535 = not one of them -> 255). A cross-dataset target.
* ``toy-zero-shot`` / ``toy-voc``: the toy world's analogues (``toy_splits.yaml``): all 62 classes
  with 7 unseen (things and stuff, like COCO-Stuff), or the 48 things with 12 unseen and stuff as
  ignored background (like VOC).

**The unseen-pixel rule** (zsseg's ``*_base`` annotations): for training, every pixel of an unseen
class is set to 255 - the unseen objects stay visible in the image, but are never a target - and an
image left with no seen pixel is dropped (``training_mask``, ``has_seen_pixels``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
import yaml

HERE = Path(__file__).parent
IGNORE_INDEX = 255


@dataclass(frozen=True)
class Split:
    name: str
    class_names: tuple[str, ...]
    unseen: tuple[int, ...]  # contiguous ids of the unseen classes, sorted

    @property
    def seen(self) -> tuple[int, ...]:
        unseen = set(self.unseen)
        return tuple(i for i in range(len(self.class_names)) if i not in unseen)

    @property
    def seen_flags(self) -> torch.Tensor:
        """``[C]`` bool, True for seen classes (zsseg's ``trainable_flag``)."""
        flags = torch.ones(len(self.class_names), dtype=torch.bool)
        flags[list(self.unseen)] = False
        return flags

    def names(self, ids) -> list[str]:
        return [self.class_names[i] for i in ids]


@lru_cache(maxsize=1)
def _classes() -> dict:
    return yaml.safe_load((HERE / "semseg_classes.yaml").read_text())


def _from_names(name: str, names: list[str], unseen_names: list[str]) -> Split:
    missing = [n for n in unseen_names if n not in names]
    if missing:
        raise ValueError(f"{name}: unseen classes {missing} are not class names")
    return Split(name, tuple(names), tuple(sorted(names.index(n) for n in unseen_names)))


def split(name: str) -> Split:
    """The ``Split`` called ``name`` (``SPLITS``); an unknown name is an error listing them."""
    if name == "coco-stuff-171":
        raw = _classes()
        return _from_names(name, [n for _, n in raw["coco_stuff_171"]], raw["coco_stuff_171_unseen"])
    if name == "voc-20":
        raw = _classes()
        return _from_names(name, raw["voc_20"], raw["voc_20_unseen"])
    if name == "ade20k-150":  # names as detectron2 writes them, stripped ("window " -> "window")
        return _from_names(name, [n.strip() for n in _classes()["ade20k_150"]], [])
    if name == "cityscapes-19":
        return _from_names(name, [n for _, n in _classes()["cityscapes_19"]], [])
    if name == "pascal-context-59":
        return _from_names(name, [n for _, n in _classes()["pascal_context_59"]], [])
    if name == "pascal-context-459":
        return _from_names(name, _classes()["pascal_context_459"], [])
    if name == "ade20k-847":
        return _from_names(name, [n for _, n in _classes()["ade20k_847"]], [])
    if name == "coco-object-81":  # background + COCO's 80 thing classes (COCO-Stuff's first 80 entries)
        things = [n for v, n in _classes()["coco_stuff_171"] if v < COCO_THING_LIMIT]
        return _from_names(name, ["background", *things], [])
    if name in BACKGROUND_AS_CLASS:  # the split without background, with "background" as class 0
        return _from_names(name, ["background", *split(BACKGROUND_AS_CLASS[name]).class_names], [])
    if name in ("toy-zero-shot", "toy-voc"):
        from .toy_world import splits, vocabulary

        voc, which = vocabulary(), splits()["zero_shot" if name == "toy-zero-shot" else "voc"]
        names = voc.names if name == "toy-zero-shot" else voc.names[:len(voc.things)]
        return Split(name, tuple(names), tuple(sorted(which["unseen"])))
    raise ValueError(f"unknown split {name!r}; known splits: {', '.join(SPLITS)}")


SPLITS = ("coco-stuff-171", "voc-20", "ade20k-150", "cityscapes-19", "pascal-context-59", "pascal-context-459",
          "ade20k-847", "voc-21", "pascal-context-60", "ade20k-151", "coco-stuff-172", "coco-object-81", "toy-zero-shot",
          "toy-voc")
COCO_THING_LIMIT = 90  # stored values (category id - 1) below this are things
BACKGROUND_AS_CLASS = {"voc-21": "voc-20", "pascal-context-60": "pascal-context-59", "ade20k-151": "ade20k-150",
                       "coco-stuff-172": "coco-stuff-171"}
WIDE = ("pascal-context-59", "pascal-context-60", "pascal-context-459", "ade20k-847")  # masks stored with 16 bits


def label_map(name: str) -> torch.Tensor:
    """A lookup table from a dataset's stored mask values to contiguous ids (255 elsewhere), with 256
    entries (65,536 for the datasets stored with 16 bits, ``WIDE``): ``label_map(name)[mask.long()]``
    converts a whole mask."""
    table = torch.full((65536 if name in WIDE else 256,), IGNORE_INDEX, dtype=torch.long)
    if name == "coco-stuff-171":
        for contiguous, (stored, _) in enumerate(_classes()["coco_stuff_171"]):
            table[stored] = contiguous
    elif name == "voc-20":
        table[1:21] = torch.arange(20)  # background 0 -> ignored
    elif name == "ade20k-150":
        table[1:151] = torch.arange(150)  # 0 ("other") -> ignored
    elif name == "cityscapes-19":
        for contiguous, (label_id, _) in enumerate(_classes()["cityscapes_19"]):
            table[label_id] = contiguous
    elif name == "pascal-context-59":
        for contiguous, (label, _) in enumerate(_classes()["pascal_context_59"]):
            table[label] = contiguous
    elif name == "pascal-context-60":
        table[:] = 0  # unlabeled and every label outside the 59: background
        for contiguous, (label, _) in enumerate(_classes()["pascal_context_59"]):
            table[label] = contiguous + 1
    elif name == "coco-stuff-172":
        table[255] = 0  # unlabeled: background
        for contiguous, (stored, _) in enumerate(_classes()["coco_stuff_171"]):
            table[stored] = contiguous + 1
    elif name == "coco-object-81":
        table[255] = 0  # no instance: background
        things = [v for v, _ in _classes()["coco_stuff_171"] if v < COCO_THING_LIMIT]
        table[torch.tensor(things)] = torch.arange(1, len(things) + 1)
    elif name in ("voc-21", "ade20k-151"):
        count = len(split(name).class_names)
        table[:count] = torch.arange(count)  # background 0 kept as a class; VOC's 255 boundary stays 255
    elif name == "pascal-context-459":
        table[1:460] = torch.arange(459)  # 0 (unlabeled) -> ignored
    elif name == "ade20k-847":
        table[:847] = torch.arange(847)  # converted to train ids by the preparation; 65535 -> ignored
    elif name in ("toy-zero-shot", "toy-voc"):  # toy-voc holds the things only: stuff (background) -> ignored
        count = len(split(name).class_names)
        table[:count] = torch.arange(count)
    else:
        raise ValueError(f"unknown split {name!r}; known splits: {', '.join(SPLITS)}")
    return table


def training_mask(mask: torch.Tensor, unseen, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """The unseen-pixel rule: a copy of ``mask`` (contiguous ids) with every unseen-class pixel set to
    ``ignore_index``."""
    out = mask.clone()
    out[torch.isin(mask, torch.as_tensor(list(unseen), dtype=mask.dtype))] = ignore_index
    return out


def has_seen_pixels(mask: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> bool:
    """Whether a training mask (after ``training_mask``) keeps any pixel: images without are dropped."""
    return bool((mask != ignore_index).any())


# ----------------------------------------------------------------------------------------------
# Images with masks: the prepared datasets and the toy world

# what ``ovnb data prepare`` must lay out for each split's images
NEEDS = {"coco-stuff-171": ("coco-stuff-164k",), "coco-stuff-172": ("coco-stuff-164k",),
         "coco-object-81": ("coco-stuff-164k", "coco-instances-2017"), "voc-20": ("voc2012",), "ade20k-150": ("ade20k-150",),
         "voc-21": ("voc2012",), "ade20k-151": ("ade20k-150",), "pascal-context-60": ("pascal-context",),
         "cityscapes-19": ("cityscapes-19",), "pascal-context-59": ("pascal-context",),
         "pascal-context-459": ("pascal-context",), "ade20k-847": ("ade20k-847",)}


class SemSegImages(torch.utils.data.Dataset):
    """Images of one split with masks in contiguous ids: ``{"image": uint8 [3, H, W], "mask": int64
    [H, W], "id": str}``. ``training=True`` applies the unseen-pixel rule (``training_mask``); the
    loaders then keep only the images with a seen pixel."""

    def __init__(self, keys: list[str], load, split_: Split, table: torch.Tensor, name: str, training: bool = False):
        self.keys = list(keys)
        self.load, self.split, self.table, self.name, self.training = load, split_, table, name, training

    def __len__(self) -> int:
        return len(self.keys)

    def read(self, key: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The image and its mask in contiguous ids (before the unseen-pixel rule)."""
        image, stored = self.load(key)
        return image, self.table[stored.clamp(0, len(self.table) - 1)]

    def __getitem__(self, index: int) -> dict:
        key = self.keys[index]
        image, mask = self.read(key)
        if self.training:
            mask = training_mask(mask, self.split.unseen)
        return {"image": image, "mask": mask, "id": f"{self.name}/{key}"}

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.split.class_names


def _kept(dataset: SemSegImages, index_path: Path | None) -> list[int]:
    """Indices of the images that keep a seen pixel under the unseen-pixel rule; stored in
    ``index_path`` (beside the masks) after the first pass over them."""
    import json

    if index_path is not None and index_path.is_file():
        return json.loads(index_path.read_text())
    from tqdm.auto import tqdm

    keep = [i for i, key in enumerate(tqdm(dataset.keys, desc=f"{dataset.name}: images with seen pixels",
                                           leave=False, disable=len(dataset.keys) < 1000))
            if has_seen_pixels(training_mask(dataset.read(key)[1], dataset.split.unseen))]
    if index_path is not None:  # atomically: processes scanning side by side never read half a file
        import os
        import tempfile

        with tempfile.NamedTemporaryFile("w", dir=index_path.parent, suffix=".part", delete=False) as f:
            f.write(json.dumps(keep))
        os.replace(f.name, index_path)
    return keep


def _finish(dataset: SemSegImages, training: bool, index_path: Path | None) -> SemSegImages:
    if training:
        dataset.keys = [dataset.keys[i] for i in _kept(dataset, index_path)]
        dataset.training = True
    return dataset


def coco_stuff(root: str | Path, image_set: str = "val2017", training: bool = False,
               background: bool = False) -> SemSegImages:
    """COCO-Stuff-164k (171 classes) from ``root/coco`` (``ovnb data prepare coco-stuff-164k``);
    ``background``: ``coco-stuff-172``, unlabeled pixels as class 0."""
    from .files import read_image, read_mask, require

    if image_set not in ("train2017", "val2017"):
        raise ValueError(f"image_set must be 'train2017' or 'val2017', got {image_set!r}")
    root = Path(root)
    images = require(root / "coco" / image_set, NEEDS["coco-stuff-171"], root, f"COCO {image_set} images",
                     "coco-stuff-171: ", "ovnb.data.prepare.coco_stuff164k")
    masks = require(root / "coco" / "stuffthingmaps" / image_set, NEEDS["coco-stuff-171"], root,
                    f"stuffthingmaps/{image_set}", "coco-stuff-171: ", "ovnb.data.prepare.coco_stuff164k")
    keys = sorted(p.stem for p in masks.glob("*.png"))

    def load(key):
        return read_image(images / f"{key}.jpg"), read_mask(masks / f"{key}.png")

    name = "coco-stuff-172" if background else "coco-stuff-171"
    ds = SemSegImages(keys, load, split(name), label_map(name), f"{'coco-stuff-172' if background else 'coco-stuff'}-{image_set}")
    return _finish(ds, training, masks.parent / f"ovnb-seen-{image_set}.json")


def paint_instances(coco, image_id: int, height: int, width: int) -> torch.Tensor:
    """A semantic mask ``[H, W]`` (int64, COCO category id - 1 per pixel, 255 where no instance) painted
    from an image's instance annotations in the file's order, an earlier annotation keeping the pixels
    it covers (PnP-OVSS's evaluation), crowd regions included."""
    import numpy as np

    mask = np.full((height, width), IGNORE_INDEX, dtype=np.uint8)
    for ann in coco.loadAnns(coco.getAnnIds(imgIds=[image_id], iscrowd=None)):
        region = coco.annToMask(ann).astype(bool) & (mask == IGNORE_INDEX)
        mask[region] = ann["category_id"] - 1
    return torch.from_numpy(mask).long()


def coco_object(root: str | Path, image_set: str = "val2017") -> SemSegImages:
    """COCO-Object (``coco-object-81``: background + 80 things) from ``root/coco`` (COCO-Stuff-164k's images
    and ``ovnb data prepare coco-instances-2017``): masks painted from the instances (``paint_instances``)."""
    from .files import read_image, require

    if image_set not in ("train2017", "val2017"):
        raise ValueError(f"image_set must be 'train2017' or 'val2017', got {image_set!r}")
    root = Path(root)
    needs = NEEDS["coco-object-81"]
    images = require(root / "coco" / image_set, needs, root, f"COCO {image_set} images", "coco-object-81: ",
                     "ovnb.data.prepare.coco_stuff164k")
    ann = require(root / "coco" / "annotations" / f"instances_{image_set}.json", needs, root,
                  f"instances_{image_set}.json", "coco-object-81: ", "ovnb.data.prepare.coco_instances2017")
    import contextlib
    import io

    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco = COCO(str(ann))
    infos = {Path(i["file_name"]).stem: i for i in coco.loadImgs(coco.getImgIds())}
    keys = sorted(k for k in infos if (images / f"{k}.jpg").is_file())

    def load(key):
        info = infos[key]
        return read_image(images / f"{key}.jpg"), paint_instances(coco, info["id"], info["height"], info["width"])

    return SemSegImages(keys, load, split("coco-object-81"), label_map("coco-object-81"), f"coco-object-{image_set}")


def voc(root: str | Path, image_set: str = "val", training: bool = False, background: bool = False) -> SemSegImages:
    """PASCAL VOC 2012 with background ignored (20 classes; ``background``: ``voc-21``, background as
    class 0): ``"val"`` the 1,449 val images, ``"train"`` the SBD-augmented training set (every
    SegmentationClassAug mask not in val: 10,582)."""
    from .files import read_image, read_mask, require

    if image_set not in ("train", "val"):
        raise ValueError(f"image_set must be 'train' or 'val', got {image_set!r}")
    root = Path(root)
    base = require(root / "VOCdevkit" / "VOC2012", NEEDS["voc-20"], root, "VOC2012", "voc-20: ", "ovnb.data.prepare.voc2012")
    masks = require(base / "SegmentationClassAug", NEEDS["voc-20"], root, "SBD-augmented masks", "voc-20: ",
                    "ovnb.data.prepare.voc2012")
    val = require(base / "ImageSets" / "Segmentation" / "val.txt", NEEDS["voc-20"], root, "val list", "voc-20: ",
                  "ovnb.data.prepare.voc2012").read_text().split()
    keys = val if image_set == "val" else sorted({p.stem for p in masks.glob("*.png")} - set(val))

    def load(key):
        return read_image(base / "JPEGImages" / f"{key}.jpg"), read_mask(masks / f"{key}.png")

    name = "voc-21" if background else "voc-20"
    ds = SemSegImages(keys, load, split(name), label_map(name), f"{'voc-21' if background else 'voc'}-{image_set}")
    return _finish(ds, training, base / f"ovnb-seen-{image_set}.json")


def ade20k(root: str | Path, image_set: str = "validation", background: bool = False) -> SemSegImages:
    """ADE20K-150 from ``root/ADEChallengeData2016`` (``ovnb data prepare ade20k-150``): ``"validation"``
    the 2,000 val images, ``"training"`` the 20,210 training images; ``background``: ``ade20k-151``,
    "other" as class 0."""
    from .files import read_image, read_mask, require

    if image_set not in ("training", "validation"):
        raise ValueError(f"image_set must be 'training' or 'validation', got {image_set!r}")
    base = require(Path(root) / "ADEChallengeData2016", NEEDS["ade20k-150"], Path(root), "ADEChallengeData2016",
                   "ade20k-150: ", "ovnb.data.prepare.ade20k")
    images = require(base / "images" / image_set, NEEDS["ade20k-150"], Path(root), f"images/{image_set}",
                     "ade20k-150: ", "ovnb.data.prepare.ade20k")
    masks = require(base / "annotations" / image_set, NEEDS["ade20k-150"], Path(root), f"annotations/{image_set}",
                    "ade20k-150: ", "ovnb.data.prepare.ade20k")
    keys = sorted(p.stem for p in masks.glob("*.png"))

    def load(key):
        return read_image(images / f"{key}.jpg"), read_mask(masks / f"{key}.png")

    name = "ade20k-151" if background else "ade20k-150"
    return SemSegImages(keys, load, split(name), label_map(name), f"{'ade20k-151' if background else 'ade20k'}-{image_set}")


def cityscapes(root: str | Path, image_set: str = "val") -> SemSegImages:
    """Cityscapes' 19 classes from ``root/cityscapes`` (``ovnb data prepare cityscapes-19``): ``"val"``
    the 500 validation images, ``"train"`` the 2,975 fine-annotated training images."""
    from .files import read_image, read_mask, require

    if image_set not in ("train", "val"):
        raise ValueError(f"image_set must be 'train' or 'val', got {image_set!r}")
    base = require(Path(root) / "cityscapes", NEEDS["cityscapes-19"], Path(root), "cityscapes", "cityscapes-19: ",
                   "ovnb.data.prepare.cityscapes")
    images = require(base / "leftImg8bit" / image_set, NEEDS["cityscapes-19"], Path(root), f"leftImg8bit/{image_set}",
                     "cityscapes-19: ", "ovnb.data.prepare.cityscapes")
    masks = require(base / "gtFine" / image_set, NEEDS["cityscapes-19"], Path(root), f"gtFine/{image_set}",
                    "cityscapes-19: ", "ovnb.data.prepare.cityscapes")
    suffix = "_gtFine_labelIds"
    keys = sorted(str(p.relative_to(masks))[:-len(suffix) - 4] for p in masks.glob(f"*/*{suffix}.png"))

    def load(key):
        return read_image(images / f"{key}_leftImg8bit.png"), read_mask(masks / f"{key}{suffix}.png")

    return SemSegImages(keys, load, split("cityscapes-19"), label_map("cityscapes-19"), f"cityscapes-{image_set}")


def pascal_context(root: str | Path, image_set: str = "val", classes: int = 59) -> SemSegImages:
    """PASCAL-Context from ``root/VOCdevkit/VOC2010`` (``ovnb data prepare pascal-context``): ``"val"``
    the 5,105 images of VOC 2010's ``ImageSets/Main/val.txt``, ``"train"`` the 4,998 of ``train.txt``,
    with 59 classes, 60 (background as class 0) or all 459. Masks are read from the ``LabelMap`` of
    ``trainval/<id>.mat``."""
    from .files import read_image, require

    if image_set not in ("train", "val"):
        raise ValueError(f"image_set must be 'train' or 'val', got {image_set!r}")
    if classes not in (59, 60, 459):
        raise ValueError(f"classes must be 59, 60 or 459, got {classes!r}")
    name = f"pascal-context-{classes}"
    base = require(Path(root) / "VOCdevkit" / "VOC2010", NEEDS[name], Path(root), "VOC2010", f"{name}: ",
                   "ovnb.data.prepare.pascal_context")
    labels = require(base / "trainval", NEEDS[name], Path(root), "PASCAL-Context's trainval/*.mat", f"{name}: ",
                     "ovnb.data.prepare.pascal_context")
    listing = require(base / "ImageSets" / "Main" / f"{image_set}.txt", NEEDS[name], Path(root),
                      f"ImageSets/Main/{image_set}.txt", f"{name}: ", "ovnb.data.prepare.pascal_context")
    keys = [k for k in listing.read_text().split() if (labels / f"{k}.mat").is_file()]

    def load(key):
        from scipy.io import loadmat

        label_map_ = loadmat(labels / f"{key}.mat")["LabelMap"]
        return read_image(base / "JPEGImages" / f"{key}.jpg"), torch.from_numpy(label_map_.astype("int64"))

    return SemSegImages(keys, load, split(name), label_map(name), f"{name}-{image_set}")


def ade20k_full(root: str | Path, image_set: str = "validation") -> SemSegImages:
    """ADE20K-full's 847 classes from ``root/ADE20K_2021_17_01`` as ``ovnb data prepare ade20k-847``
    converts them (``images_detectron2`` / ``annotations_detectron2``): ``"validation"``, the 2,000
    images of ADE20K's validation set."""
    from .files import read_image, read_mask, require

    if image_set not in ("training", "validation"):
        raise ValueError(f"image_set must be 'training' or 'validation', got {image_set!r}")
    base = require(Path(root) / "ADE20K_2021_17_01", NEEDS["ade20k-847"], Path(root), "ADE20K_2021_17_01",
                   "ade20k-847: ", "ovnb.data.prepare.ade20k_full")
    images = require(base / "images_detectron2" / image_set, NEEDS["ade20k-847"], Path(root),
                     f"images_detectron2/{image_set}", "ade20k-847: ", "ovnb.data.prepare.ade20k_full")
    masks = require(base / "annotations_detectron2" / image_set, NEEDS["ade20k-847"], Path(root),
                    f"annotations_detectron2/{image_set}", "ade20k-847: ", "ovnb.data.prepare.ade20k_full")
    keys = sorted(p.stem for p in masks.glob("*.png"))

    def load(key):
        return read_image(images / f"{key}.jpg"), read_mask(masks / f"{key}.png")

    return SemSegImages(keys, load, split("ade20k-847"), label_map("ade20k-847"), f"ade20k-847-{image_set}")


def toy(split_name: str = "toy-zero-shot", world_split: str = "train", images: int = 1000, seed: int = 0,
        training: bool = False, shifted: bool = False) -> SemSegImages:
    """The toy world's analogue of a benchmark split (``toy-zero-shot``: COCO-Stuff-like, ``toy-voc``:
    VOC-like with stuff ignored); ``shifted`` draws the cross-dataset variant."""
    from .toy_world import ToyWorld

    if split_name not in ("toy-zero-shot", "toy-voc"):
        raise ValueError(f"toy split must be 'toy-zero-shot' or 'toy-voc', got {split_name!r}")
    world = ToyWorld(world_split, images, seed=seed, shifted=shifted)

    def load(key):
        sample = world[int(key)]
        return sample["image"], sample["mask"]

    name = f"{split_name}-{world_split}{'-shifted' if shifted else ''}"
    ds = SemSegImages([str(i) for i in range(images)], load, split(split_name), label_map(split_name), name)
    index = None
    if training:  # the world is drawn from its seed: the kept images are too (one scan per build, not per process)
        from ..results import build_dir

        index = build_dir() / "cache" / f"toy-seen-{name}-{images}-{seed}.json"
        index.parent.mkdir(parents=True, exist_ok=True)
    return _finish(ds, training, index)


#: the validation set of each semantic benchmark split, the one table every chapter and the cross-paper
#: benchmark read (the splits with background as a class are PnP-OVSS's protocol)
TEST_SETS = {
    "coco-stuff-171": lambda root: coco_stuff(root, "val2017"),
    "coco-stuff-172": lambda root: coco_stuff(root, "val2017", background=True),
    "coco-object-81": lambda root: coco_object(root, "val2017"),
    "voc-20": lambda root: voc(root, "val"),
    "voc-21": lambda root: voc(root, "val", background=True),
    "pascal-context-59": lambda root: pascal_context(root, "val", 59),
    "pascal-context-60": lambda root: pascal_context(root, "val", 60),
    "pascal-context-459": lambda root: pascal_context(root, "val", 459),
    "ade20k-150": lambda root: ade20k(root, "validation"),
    "ade20k-151": lambda root: ade20k(root, "validation", background=True),
    "ade20k-847": lambda root: ade20k_full(root, "validation"),
    "cityscapes-19": lambda root: cityscapes(root, "val"),
}


def test_set(name: str, root: str | Path) -> SemSegImages:
    """The validation images of split ``name`` (``TEST_SETS``) under ``root``."""
    if name not in TEST_SETS:
        raise ValueError(f"no test set for split {name!r}; valid: {', '.join(TEST_SETS)}")
    return TEST_SETS[name](root)
