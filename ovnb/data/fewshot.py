"""The fold benchmarks of Fusioner (and LSeg, HSNet): PASCAL-5i, COCO-20i, FSS-1000, Mosaic-4,
the COCO -> PASCAL VOC transfer of Table 5, and their toy-world analogues.

An **episode** is one (image, queried class) pair with a binary target: 1 where the mask holds the
class, 0 elsewhere, 255 where the mask is void. Training samples are episodes of seen classes;
evaluation (``ovnb.evaluate.evaluate_folds``) accumulates ``FoldIoU`` over episodes of the fold's
unseen classes.

Folds (HSNet's, as in the official Fusioner code):

* PASCAL-5i: the unseen classes of fold i are VOC ids 5i+1 ... 5i+5. Training pairs are the union of
  HSNet's ``trn/fold{j}.txt`` for j != i (unseen classes may appear in training images, as negatives
  - only 255 is ignored); test pairs are ``val/fold{i}.txt`` (346 / 451 / 725 / 346 pairs).
* COCO-20i: the unseen classes of fold i are the 0-based ids {i, i+4, ..., i+76}. Two evaluation
  protocols, a named choice (``COCO_PROTOCOLS``):
  ``"hsnet-uniform"`` (default; HSNet / LSeg, which the paper follows): 1000 episodes, each draws a
  class uniformly, then one of its images; ``"official-first-1000"`` (the official Fusioner code):
  the first 1000 of the sorted (image, class) pairs - deterministic but class-imbalanced (551 of
  fold 0's 1000 are "person").
* FSS-1000: HSNet's 520 / 240 / 240 class split, 10 images per class, masks binarised at 128.
* Mosaic-4: 600 seeded 2x2 mosaics of four FSS-1000 test images of four different classes.

Expected layout under ``root`` (what ``ovnb data prepare`` lays out)::

    root/VOCdevkit/VOC2012/JPEGImages/*.jpg
    root/VOCdevkit/VOC2012/SegmentationClassAug/*.png     (SBD-augmented masks, values 0..20, 255)
    root/COCO2014/{train2014,val2014}/*.jpg
    root/COCO2014/annotations/{train2014,val2014}/*.png    (class ids 1..80 in HSNet order, 0 bg)
    root/FSS-1000/<class>/<n>.jpg, <n>.png
    root/splits/pascal/{trn,val}/fold{0..3}.txt, root/splits/coco/{trn,val}/fold{0..3}.pkl,
    root/splits/fss/{trn,val,test}.txt                    (HSNet's split files)
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import yaml

from . import files
from .files import DatasetMissingError, read_image as _read_image, read_mask as _read_mask  # noqa: F401

HERE = Path(__file__).parent
IGNORE_INDEX = 255
COCO_PROTOCOLS = ("hsnet-uniform", "official-first-1000")
# the prepared datasets (``ovnb.data.prepare``) each benchmark family reads
NEEDS = {"pascal": ("voc2012", "fewshot-splits"), "coco": ("coco2014", "fewshot-splits"),
         "fss": ("fss1000", "fewshot-splits")}


@lru_cache(maxsize=None)
def _classes() -> dict:
    return yaml.safe_load((HERE / "fewshot_classes.yaml").read_text())


def class_names(dataset: str) -> tuple[str, ...]:
    """Class names of ``"pascal"`` or ``"coco"``; index 0 is the background, ids 1..N the classes."""
    if dataset not in ("pascal", "coco"):
        raise ValueError(f"unknown fold dataset {dataset!r}; valid: 'pascal', 'coco'")
    return tuple(_classes()[dataset])


def expected_counts() -> dict:
    return _classes()["counts"]


def fold_classes(dataset: str, fold: int) -> list[int]:
    """Unseen class ids (mask values) of ``fold``: PASCAL 5i+1..5i+5, COCO {i+1, i+5, ..., i+77}."""
    if fold not in range(4):
        raise ValueError(f"fold must be 0, 1, 2 or 3, got {fold!r}")
    if dataset == "pascal":
        return list(range(5 * fold + 1, 5 * fold + 6))
    if dataset == "coco":
        return [fold + 4 * k + 1 for k in range(20)]
    raise ValueError(f"unknown fold dataset {dataset!r}; valid: 'pascal', 'coco'")


def seen_classes(dataset: str, fold: int) -> list[int]:
    unseen = set(fold_classes(dataset, fold))
    return [c for c in range(1, len(class_names(dataset))) if c not in unseen]


def require(path: Path, dataset: str, root: Path, what: str) -> Path:
    """``path``, or a ``DatasetMissingError`` naming the layout and the command that prepares ``dataset``."""
    return files.require(path, NEEDS[dataset], root, what, f"{dataset}: ", "ovnb.data.fewshot")


class _RestrictedUnpickler(pickle.Unpickler):
    """HSNet's COCO split pickles hold plain dicts of lists of strings; refuse anything else."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a split file")


