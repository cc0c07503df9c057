"""Panoptic datasets (FC-CLIP's Tables 1, 2, 5-8): images with segments, as the panoptic benchmarks
publish them, extending the semantic layer (``semseg``) with instances.

A sample is ``{"image": uint8 [3, H, W], "mask": int64 [H, W], "instances": int64 [H, W],
"segments": int64 [H, W], "segments_info": [{"id", "category_id", "iscrowd"}], "id": str}``:

* ``segments`` / ``segments_info``: the ground-truth panoptic map (segment ids, 0 = void) with each
  segment's contiguous class and crowd flag - what PQ is computed against (``ovnb.panoptic``);
* ``mask``: the semantic mask derived from it (every segment's class, crowds included; 255 = void),
  as the official ``prepare_coco_semantic_annos_from_panoptic_annos.py`` writes it;
* ``instances``: 1.. per non-crowd thing segment, 0 elsewhere (the toy world's format), so training
  (``ovnb.panoptic.training_targets``: crowds are not targets, as in Mask2Former's dataset mapper)
  and scoring read toy and real samples alike.

Categories come in the dataset's category-id order, the contiguous order the official class lists
(``fcclip_synonyms``) follow. Datasets:

* ``coco_panoptic``: COCO panoptic 2017 (133 classes, FC-CLIP's training set), the COCO format:
  ``coco/annotations/panoptic_<set>.json`` + ``coco/panoptic_<set>/*.png`` (segment id = R + 256 G +
  256^2 B) + COCO-Stuff-164k's images (``ovnb data prepare coco-panoptic-2017``).
* ``ade20k_panoptic``: ADE20K panoptic (150 classes, 100 of them things), converted by ``ovnb data
  prepare ade20k-panoptic`` into the COCO format as Mask2Former's ``prepare_ade20k_pan_seg.py`` does
  (``convert_ade20k``).
* ``cityscapes_panoptic``: Cityscapes' 19 classes with the 8 thing classes' instances, read from the
  ``*_gtFine_instanceIds.png`` the gtFine archive ships, with cityscapesScripts' ``createPanopticImgs``
  rules (``cityscapes_segments``): nothing is converted on disk.
* ``mapillary_vistas``: Mapillary Vistas v1.2 panoptic (65 classes), the COCO format as it ships.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import yaml

from .semseg import IGNORE_INDEX

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Categories:
    """A panoptic dataset's classes in contiguous order: names, the dataset's own ids and thing flags;
    ``split`` names its class list for the text classifier (``class_lists.fcclip_synonyms``)."""

    split: str
    names: tuple[str, ...]
    ids: tuple[int, ...]
    thing: tuple[bool, ...]

    @property
    def contiguous(self) -> dict[int, int]:
        return {c: i for i, c in enumerate(self.ids)}

    @classmethod
    def from_json(cls, split: str, categories: list[dict]) -> "Categories":
        """From a COCO-format ``categories`` list, sorted by id (detectron2's contiguous order)."""
        cats = sorted(categories, key=lambda c: c["id"])
        return cls(split, tuple(c["name"] for c in cats), tuple(int(c["id"]) for c in cats),
                   tuple(bool(c["isthing"]) for c in cats))


def rgb_to_id(rgb: np.ndarray) -> np.ndarray:
    """Segment ids of a COCO-format panoptic PNG ``[H, W, 3]``: R + 256 G + 256^2 B (panopticapi's ``rgb2id``)."""
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


def id_to_rgb(ids: np.ndarray) -> np.ndarray:
    """The inverse of ``rgb_to_id`` (panopticapi's ``id2rgb``): uint8 ``[H, W, 3]``."""
    ids = ids.astype(np.int64)
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536 % 256], axis=-1).astype(np.uint8)


