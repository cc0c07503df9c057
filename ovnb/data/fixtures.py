"""Fixture datasets made by code, in exactly the layouts ``ovnb data prepare`` produces.

A handful of small images with masks per dataset family, so that every real-data code path (the
loaders, the fold protocols, Table 5's transfer, Mosaic-4) can run where no dataset can be
downloaded: in the tests and in a dry run of the notebooks. Nothing here is committed data; every
function writes under the ``root`` it is given (a ``DATA_ROOT``) and returns what it wrote.

* ``voc(root)``: ``VOCdevkit/VOC2012/{JPEGImages,SegmentationClassAug,ImageSets/Segmentation}``
  and HSNet's ``splits/pascal/{trn,val}/fold{0..3}.txt``: every VOC class appears, so every fold
  has training and test pairs.
* ``coco(root)``: ``COCO2014/{train2014,val2014}`` with ``annotations/<split>/*.png`` (class ids
  1..80 in HSNet's order) and HSNet's ``splits/coco/{trn,val}/fold{0..3}.pkl`` (0-based class keys).
* ``fss(root)``: ``FSS-1000/<class>/{1..10}.{jpg,png}`` and ``splits/fss/{trn,val,test}.txt``.
* ``coco_stuff(root)``: ``coco/{train2017,val2017}/*.jpg`` and ``coco/stuffthingmaps/<set>/*.png``.
* ``ade20k(root)``: ``ADEChallengeData2016/{images,annotations}/{training,validation}/*``.
* ``cityscapes(root)``: ``cityscapes/{leftImg8bit,gtFine}/{train,val}/<city>/*``.
* ``pascal_context(root)``: ``VOCdevkit/VOC2010/{JPEGImages,ImageSets/Main,trainval/*.mat}``.
* ``ade20k_full(root)``: ``ADE20K_2021_17_01/{images,annotations}_detectron2/validation/*`` (converted).
* ``coco_instances(root)``: ``coco/annotations/instances_val2017.json`` for the ``coco_stuff`` val images:
  one box-shaped instance per thing class of each image (written after ``coco_stuff``).

Masks hold one rectangle per class on background 0, with a void (255) border row as SBD has. Image
sizes cycle through ``SIZES`` (the ``i``-th image of a family has ``SIZES[i % 3]``).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

SIZES = ((24, 32), (30, 22), (20, 36))  # height, width: small, not square and not all alike, as real
# datasets' images are not, so code that stacks images of one batch without resizing fails here too
SIZE = SIZES[0]


def _save(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _scene(rng: np.random.Generator, classes: list[int], size=SIZE) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image and its class-id mask: one rectangle per class, left to right."""
    h, w = size
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    step = w // max(len(classes), 1)
    for k, c in enumerate(classes):
        mask[4:h - 4, k * step + 2:(k + 1) * step - 2] = c
        image[mask == c] = (37 * c) % 256  # a flat colour per class, so a model could learn it
    mask[0, :] = 255
    return image, mask


def voc(root: str | Path, seed: int = 0) -> dict[str, list[int]]:
    """PASCAL VOC 2012 + SBD masks + HSNet's PASCAL-5i fold lists; returns image name -> classes."""
    root = Path(root)
    base = root / "VOCdevkit" / "VOC2012"
    rng = np.random.default_rng(seed)
    scenes = {f"2008_{c:06d}": [c, c % 20 + 1] for c in range(1, 21)}  # every class twice, in two images
    for i, (name, classes) in enumerate(scenes.items()):
        image, mask = _scene(rng, classes, SIZES[i % len(SIZES)])
        _save(base / "JPEGImages" / f"{name}.jpg", image)
        _save(base / "SegmentationClassAug" / f"{name}.png", mask)
    listing = base / "ImageSets" / "Segmentation"
    listing.mkdir(parents=True, exist_ok=True)
    names = sorted(scenes)
    (listing / "train.txt").write_text("\n".join(names[:10]) + "\n")
    (listing / "val.txt").write_text("\n".join(names[10:]) + "\n")
    for split in ("trn", "val"):
        for fold in range(4):
            fold_classes = set(range(5 * fold + 1, 5 * fold + 6))
            lines = [f"{n}__{c}" for n in names for c in scenes[n] if c in fold_classes]
            path = root / "splits" / "pascal" / split / f"fold{fold}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(lines) + "\n")
    return scenes