def load_split_pickle(path: Path) -> dict[int, list[str]]:
    with open(path, "rb") as f:
        data = _RestrictedUnpickler(f).load()
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a dict class -> image names, got {type(data).__name__}")
    return {int(k): [str(v) for v in vs] for k, vs in data.items()}


# ----------------------------------------------------------------------------------------------
# Episodes


@dataclass(frozen=True)
class Pair:
    image: str  # dataset-specific image key
    class_id: int


class Episodes(torch.utils.data.Dataset):
    """(image, class) pairs of a base dataset as binary episodes.

    Yields ``{"image": uint8 [3, H, W], "mask": int64 [H, W] (0/1/255), "class_id": int,
    "class_name": str, "id": str}``.
    """

    def __init__(self, pairs: list[Pair], load, class_names: tuple[str, ...], name: str):
        self.pairs, self.load, self.class_names, self.name = list(pairs), load, class_names, name

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        pair = self.pairs[index]
        image, mask = self.load(pair.image)
        return {"image": image, "mask": binary_target(mask, pair.class_id), "class_id": pair.class_id,
                "class_name": self.class_names[pair.class_id], "id": f"{self.name}/{pair.image}/{pair.class_id}"}

    def classes(self) -> list[int]:
        return sorted({p.class_id for p in self.pairs})

    def subset(self, n: int | None) -> "Episodes":
        """``n`` pairs spread evenly over the list (first and last included), so a subset keeps the
        spread of classes of a sorted list; ``None`` or ``n >= len(self)``: all of them."""
        if n is None or n >= len(self.pairs):
            return self
        if n < 1:
            raise ValueError(f"a subset needs at least one pair, got n={n}")
        picked = np.linspace(0, len(self.pairs) - 1, n).round().astype(int) if n > 1 else np.array([0])
        return Episodes([self.pairs[i] for i in picked], self.load, self.class_names, f"{self.name}-{n}of{len(self)}")