class PanopticImages(torch.utils.data.Dataset):
    """Images of one panoptic dataset (samples as in the module docstring). ``load(key)`` returns the
    image, the segment-id map and the segments with the dataset's category ids; segments of a
    category not in ``categories`` become void."""

    def __init__(self, keys: list[str], load, categories: Categories, name: str):
        self.keys, self.load, self.categories, self.name = list(keys), load, categories, name

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.categories.names

    @property
    def thing(self) -> list[bool]:
        return list(self.categories.thing)

    def __getitem__(self, index: int) -> dict:
        key = self.keys[index]
        image, segments, raw = self.load(key)
        to = self.categories.contiguous
        info = [{"id": int(s["id"]), "category_id": to[int(s["category_id"])], "iscrowd": int(s.get("iscrowd", 0))}
                for s in raw if int(s["category_id"]) in to and int(s["id"]) != 0]
        ids, inverse = torch.unique(segments, return_inverse=True)
        cls = torch.full((len(ids),), IGNORE_INDEX, dtype=torch.long)
        inst = torch.zeros(len(ids), dtype=torch.long)
        kept = []
        position = {int(v): i for i, v in enumerate(ids.tolist())}
        for s in info:  # a segment listed without pixels stays listed: the COCO API counts it as a miss
            if s["id"] not in position:
                continue
            j = position[s["id"]]
            cls[j] = s["category_id"]
            if self.categories.thing[s["category_id"]] and not s["iscrowd"]:
                inst[j] = len(kept) + 1
                kept.append(s["id"])
        listed = {s["id"] for s in info}
        segments = torch.where(torch.isin(segments, torch.tensor(sorted(listed) or [-1])), segments,
                               torch.zeros_like(segments))
        return {"image": image, "mask": cls[inverse], "instances": inst[inverse], "segments": segments,
                "segments_info": info, "id": f"{self.name}/{key}"}


def _read_ids(path: Path) -> torch.Tensor:
    from PIL import Image

    return torch.from_numpy(rgb_to_id(np.asarray(Image.open(path).convert("RGB"))))


def coco_format(name: str, split: str, images: Path, panoptic: Path, json_path: Path,
                image_suffix: str = ".jpg") -> PanopticImages:
    """A panoptic dataset in the COCO format: one PNG per image under ``panoptic`` named as the json's
    ``annotations[*].file_name``, the image of the same stem under ``images``."""
    from .files import read_image

    data = json.loads(Path(json_path).read_text())
    categories = Categories.from_json(split, data["categories"])
    annotations = {Path(a["file_name"]).stem: a for a in data["annotations"]}
    keys = sorted(k for k in annotations if (images / f"{k}{image_suffix}").is_file())

    def load(key):
        a = annotations[key]
        return read_image(images / f"{key}{image_suffix}"), _read_ids(panoptic / a["file_name"]), a["segments_info"]

    return PanopticImages(keys, load, categories, name)


def coco_panoptic(root: str | Path, image_set: str = "val2017") -> PanopticImages:
    """COCO panoptic 2017 (133 classes) from ``root/coco`` (``ovnb data prepare coco-panoptic-2017``)."""
    from .files import require

    if image_set not in ("train2017", "val2017"):
        raise ValueError(f"image_set must be 'train2017' or 'val2017', got {image_set!r}")
    root = Path(root)
    needs, msg = ("coco-panoptic-2017",), "coco-panoptic-133: "
    images = require(root / "coco" / image_set, needs, root, f"COCO {image_set} images", msg,
                     "ovnb.data.prepare.coco_panoptic2017")
    ann = require(root / "coco" / "annotations" / f"panoptic_{image_set}.json", needs, root,
                  f"panoptic_{image_set}.json", msg, "ovnb.data.prepare.coco_panoptic2017")
    pngs = require(root / "coco" / f"panoptic_{image_set}", needs, root, f"panoptic_{image_set}/", msg,
                   "ovnb.data.prepare.coco_panoptic2017")
    return coco_format(f"coco-panoptic-{image_set}", "coco-panoptic-133", images, pngs, ann)


