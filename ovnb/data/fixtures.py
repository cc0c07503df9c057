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
* ``coco_panoptic(root)``, ``ade20k_panoptic(root)``, ``mapillary_vistas(root)``: the panoptic datasets in
  the COCO panoptic format (things as two instances, some crowds); ``cityscapes`` writes the
  ``*_gtFine_instanceIds.png`` its panoptic segments are read from.

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
            _save(base / "gtFine" / image_set / city / f"{name}_gtFine_instanceIds.png", _cityscapes_instances(mask, i))
            scenes[f"{image_set}/{city}/{name}"] = labels
    return scenes


def _halves(region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A rectangle's top and bottom halves (split at its middle row): two instances of one thing."""
    ys, _ = np.nonzero(region)
    top = region.copy()
    top[(ys.min() + ys.max() + 1) // 2:] = False
    return top, region & ~top


def _cityscapes_instances(labels: np.ndarray, index: int) -> np.ndarray:
    """``*_gtFine_instanceIds.png`` for a label-id mask: each thing rectangle (label id >= 24) split into two
    instances (``label * 1000 + k``) down its middle row, except in every third image, where the lower half
    is a group without instance ids (the label id itself: a crowd); other pixels keep their label id."""
    out = labels.astype(np.uint16)
    for label in np.unique(labels).tolist():
        if label < 24:
            continue
        top, bottom = _halves(labels == label)
        out[top] = label * 1000
        out[bottom] = label if index % 3 == 0 else label * 1000 + 1
    return out


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


def _panoptic_scene(rng: np.random.Generator, cats: list[tuple[int, bool]], size, crowd: bool = False):
    """An RGB image, a segment-id map and its COCO-format segments: one rectangle per category
    ``(dataset id, is thing)``; a thing's rectangle is two instances (top and bottom half; with ``crowd``
    the first thing's bottom half is a crowd region); the top row and the gaps are void (0)."""
    image, mask = _scene(rng, list(range(1, len(cats) + 1)), size)
    segments = np.zeros(mask.shape, np.int64)
    info = []
    first_thing = True
    for k, (cat, thing) in enumerate(cats):
        region = mask == k + 1
        parts = _halves(region) if thing else (region,)
        for j, part in enumerate(parts):
            sid = 1000 * (k + 1) + j + 1  # ids as large as real ones use the G channel too
            segments[part] = sid
            is_crowd = int(crowd and thing and first_thing and j == 1)
            info.append({"id": sid, "category_id": int(cat), "iscrowd": is_crowd, "area": int(part.sum())})
        first_thing = first_thing and not thing
    return image, segments, info


def _write_coco_format(images_dir: Path, panoptic_dir: Path, json_path: Path, categories: list[dict],
                       groups: list[list[tuple[int, bool]]], names: list[str], rng, image_suffix: str = ".jpg",
                       crowd_every: int = 3, sizes=SIZES) -> dict[str, list[int]]:
    import json

    from .panoptic import id_to_rgb

    images, annotations, scenes = [], [], {}
    for i, (cats, name) in enumerate(zip(groups, names)):
        image, segments, info = _panoptic_scene(rng, cats, sizes[i % len(sizes)], crowd=i % crowd_every == 0)
        _save(images_dir / f"{name}{image_suffix}", image)
        _save(panoptic_dir / f"{name}.png", id_to_rgb(segments))
        h, w = segments.shape
        images.append({"id": name, "file_name": f"{name}{image_suffix}", "height": h, "width": w})
        annotations.append({"image_id": name, "file_name": f"{name}.png", "segments_info": info})
        scenes[name] = [c for c, _ in cats]
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return scenes


def coco_panoptic(root: str | Path, seed: int = 0) -> dict[str, list[int]]:
    """COCO panoptic 2017 as ``ovnb data prepare coco-panoptic-2017`` lays it out: 133 categories (COCO's 80
    things with their ids, then 53 stand-in stuff categories ``stuff i`` with COCO-Stuff's first stuff ids, as
    the ``fcclip-class-lists`` fixture names them), images named apart from the ``coco_stuff`` fixture's.
    val2017 holds every category, four per image; things are two instances each; every third image has a
    crowd. Returns ``<image set>/<name>`` -> category ids."""
    from .semseg import COCO_THING_LIMIT, _classes

    root = Path(root)
    rng = np.random.default_rng(seed)
    stored = _classes()["coco_stuff_171"]
    things = [(v + 1, n) for v, n in stored if v < COCO_THING_LIMIT]
    stuff = [(v + 1, f"stuff {k}") for k, (v, _) in enumerate([x for x in stored if x[0] >= COCO_THING_LIMIT][:53])]
    categories = [{"id": c, "name": n, "isthing": 1} for c, n in things] + \
                 [{"id": c, "name": n, "isthing": 0} for c, n in stuff]
    cats = [(c["id"], bool(c["isthing"])) for c in categories]
    scenes = {}
    for image_set, groups in (("val2017", [cats[k:k + 4] for k in range(0, 133, 4)]),
                              ("train2017", [cats[k:k + 4] for k in range(0, 133, 12)])):
        names = [f"{100000 + i:012d}" for i in range(len(groups))]
        made = _write_coco_format(root / "coco" / image_set, root / "coco" / f"panoptic_{image_set}",
                                  root / "coco" / "annotations" / f"panoptic_{image_set}.json", categories, groups,
                                  names, rng)
        scenes.update({f"{image_set}/{k}": v for k, v in made.items()})
    return scenes


def ade20k_panoptic(root: str | Path) -> dict[str, int]:
    """ADE20K panoptic as ``ovnb data prepare ade20k-panoptic`` produces it: the ``ade20k`` fixture (made
    first if missing) gains the instance annotations (each thing rectangle two instances, R = its instance
    category, G = instance id; in every other image the second instance also covers the first stuff
    rectangle's right column, as ADE20K's two annotations overlap), then the preparation's own conversion
    runs. Returns image set -> number of images."""
    from PIL import Image

    from .panoptic import _classes as pan_classes
    from .prepare.ade20k_panoptic import SETS, convert

    root = Path(root)
    base = root / "ADEChallengeData2016"
    if not (base / "annotations" / "validation").is_dir():
        ade20k(root)
    to_instance = {s: i + 1 for i, s in enumerate(pan_classes()["ade20k_instance_to_semantic"])}
    counts = {}
    for image_set in SETS:
        paths = sorted((base / "annotations" / image_set).glob("*.png"))
        for n, path in enumerate(paths):
            semantic = np.asarray(Image.open(path))
            inst = np.zeros((*semantic.shape, 3), np.uint8)
            next_id = 1
            for c in np.unique(semantic).tolist():
                if c not in to_instance:
                    continue
                for part in _halves(semantic == c):
                    inst[part, 0], inst[part, 1] = to_instance[c], next_id
                    next_id += 1
            stuff = [c for c in np.unique(semantic).tolist() if c and c not in to_instance]
            if n % 2 and stuff and next_id > 1:
                column = np.nonzero((semantic == stuff[0]).any(0))[0].max()
                rows = semantic[:, column] == stuff[0]
                inst[rows, column, 0], inst[rows, column, 1] = inst[inst[..., 1] == next_id - 1][0, 0], next_id - 1
            _save(base / "annotations_instance" / image_set / path.name, inst)
        (base / f"ade20k_panoptic_{SETS[image_set]}.json").unlink(missing_ok=True)  # converted again, not kept
        convert(base, image_set, progress=False)
        counts[image_set] = len(paths)
    return counts


def mapillary_vistas(root: str | Path, seed: int = 0) -> dict[str, list[int]]:
    """Mapillary Vistas v1.2 as its archive ships it: ``mapillary_vistas/validation/{images,panoptic}`` with
    ``panoptic/panoptic_2018.json``; 65 categories (ids 1..65, ``class i`` as the ``fcclip-class-lists``
    fixture names them; the first 20 are things, as Mapillary's things are a minority), five per image.
    Returns ``validation/<name>`` -> category ids."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    categories = [{"id": i + 1, "name": f"class {i}", "isthing": int(i < 20)} for i in range(65)]
    cats = [(c["id"], bool(c["isthing"])) for c in categories]
    groups = [cats[k:k + 5] for k in range(0, 65, 5)]
    names = [f"fixture{i:05d}" for i in range(len(groups))]
    base = root / "mapillary_vistas" / "validation"
    made = _write_coco_format(base / "images", base / "panoptic", base / "panoptic" / "panoptic_2018.json",
                              categories, groups, names, rng, sizes=((24, 48), (32, 40)))  # five classes abreast
    return {f"validation/{k}": v for k, v in made.items()}


FAMILIES = {"voc2012": voc, "coco2014": coco, "fss1000": fss, "coco-stuff-164k": coco_stuff, "ade20k-150": ade20k,
            "cityscapes-19": cityscapes, "pascal-context": pascal_context, "ade20k-847": ade20k_full,
            "coco-instances-2017": coco_instances, "fcclip-class-lists": fcclip_class_lists,
            "coco-panoptic-2017": coco_panoptic, "ade20k-panoptic": ade20k_panoptic, "mapillary-vistas": mapillary_vistas}
#: bumped when a family's files change, so that fixture roots made by an older ``ovnb`` are made again
VERSION = 2


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
    header = f"ovnb.data.fixtures-{VERSION}"
    lines = done.read_text().split() if done.is_file() else []
    made = set(lines[1:]) if lines[:1] == [header] else set()
    missing = [name for name in FAMILIES if name not in made]
    if missing:
        make(root, missing)
        done.write_text("\n".join([header, *FAMILIES]) + "\n")
    return root