def binary_target(mask: torch.Tensor, class_id: int, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """1 where ``mask == class_id``, 0 elsewhere, ``ignore_index`` kept (HSNet's query mask)."""
    target = (mask == class_id).long()
    target[mask == ignore_index] = ignore_index
    return target


# ----------------------------------------------------------------------------------------------
# PASCAL-5i


def pascal_episodes(root: str | Path, fold: int, split: str = "val") -> Episodes:
    """PASCAL-5i episodes: ``split="val"`` the fold's test pairs, ``"trn"`` its training pairs."""
    root = Path(root)
    voc = require(root / "VOCdevkit" / "VOC2012", "pascal", root, "VOC2012")
    images = require(voc / "JPEGImages", "pascal", root, "JPEGImages")
    masks = require(voc / "SegmentationClassAug", "pascal", root, "SBD-augmented masks (SegmentationClassAug)")
    folds = [fold] if split == "val" else [j for j in range(4) if j != fold]
    if split not in ("val", "trn"):
        raise ValueError(f"split must be 'trn' or 'val', got {split!r}")
    pairs = []
    for j in folds:
        listing = require(root / "splits" / "pascal" / split / f"fold{j}.txt", "pascal", root, "split file")
        for line in listing.read_text().split():
            name, cls = line.rsplit("__", 1)
            pairs.append(Pair(name, int(cls)))

    def load(name):
        return _read_image(images / f"{name}.jpg"), _read_mask(masks / f"{name}.png")

    return Episodes(pairs, load, class_names("pascal"), f"pascal5i-fold{fold}-{split}")


# ----------------------------------------------------------------------------------------------
# COCO-20i


def coco_pairs(classwise: dict[int, list[str]], protocol: str, episodes: int = 1000, seed: int = 0) -> list[Pair]:
    """Test pairs of a COCO-20i fold under ``protocol`` (see the module docstring).

    ``classwise`` maps 0-based class ids (HSNet's pickles) to image names; pairs carry mask ids (+1).
    """
    if protocol not in COCO_PROTOCOLS:
        raise ValueError(f"unknown COCO-20i protocol {protocol!r}; valid: {COCO_PROTOCOLS}")
    if protocol == "official-first-1000":
        pairs = sorted({(img, c) for c, imgs in classwise.items() for img in imgs})
        return [Pair(img, c + 1) for img, c in pairs[:episodes]]
    rng = np.random.default_rng(seed)
    classes = sorted(c for c, imgs in classwise.items() if imgs)
    out = []
    for _ in range(episodes):
        c = classes[int(rng.integers(len(classes)))]
        imgs = classwise[c]
        out.append(Pair(imgs[int(rng.integers(len(imgs)))], c + 1))
    return out


def coco_episodes(root: str | Path, fold: int, split: str = "val", protocol: str = "hsnet-uniform",
                  episodes: int = 1000, seed: int = 0) -> Episodes:
    """COCO-20i episodes. ``split="val"``: ``episodes`` test pairs under ``protocol``; ``"trn"``: every
    (image, seen class) pair of HSNet's training pickle."""
    root = Path(root)
    base = require(root / "COCO2014", "coco", root, "COCO2014")
    require(base / "annotations", "coco", root, "class-id masks (COCO2014/annotations)")
    if split not in ("val", "trn"):
        raise ValueError(f"split must be 'trn' or 'val', got {split!r}")
    classwise = load_split_pickle(require(root / "splits" / "coco" / split / f"fold{fold}.pkl", "coco", root,
                                          "split file"))
    if split == "val":
        pairs = coco_pairs(classwise, protocol, episodes, seed)
    else:
        pairs = [Pair(img, c + 1) for c, imgs in sorted(classwise.items()) for img in imgs]

    def load(name):
        mask_path = base / "annotations" / (name[:-4] + ".png" if name.endswith(".jpg") else name + ".png")
        return _read_image(base / name), _read_mask(mask_path)

    return Episodes(pairs, load, class_names("coco"), f"coco20i-fold{fold}-{split}-{protocol}")


# ----------------------------------------------------------------------------------------------
# FSS-1000 and Mosaic-4


def fss_classes(root: str | Path, split: str = "test") -> list[str]:
    root = Path(root)
    if split not in ("trn", "val", "test"):
        raise ValueError(f"FSS-1000 split must be 'trn', 'val' or 'test', got {split!r}")
    listing = require(root / "splits" / "fss" / f"{split}.txt", "fss", root, "split file")
    return listing.read_text().split()


def fss_load(root: Path, class_name: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One FSS-1000 image and its mask binarised at 128 (HSNet): values 0 / 1."""
    folder = require(root / "FSS-1000" / class_name, "fss", root, f"class folder {class_name!r}")
    image = _read_image(folder / f"{n}.jpg")
    from PIL import Image

    with Image.open(folder / f"{n}.png") as im:
        mask = torch.from_numpy((np.asarray(im.convert("L")) >= 128).astype(np.int64))
    return image, mask


def fss_episodes(root: str | Path, split: str = "test", images_per_class: int = 10) -> Episodes:
    """Every (image, class) of an FSS-1000 split; the class id indexes ``fss_classes(root, split)``."""
    root = Path(root)
    names = fss_classes(root, split)
    pairs = [Pair(f"{c}/{n}", k) for k, c in enumerate(names) for n in range(1, images_per_class + 1)]

    def load(key):
        c, n = key.rsplit("/", 1)
        image, mask = fss_load(root, c, int(n))
        return image, torch.where(mask == 1, names.index(c), -1)

    return Episodes(pairs, load, tuple(names), f"fss1000-{split}")


class Mosaic4(torch.utils.data.Dataset):
    """Mosaic-4 (Fusioner Sec. 4.1): ``length`` (600) seeded 2x2 mosaics of four FSS-1000 test images
    of four different classes, each resized to ``tile`` x ``tile``.

    Yields ``{"image", "mask" (quadrant class index 0..3 on the object, 255 nowhere - background is
    a negative for every query, value 4), "class_names": [4 names, top-left to bottom-right], "id"}``.
    The paper does not give the tile size or the sampling; ours: classes drawn without replacement
    per mosaic, one of each class's 10 images uniformly, tiles of 224 (FSS-1000's native size).
    ``split="trn"`` builds training mosaics from the 520 training classes (the paper trains with
    |W| = 4 as well).
    """

    BACKGROUND = 4

    def __init__(self, root: str | Path, length: int = 600, seed: int = 0, tile: int = 224,
                 images_per_class: int = 10, split: str = "test"):
        self.root, self.length, self.seed, self.tile = Path(root), length, seed, tile
        self.names = fss_classes(self.root, split)
        rng = np.random.default_rng(seed)
        self.plan = [(rng.choice(len(self.names), 4, replace=False).tolist(),
                      (rng.integers(images_per_class, size=4) + 1).tolist()) for _ in range(length)]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        import torch.nn.functional as F

        classes, numbers = self.plan[index]
        t = self.tile
        image = torch.zeros(3, 2 * t, 2 * t, dtype=torch.uint8)
        mask = torch.full((2 * t, 2 * t), self.BACKGROUND, dtype=torch.int64)
        for q, (k, n) in enumerate(zip(classes, numbers)):
            img, m = fss_load(self.root, self.names[k], n)
            img = F.interpolate(img[None].float(), size=(t, t), mode="bilinear", align_corners=False, antialias=True)
            m = F.interpolate(m[None, None].float(), size=(t, t), mode="nearest")[0, 0].long()
            y, x = divmod(q, 2)
            image[:, y * t:(y + 1) * t, x * t:(x + 1) * t] = img[0].round().clamp(0, 255).to(torch.uint8)
            mask[y * t:(y + 1) * t, x * t:(x + 1) * t] = torch.where(m == 1, q, self.BACKGROUND)
        return {"image": image, "mask": mask, "class_names": [self.names[k] for k in classes],
                "id": f"mosaic4/{self.seed}/{index}"}


# ----------------------------------------------------------------------------------------------
# COCO-20i -> PASCAL VOC (Table 5)


def transfer_classes(fold: int) -> list[int]:
    """PASCAL VOC classes (mask ids) that are unseen by a model trained on COCO-20i fold ``fold``:
    the VOC classes whose COCO counterpart is in the fold's unseen set (the paper removes the seen
    classes of the training split; its supplementary has the details)."""
    coco = class_names("coco")
    unseen = {coco[c] for c in fold_classes("coco", fold)}
    return [i for i, n in enumerate(class_names("pascal")) if i and n in unseen]


# ----------------------------------------------------------------------------------------------
# The toy world's fold benchmarks


@lru_cache(maxsize=32)
def _toy_presence(split: str, length: int, seed: int, shifted: bool) -> tuple[tuple[int, ...], ...]:
    """The classes in each of ``length`` toy scenes. Finding them means drawing every scene (seconds
    for thousands), which every training process of the toy profile would repeat, so the lists are
    kept under ``build/cache/toy-presence/``, named by the world's parameters and a hash of its first
    and last scene (a changed generator never reads old lists)."""
    import hashlib
    import json

    from ..results import build_dir, write_json_atomic
    from .toy_world import ToyWorld

    world = ToyWorld(split, length, seed, kind="scene", shifted=shifted)
    h = hashlib.sha1()
    for i in sorted({0, length - 1}):
        h.update(np.ascontiguousarray(world.raw(i)["image"]).tobytes())
    path = build_dir() / "cache" / "toy-presence" / f"{split}-{length}-{seed}-{int(shifted)}-{h.hexdigest()[:12]}.json"
    if path.is_file():
        return tuple(tuple(c) for c in json.loads(path.read_text()))
    presence = tuple(tuple(world.raw(i)["classes"]) for i in range(length))
    write_json_atomic(path, presence)
    return presence


def toy_fold_episodes(fold: int, split: str = "val", images: int = 2000, episodes: int | None = 1000,
                      seed: int = 0, shifted: bool = False) -> Episodes:
    """PASCAL-5i-shaped episodes on the toy world (folds of ``ovnb.data.toy_world.splits``).

    ``split="trn"``: every (image, seen thing) pair of ``images`` training scenes (unseen things may
    appear in them, as negatives - HSNet's convention). ``split="val"``: ``episodes`` pairs of the
    fold's unseen things in test scenes, drawn as HSNet does (a class uniformly, then one of its
    images); ``episodes=None`` keeps every pair. ``shifted=True`` draws the test scenes from the
    shifted world (the cross-dataset analogue of Table 5).
    """
    from .toy_world import ToyWorld, splits, vocabulary

    if fold not in range(4):
        raise ValueError(f"fold must be 0, 1, 2 or 3, got {fold!r}")
    if split not in ("trn", "val"):
        raise ValueError(f"split must be 'trn' or 'val', got {split!r}")
    unseen = set(splits()["folds"][fold])
    things = range(len(vocabulary().things))
    wanted = unseen if split == "val" else {c for c in things if c not in unseen}
    world_split = "test" if split == "val" else "train"
    world = ToyWorld(world_split, images, seed, kind="scene", shifted=shifted)
    presence = _toy_presence(world_split, images, seed, shifted)
    pairs = [Pair(str(i), c) for i, classes in enumerate(presence) for c in classes if c in wanted]
    if split == "val" and episodes is not None:
        classwise: dict[int, list[str]] = {}
        for p in pairs:
            classwise.setdefault(p.class_id, []).append(p.image)
        # coco_pairs takes HSNet's 0-based keys and returns mask ids (+1): shift by one on the way in
        pairs = coco_pairs({c - 1: v for c, v in classwise.items()}, "hsnet-uniform", episodes, seed)

    def load(key):
        s = world[int(key)]
        return s["image"], s["mask"]

    name = f"toy{'-shifted' if shifted else ''}-fold{fold}-{split}"
    return Episodes(pairs, load, vocabulary().names, name)


class ToyMosaics(torch.utils.data.Dataset):
    """Mosaic-4 on the toy world: 2x2 mosaics of single objects of four different things from
    ``things``, in the format of ``Mosaic4`` (quadrant index on the object, 4 elsewhere)."""

    def __init__(self, split: str = "test", length: int = 600, seed: int = 0, image_size: int = 64,
                 things: list[int] | None = None):
        from .toy_world import ToyWorld, vocabulary

        self.world = ToyWorld(split, length, seed, image_size=image_size, kind="mosaic", things=things)
        self.names = vocabulary().names

    def __len__(self) -> int:
        return len(self.world)

    def __getitem__(self, index: int) -> dict:
        s = self.world[index]
        mask = torch.full_like(s["mask"], Mosaic4.BACKGROUND)
        for q, c in enumerate(s["classes"]):
            mask[s["mask"] == c] = q
        return {"image": s["image"], "mask": mask, "class_names": [self.names[c] for c in s["classes"]],
                "id": s["id"]}


# ----------------------------------------------------------------------------------------------
# Real-data training crops and the Table 5 transfer set


class TrainCrops(torch.utils.data.Dataset):
    """Training geometry of the official code, on episodes of any size, to ``size`` x ``size``.

    With probability 1/2 a random resized crop (scale 0.5-1, ratio 3/4-4/3), else shortest side to
    ``size`` and a random crop; then a horizontal flip with probability 1/4 (the official flip has
    p = 0.5 inside a block applied with p = 0.5). The official photometric and elastic
    augmentations (colour jitter, Gaussian noise, elastic, shift-scale-rotate; albumentations) are
    left out. Randomness comes from torch's global generator, which the training checkpoints save,
    so resumed runs draw the same crops.
    """

    def __init__(self, episodes, size: int = 224):
        self.episodes, self.size = episodes, size

    def __len__(self) -> int:
        return len(self.episodes)

    def __getattr__(self, name):  # pairs, classes(), load, class_names: those of the wrapped episodes
        if name == "episodes":
            raise AttributeError(name)
        return getattr(self.episodes, name)

    def __getitem__(self, index: int) -> dict:
        import torchvision.transforms.v2.functional as TF
        from torchvision.transforms.v2 import RandomResizedCrop

        s = dict(self.episodes[index])
        image, mask = s["image"], s["mask"][None]
        size = self.size
        if torch.rand(()) < 0.5:
            top, left, h, w = RandomResizedCrop.get_params(image, scale=(0.5, 1.0), ratio=(3 / 4, 4 / 3))
            image = TF.resized_crop(image, top, left, h, w, [size, size], antialias=True)
            mask = TF.resized_crop(mask, top, left, h, w, [size, size], interpolation=TF.InterpolationMode.NEAREST)
        else:
            image = TF.resize(image, size, antialias=True)
            mask = TF.resize(mask, size, interpolation=TF.InterpolationMode.NEAREST)
            H, W = image.shape[-2:]
            top = int(torch.randint(H - size + 1, ()))
            left = int(torch.randint(W - size + 1, ()))
            image, mask = image[:, top:top + size, left:left + size], mask[:, top:top + size, left:left + size]
        if torch.rand(()) < 0.25:
            image, mask = image.flip(-1), mask.flip(-1)
        s["image"], s["mask"] = image.contiguous(), mask[0].contiguous()
        return s


def transfer_episodes(root: str | Path, fold: int, split: str = "val") -> Episodes:
    """Table 5: a model trained on COCO-20i fold ``fold`` is tested on PASCAL VOC 2012 ``split``
    images, on the VOC classes unseen in that fold (``transfer_classes``): one episode per (image,
    class present). Class presence is read from the masks once and stored beside them."""
    import json

    root = Path(root)
    voc = require(root / "VOCdevkit" / "VOC2012", "pascal", root, "VOC2012")
    listing = require(voc / "ImageSets" / "Segmentation" / f"{split}.txt", "pascal", root, "image list")
    masks = require(voc / "SegmentationClassAug", "pascal", root, "SBD-augmented masks (SegmentationClassAug)")
    index_path = voc / f"ovnb-classes-{split}.json"
    if index_path.is_file():
        presence = json.loads(index_path.read_text())
    else:
        presence = {}
        for name in listing.read_text().split():
            values = torch.unique(_read_mask(masks / f"{name}.png")).tolist()
            presence[name] = [int(v) for v in values if 0 < v < 255]
        index_path.write_text(json.dumps(presence))
    wanted = set(transfer_classes(fold))
    pairs = [Pair(n, c) for n, cs in sorted(presence.items()) for c in cs if c in wanted]

    def load(name):
        return _read_image(voc / "JPEGImages" / f"{name}.jpg"), _read_mask(masks / f"{name}.png")

    return Episodes(pairs, load, class_names("pascal"), f"coco20i-fold{fold}-to-voc-{split}")