def coco(root: str | Path, seed: int = 0) -> dict[str, list[int]]:
    """COCO 2014 images + HSNet class-id masks + HSNet's COCO-20i pickles; returns image path -> classes."""
    root = Path(root)
    base = root / "COCO2014"
    rng = np.random.default_rng(seed)
    scenes: dict[str, list[int]] = {}
    for split, pickle_split in (("train2014", "trn"), ("val2014", "val")):
        for i, c in enumerate(range(1, 81, 2)):  # 40 images a split, two classes each: all 80 classes
            name = f"{split}/COCO_{split}_{i:012d}"
            image, mask = _scene(rng, [c, c + 1], SIZES[i % len(SIZES)])
            _save(base / f"{name}.jpg", image)
            _save(base / "annotations" / f"{name}.png", mask)
            scenes[f"{name}.jpg"] = [c, c + 1]
        for fold in range(4):
            fold_classes = {fold + 4 * k + 1 for k in range(20)}
            wanted = fold_classes if pickle_split == "val" else set(range(1, 81)) - fold_classes
            classwise = {c - 1: [n for n, cs in scenes.items() if n.startswith(split) and c in cs] for c in sorted(wanted)}
            path = root / "splits" / "coco" / pickle_split / f"fold{fold}.pkl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(pickle.dumps(classwise))
    return scenes