def ade20k_panoptic(root: str | Path, image_set: str = "validation") -> PanopticImages:
    """ADE20K panoptic (150 classes) from ``root/ADEChallengeData2016`` as ``ovnb data prepare
    ade20k-panoptic`` converts it."""
    from .files import require

    if image_set not in ("training", "validation"):
        raise ValueError(f"image_set must be 'training' or 'validation', got {image_set!r}")
    root = Path(root)
    tag = "train" if image_set == "training" else "val"
    base = root / "ADEChallengeData2016"
    msg = "ade20k-panoptic: "
    images = require(base / "images" / image_set, ("ade20k-panoptic",), root, f"images/{image_set}", msg,
                     "ovnb.data.prepare.ade20k_panoptic")
    ann = require(base / f"ade20k_panoptic_{tag}.json", ("ade20k-panoptic",), root, f"ade20k_panoptic_{tag}.json",
                  msg, "ovnb.data.prepare.ade20k_panoptic")
    pngs = require(base / f"ade20k_panoptic_{tag}", ("ade20k-panoptic",), root, f"ade20k_panoptic_{tag}/", msg,
                   "ovnb.data.prepare.ade20k_panoptic")
    return coco_format(f"ade20k-panoptic-{image_set}", "ade20k-150", images, pngs, ann)


def mapillary_vistas(root: str | Path, image_set: str = "validation") -> PanopticImages:
    """Mapillary Vistas v1.2 panoptic (65 classes) from ``root/mapillary_vistas`` (``ovnb data prepare
    mapillary-vistas``, from the archive you download after registering)."""
    from .files import require

    if image_set not in ("training", "validation"):
        raise ValueError(f"image_set must be 'training' or 'validation', got {image_set!r}")
    root = Path(root)
    base = root / "mapillary_vistas" / image_set
    needs, msg, layout = ("mapillary-vistas",), "mapillary-vistas-65: ", "ovnb.data.prepare.mapillary_vistas"
    images = require(base / "images", needs, root, f"{image_set}/images", msg, layout)
    ann = require(base / "panoptic" / "panoptic_2018.json", needs, root, f"{image_set}/panoptic/panoptic_2018.json",
                  msg, layout)
    return coco_format(f"mapillary-vistas-{image_set}", "mapillary-vistas-65", images, ann.parent, ann)


# ----------------------------------------------------------------------------------------------
# Cityscapes: panoptic segments from the instanceIds PNGs

@lru_cache(maxsize=1)
def _classes() -> dict:
    return yaml.safe_load((HERE / "panoptic_classes.yaml").read_text())


def cityscapes_categories() -> Categories:
    """Cityscapes' 19 evaluated classes (label ids, train-id order) with cityscapesScripts' ``hasInstances``."""
    from .semseg import _classes as semseg_classes

    labels = semseg_classes()["cityscapes_19"]
    things = set(_classes()["cityscapes_thing_label_ids"])
    return Categories("cityscapes-19", tuple(n for _, n in labels), tuple(i for i, _ in labels),
                      tuple(i in things for i, _ in labels))


def cityscapes_segments(instance_ids: np.ndarray) -> list[dict]:
    """cityscapesScripts' ``createPanopticImgs`` rules for one ``*_gtFine_instanceIds.png``: every value is
    a segment; a value >= 1000 is ``label id * 1000 + instance`` (not crowd), a value below 1000 is a label
    id (a crowd when that label has instances: a group of things); labels the benchmark ignores are
    dropped. Category ids are label ids."""
    cats = cityscapes_categories()
    evaluated = dict(zip(cats.ids, cats.thing))
    out = []
    for value in np.unique(instance_ids).tolist():
        label = value if value < 1000 else value // 1000
        if label not in evaluated:
            continue
        out.append({"id": int(value), "category_id": int(label), "iscrowd": int(value < 1000 and evaluated[label])})
    return out