def fss(root: str | Path, per_split: int = 5, seed: int = 0) -> dict[str, list[str]]:
    """FSS-1000 (10 images a class) and its class split; returns split -> class names."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    splits = {s: [f"fixture_{s}_{k}" for k in range(per_split)] for s in ("trn", "val", "test")}
    for names in splits.values():
        for name in names:
            for n in range(1, 11):
                image, mask = _scene(rng, [1], size=(20, 20))
                _save(root / "FSS-1000" / name / f"{n}.jpg", image)
                _save(root / "FSS-1000" / name / f"{n}.png", np.where(mask == 1, 255, 0).astype(np.uint8))
    for split, names in splits.items():
        path = root / "splits" / "fss" / f"{split}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(names) + "\n")
    return splits


def coco_stuff(root: str | Path, seed: int = 0) -> dict[str, list[int]]:
    """COCO-Stuff-164k: COCO 2017 images and stuffthingmaps (stored values = COCO category id - 1);
    returns ``<image set>/<name>`` -> stored values. Every one of the 171 classes appears in both image
    sets; one training image holds unseen classes only (the unseen-pixel rule must drop it)."""
    from .semseg import _classes

    root = Path(root)
    rng = np.random.default_rng(seed)
    stored = [v for v, _ in _classes()["coco_stuff_171"]]
    unseen = {v for v, n in _classes()["coco_stuff_171"] if n in set(_classes()["coco_stuff_171_unseen"])}
    scenes: dict[str, list[int]] = {}
    for image_set in ("train2017", "val2017"):
        groups = [stored[i:i + 3] for i in range(0, len(stored), 3)]  # 57 images of three classes each
        if image_set == "train2017":
            groups.append(sorted(unseen)[:2])  # nothing seen in it
        for i, values in enumerate(groups):
            name = f"{i + 1:012d}"
            image, mask = _scene(rng, [v + 1 for v in values], SIZES[i % len(SIZES)])  # 0 is "person" here:
            mask = np.where((mask == 0) | (mask == 255), 255, mask.astype(np.int64) - 1).astype(np.uint8)  # unlabeled 255
            _save(root / "coco" / image_set / f"{name}.jpg", image)
            _save(root / "coco" / "stuffthingmaps" / image_set / f"{name}.png", mask)
            scenes[f"{image_set}/{name}"] = values
    return scenes


def ade20k(root: str | Path, seed: int = 0) -> dict[str, list[int]]:
    """ADE20K-150 as the archive ships it (mask value = class id 1..150, 0 = other); returns
    ``<image set>/<name>`` -> class ids. The validation images hold every class, three per image."""
    root = Path(root)
    base = root / "ADEChallengeData2016"
    rng = np.random.default_rng(seed)
    scenes: dict[str, list[int]] = {}
    for image_set, tag in (("training", "train"), ("validation", "val")):
        groups = [list(range(c, min(c + 3, 151))) for c in range(1, 151, 3)] if image_set == "validation" else [[1, 2], [3]]
        for i, classes in enumerate(groups):
            name = f"ADE_{tag}_{i + 1:08d}"
            image, mask = _scene(rng, classes, SIZES[i % len(SIZES)])
            mask[mask == 255] = 0  # ADE20K has no void border: "other" is 0
            _save(base / "images" / image_set / f"{name}.jpg", image)
            _save(base / "annotations" / image_set / f"{name}.png", mask)
            scenes[f"{image_set}/{name}"] = classes
    return scenes


def cityscapes(root: str | Path, seed: int = 0) -> dict[str, list[int]]:
    """Cityscapes as its archives ship it (``*_gtFine_labelIds.png`` holds label ids: 7 road ... 33
    bicycle, 0 unlabeled); returns ``<image set>/<city>/<name>`` -> label ids. The val images hold all
    19 evaluation classes and one id (5, "dynamic") that the protocol ignores."""
    from .semseg import _classes

    root = Path(root)
    base = root / "cityscapes"
    rng = np.random.default_rng(seed)
    ids = [i for i, _ in _classes()["cityscapes_19"]]
    scenes: dict[str, list[int]] = {}
    for image_set, groups in (("val", [ids[k:k + 4] for k in range(0, 19, 4)] + [[5, 7]]), ("train", [[7, 26]])):
        for i, labels in enumerate(groups):
            city = ("frankfurt", "lindau")[i % 2] if image_set == "val" else "aachen"
            name = f"{city}_{i:06d}_000019"
            image, mask = _scene(rng, labels, SIZES[i % len(SIZES)])
            mask[mask == 255] = 0  # the unlabeled id
            _save(base / "leftImg8bit" / image_set / city / f"{name}_leftImg8bit.png", image)
            _save(base / "gtFine" / image_set / city / f"{name}_gtFine_labelIds.png", mask)
            scenes[f"{image_set}/{city}/{name}"] = labels
    return scenes


def pascal_context(root: str | Path, seed: int = 0) -> dict[str, list[int]]:
    """PASCAL-Context as its two archives ship it: VOC 2010 images with ``ImageSets/Main/{train,val}.txt``
    and one ``trainval/<id>.mat`` per image whose 16-bit ``LabelMap`` holds labels 1..459 (0 =
    unlabeled); returns ``<image set>/<id>`` -> labels. The val images hold all 59 frequent labels, four
    per image, beside labels outside the 59 (ignored there, classes of PC-459)."""
    from scipy.io import savemat

    from .semseg import _classes

    root = Path(root)
    base = root / "VOCdevkit" / "VOC2010"
    rng = np.random.default_rng(seed)
    frequent = [label for label, _ in _classes()["pascal_context_59"]]
    others = [1, 3, 459]  # accordion, air conditioner and the last label: not among the 59
    groups = {"val": [frequent[k:k + 4] for k in range(0, 59, 4)] + [others], "train": [[2, 1], [259]]}
    scenes: dict[str, list[int]] = {}
    for image_set, sets in groups.items():
        keys = []
        for i, labels in enumerate(sets):
            key = f"2008_{(1 if image_set == 'train' else 5) * 1000 + i:06d}"
            image, mask = _scene(rng, list(range(1, len(labels) + 1)), SIZES[i % len(SIZES)])
            label_map_ = np.zeros(mask.shape, np.uint16)  # the unlabeled border and gaps: 0
            for k, label in enumerate(labels):
                label_map_[mask == k + 1] = label
            _save(base / "JPEGImages" / f"{key}.jpg", image)
            (base / "trainval").mkdir(parents=True, exist_ok=True)
            savemat(base / "trainval" / f"{key}.mat", {"LabelMap": label_map_})
            scenes[f"{image_set}/{key}"] = labels
            keys.append(key)
        (base / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
        (base / "ImageSets" / "Main" / f"{image_set}.txt").write_text("\n".join(keys) + "\n")
    return scenes


def ade20k_full(root: str | Path, seed: int = 0) -> dict[str, list[int]]:
    """ADE20K-847 as ``ovnb data prepare ade20k-847`` converts it (16-bit train ids 0..846, 65535 =
    none of them); returns ``validation/<name>`` -> train ids. Every class appears, eight per image."""
    root = Path(root)
    base = root / "ADE20K_2021_17_01"
    rng = np.random.default_rng(seed)
    scenes: dict[str, list[int]] = {}
    for i, start in enumerate(range(0, 847, 8)):
        ids = list(range(start, min(start + 8, 847)))
        name = f"ADE_val_{i + 1:08d}"
        image, mask = _scene(rng, list(range(1, len(ids) + 1)), (24, 64))  # wide: eight classes side by side
        stored = np.full(mask.shape, 65535, np.uint16)
        for k, train_id in enumerate(ids):
            stored[mask == k + 1] = train_id
        _save(base / "images_detectron2" / "validation" / f"{name}.jpg", image)
        _save(base / "annotations_detectron2" / "validation" / f"{name}.png", stored)
        scenes[f"validation/{name}"] = ids
    return scenes


def coco_instances(root: str | Path) -> dict[str, list[int]]:
    """COCO 2017 instance annotations for the ``coco_stuff`` fixture's val images (made first if
    missing): per image, one instance per thing class, a polygon of the class's bounding box.
    Returns ``<image name>`` -> category ids."""
    import json

    from PIL import Image

    root = Path(root)
    maps = root / "coco" / "stuffthingmaps" / "val2017"
    if not maps.is_dir():
        coco_stuff(root)
    images, annotations, scenes = [], [], {}
    for index, path in enumerate(sorted(maps.glob("*.png"))):
        mask = np.array(Image.open(path))
        h, w = mask.shape
        images.append({"id": index + 1, "file_name": f"{path.stem}.jpg", "height": h, "width": w})
        ids = []
        for value in sorted(int(v) for v in np.unique(mask) if v < 90):
            ys, xs = np.nonzero(mask == value)
            x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
            annotations.append({"id": len(annotations) + 1, "image_id": index + 1, "category_id": value + 1,
                                "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]], "area": (x1 - x0) * (y1 - y0),
                                "bbox": [x0, y0, x1 - x0, y1 - y0], "iscrowd": 0})
            ids.append(value + 1)
        scenes[path.stem] = ids
    from .semseg import COCO_THING_LIMIT, _classes

    categories = [{"id": v + 1, "name": n, "supercategory": "thing"} for v, n in _classes()["coco_stuff_171"]
                  if v < COCO_THING_LIMIT]
    out = root / "coco" / "annotations" / "instances_val2017.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return scenes


def fcclip_class_lists(root: str | Path) -> dict[str, int]:
    """FC-CLIP's ``*_with_prompt_eng.txt`` files with the official class counts: each class is named
    as our split names it (``name,names``: two synonyms), or ``class i`` where the split is not ours."""
    from .prepare import fcclip_class_lists as F
    from .semseg import split

    ours = {"ade20k_150": "ade20k-150", "ade20k_847": "ade20k-847", "pascal_ctx_59": "pascal-context-59",
            "pascal_ctx_459": "pascal-context-459", "cityscapes": "cityscapes-19", "coco_stuff": "coco-stuff-171"}
    counts = {}
    for stem, count in F.FILES.items():
        if stem in ours:
            names = list(split(ours[stem]).class_names)
        elif stem == "pascal_voc_21":
            names = ["background"] + list(split("voc-20").class_names)
        elif stem == "coco_panoptic":  # COCO's 80 things as COCO-Stuff names them, then 53 stand-in stuff names
            names = list(split("coco-stuff-171").class_names[:80]) + [f"stuff {i}" for i in range(53)]
        else:
            names = [f"class {i}" for i in range(count)]
        start = 0 if stem in F.KEEP_ZERO else 1
        lines = [] if start == 0 else ["0:invalid_class_id"]
        lines += [f"{start + i}:{n},{n}s" for i, n in enumerate(names[:count])]
        path = Path(root) / F.FOLDER / F.filename(stem)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
        counts[stem] = count
    return counts


FAMILIES = {"voc2012": voc, "coco2014": coco, "fss1000": fss, "coco-stuff-164k": coco_stuff, "ade20k-150": ade20k,
            "cityscapes-19": cityscapes, "pascal-context": pascal_context, "ade20k-847": ade20k_full,
            "coco-instances-2017": coco_instances, "fcclip-class-lists": fcclip_class_lists}


def make(root: str | Path, families=tuple(FAMILIES)) -> Path:
    """Every fixture family (or the ones named) under ``root``; returns ``root``. Deterministic, so
    making them again over an earlier copy writes the same files."""
    for name in families:
        FAMILIES[name](root)
    return Path(root)


def data_root(profile, requested: str | Path = "data") -> Path:
    """Where a notebook reads real datasets in ``profile``: ``requested`` (its ``DATA_ROOT``), or,
    in a profile with ``fixtures`` (the dry run), ``build/fixtures``, made here on first use - a
    user's ``DATA_ROOT`` with real data in it is never written to."""
    from .. import results

    if not getattr(profile, "fixtures", False):
        return Path(requested)
    root = results.build_dir() / "fixtures"
    done = root / ".complete"  # the families made so far, one per line (a newer ovnb may add families)
    made = set(done.read_text().split()[1:]) if done.is_file() else set()
    missing = [name for name in FAMILIES if name not in made]
    if missing:
        make(root, missing)
        done.write_text("\n".join(["ovnb.data.fixtures", *FAMILIES]) + "\n")
    return root