def cityscapes_panoptic(root: str | Path, image_set: str = "val") -> PanopticImages:
    """Cityscapes panoptic (19 classes, 8 with instances) from ``root/cityscapes`` (``ovnb data prepare
    cityscapes-19``)."""
    from PIL import Image

    from .files import read_image, require

    if image_set not in ("train", "val"):
        raise ValueError(f"image_set must be 'train' or 'val', got {image_set!r}")
    root = Path(root)
    base = require(root / "cityscapes", ("cityscapes-19",), root, "cityscapes", "cityscapes-19: ",
                   "ovnb.data.prepare.cityscapes")
    images = require(base / "leftImg8bit" / image_set, ("cityscapes-19",), root, f"leftImg8bit/{image_set}",
                     "cityscapes-19: ", "ovnb.data.prepare.cityscapes")
    masks = require(base / "gtFine" / image_set, ("cityscapes-19",), root, f"gtFine/{image_set}", "cityscapes-19: ",
                    "ovnb.data.prepare.cityscapes")
    suffix = "_gtFine_instanceIds"
    keys = sorted(str(p.relative_to(masks))[:-len(suffix) - 4] for p in masks.glob(f"*/*{suffix}.png"))

    def load(key):
        ids = np.asarray(Image.open(masks / f"{key}{suffix}.png")).astype(np.int64)
        return (read_image(images / f"{key}_leftImg8bit.png"), torch.from_numpy(ids), cityscapes_segments(ids))

    return PanopticImages(keys, load, cityscapes_categories(), f"cityscapes-panoptic-{image_set}")


# ----------------------------------------------------------------------------------------------
# ADE20K: semantic + instance annotations -> COCO-format panoptic (Mask2Former's conversion)

def ade20k_categories(names: list[str]) -> list[dict]:
    """The 150 COCO-format categories of ADE20K panoptic (ids 0..149; things: the 100 classes of the
    instance annotations)."""
    things = set(s - 1 for s in _classes()["ade20k_instance_to_semantic"])
    return [{"id": i, "name": n, "isthing": int(i in things)} for i, n in enumerate(names)]


def convert_ade20k(semantic: np.ndarray, instance: np.ndarray) -> tuple[np.ndarray, list[dict]]:
    """One image's panoptic map (segment ids) and segments from its semantic annotation (``uint8``, 1..150,
    0 = other) and its instance annotation (``[H, W, 3]``: R = instance category 1..100, G = instance
    id, 0 = none), as ``prepare_ade20k_pan_seg.py``: one segment per stuff class present (thing classes'
    semantic pixels are not used), then one per instance, painted over the stuff (the two annotations
    overlap); an instance's class is its category's semantic class (``ade20k_instance_to_semantic``).
    Segment ids are 1, 2, ... (the official script draws them from panopticapi's colour generator: other
    numbers, the same segments); ``area`` is counted when a segment is painted, as there."""
    to_semantic = _classes()["ade20k_instance_to_semantic"]
    things = set(s - 1 for s in to_semantic)
    out = np.zeros(semantic.shape, np.int64)
    segments: list[dict] = []
    cls = semantic.astype(np.int64) - 1
    for c in np.unique(cls).tolist():
        if c < 0 or c in things:
            continue
        region = cls == c
        segments.append({"id": len(segments) + 1, "category_id": int(c), "iscrowd": 0, "area": int(region.sum())})
        out[region] = len(segments)
    for inst in np.unique(instance[..., 1]).tolist():
        if inst == 0:
            continue
        region = instance[..., 1] == inst
        cats = np.unique(instance[..., 0][region])
        if len(cats) != 1:
            raise ValueError(f"instance {inst} has {len(cats)} categories {cats.tolist()}; expected one")
        segments.append({"id": len(segments) + 1, "category_id": int(to_semantic[int(cats[0]) - 1] - 1), "iscrowd": 0,
                         "area": int(region.sum())})
        out[region] = len(segments)
    return out, segments  # a stuff segment painted over entirely stays listed, as in the official json
