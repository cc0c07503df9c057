"""The toy world: a seeded, procedural world in which open-vocabulary segmentation is real.

Scenes are coloured shapes ("things": "red star", "blue ring") on textured backgrounds ("stuff":
"sky", "brick wall"), with a pixel mask and a caption naming every class in the scene. Class names
are compositional (colour x shape), so a model that learned the words from captions can segment a
combination it never saw with a mask - the situation every paper of the book is about.

Every image is a pure function of ``(seed, split, index)``: ``np.random.default_rng`` seeded with
those three numbers draws the layout, and drawing uses only array arithmetic, so the same seed gives
the same bytes on every run.

``ToyWorld`` is a ``torch.utils.data.Dataset`` yielding the sample format every dataset of the book
uses (see ``ovnb.data.Sample``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import yaml

HERE = Path(__file__).parent
IGNORE_INDEX = 255
SPLITS = {"pretrain": 0, "train": 1, "val": 2, "test": 3, "crops": 4, "mosaic": 5, "pairs": 6}
KINDS = ("scene", "single", "stuff")


@dataclass(frozen=True)
class Vocabulary:
    colours: tuple[str, ...]
    shapes: tuple[str, ...]
    stuff: tuple[str, ...]
    rgb: dict
    stuff_style: dict

    @property
    def things(self) -> tuple[str, ...]:
        return tuple(f"{c} {s}" for c in self.colours for s in self.shapes)

    @property
    def names(self) -> tuple[str, ...]:
        """All class names; a class id is an index into this tuple."""
        return self.things + self.stuff

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"{name!r} is not a toy class; e.g. {self.names[:3]} ... {self.names[-2:]}") from None

    def is_thing(self, class_id: int) -> bool:
        return class_id < len(self.things)

    def colour_shape(self, class_id: int) -> tuple[int, int]:
        return divmod(class_id, len(self.shapes))


@lru_cache(maxsize=None)
def vocabulary() -> Vocabulary:
    raw = yaml.safe_load((HERE / "toy_vocabulary.yaml").read_text())
    return Vocabulary(
        colours=tuple(raw["colours"]), shapes=tuple(raw["shapes"]), stuff=tuple(raw["stuff"]),
        rgb={k: np.array(v, dtype=np.float64) for k, v in raw["colours"].items()},
        stuff_style={k: {"colour": np.array(v["colour"], dtype=np.float64),
                         "second": np.array(v["second"], dtype=np.float64), "texture": v["texture"],
                         "position": v["position"]}
                     for k, v in raw["stuff"].items()},
    )


# ----------------------------------------------------------------------------------------------
# Splits shaped like the benchmarks


@lru_cache(maxsize=None)
def splits() -> dict:
    """The toy benchmark splits as class-id lists (see ``toy_splits.yaml``).

    ``folds[i]``: the 12 thing classes unseen in fold i. ``zero_shot``: seen/unseen over all
    classes. ``voc``: seen/unseen over things only.
    """
    raw = yaml.safe_load((HERE / "toy_splits.yaml").read_text())
    voc = vocabulary()
    folds = [[] for _ in range(4)]
    for class_id in range(len(voc.things)):
        c, s = voc.colour_shape(class_id)
        folds[(c + s) % 4].append(class_id)
    zs_unseen = sorted(voc.index(n) for n in raw["zero_shot_unseen"])
    voc_unseen = sorted(voc.index(n) for n in raw["voc_unseen"])
    for name in raw["voc_unseen"]:
        if not voc.is_thing(voc.index(name)):
            raise ValueError(f"toy_splits.yaml: voc_unseen must hold things only, got {name!r}")
    return {
        "folds": folds,
        "zero_shot": {"seen": [i for i in range(len(voc.names)) if i not in zs_unseen], "unseen": zs_unseen},
        "voc": {"seen": [i for i in range(len(voc.things)) if i not in voc_unseen], "unseen": voc_unseen},
    }


# ----------------------------------------------------------------------------------------------
# Drawing


def shape_mask(shape: str, size: int, cx: float, cy: float, r: float, angle: float = 0.0) -> np.ndarray:
    """Boolean mask of ``shape`` centred at (cx, cy) with radius ``r`` (pixels) on a size x size grid."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    u, v = (xx - cx) / r, (yy - cy) / r
    if angle:
        ca, sa = math.cos(angle), math.sin(angle)
        u, v = ca * u + sa * v, -sa * u + ca * v
    au, av = np.abs(u), np.abs(v)
    rr = u * u + v * v
    if shape == "circle":
        return rr <= 1.0
    if shape == "square":
        return np.maximum(au, av) <= 0.8
    if shape == "diamond":
        return au + av <= 1.05
    if shape == "triangle":
        return (v <= 0.75) & (v >= -1.0 + (1.75 / 0.95) * au)
    if shape == "cross":
        return ((au <= 0.3) & (av <= 0.95)) | ((av <= 0.3) & (au <= 0.95))
    if shape == "ring":
        return (rr <= 1.0) & (rr >= 0.36)
    if shape == "star":
        theta = np.arctan2(v, u) + math.pi / 2
        a = np.mod(theta, 2 * math.pi / 5) / (2 * math.pi / 5)
        return np.sqrt(rr) <= 0.42 + 0.62 * np.abs(a - 0.5) * 2 * 0.9
    if shape == "heart":
        x, y = 1.25 * u, -1.25 * v + 0.3
        return (x * x + y * y - 1.0) ** 3 - x * x * y ** 3 <= 0.0
    raise ValueError(f"unknown shape {shape!r}")


def stuff_texture(name: str, size: int, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    """An RGB float image (size x size x 3) filled with the texture of stuff class ``name``."""
    style = vocabulary().stuff_style[name]
    base, second, kind = style["colour"], style["second"], style["texture"]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    yy, xx = yy / scale, xx / scale
    mix = np.zeros((size, size))  # 0 = base colour, 1 = second colour
    if kind == "gradient":
        mix = np.clip(1.0 - yy * scale / size, 0, 1) * 0.8
    elif kind == "speckle":
        mix = (rng.random((size, size)) < 0.22).astype(np.float64)
    elif kind == "blades":
        cols = rng.random(size) < 0.35
        mix = cols[None, :] * (rng.random((size, size)) < 0.8)
    elif kind == "waves":
        phase = rng.random() * 8
        band = np.mod(yy + 1.5 * np.abs(np.mod(xx / 6 + phase, 2) - 1), 6.0)
        mix = (band < 2.0).astype(np.float64)
    elif kind == "bricks":
        off = rng.integers(0, 12)
        row = np.floor(yy / 6)
        col = np.mod(xx + off + 6 * np.mod(row, 2), 12)
        mix = ((np.mod(yy, 6) < 1) | (col < 1)).astype(np.float64)
    elif kind == "planks":
        off = rng.integers(0, 8)
        seam = np.mod(yy + off, 8) < 1
        mix = np.where(seam, 1.0, 0.4 * (np.mod(np.floor((yy + off) / 8), 2) == 1))
    elif kind == "tiles":
        off = rng.integers(0, 10)
        mix = ((np.mod(yy + off, 10) < 1) | (np.mod(xx + off, 10) < 1)).astype(np.float64)
    elif kind == "weave":
        mix = (np.mod(np.floor(yy / 2) + np.floor(xx / 2), 2) == 0).astype(np.float64) * 0.7
    elif kind in ("blobs", "pebbles"):
        count = int(size * size / (60 if kind == "pebbles" else 140))
        radius = (1.5, 3.5) if kind == "pebbles" else (3.0, 7.0)
        for _ in range(count):
            cx, cy = rng.random(2) * size / scale
            r = rng.uniform(*radius)
            mix[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = 1.0
    else:
        raise ValueError(f"unknown texture {kind!r} for stuff {name!r}")
    img = base[None, None, :] * (1 - mix[..., None]) + second[None, None, :] * mix[..., None]
    return img + rng.normal(0.0, 5.0, size=(size, size, 1))


def _caption(names_of_things: list[str], stuff: list[str], rng: np.random.Generator) -> str:
    things = [("an " if n[0] in "aeiou" else "a ") + n for n in names_of_things]
    if not things:
        if len(stuff) == 1:
            return ["a photo of {}", "{} everywhere", "a close-up of {}"][rng.integers(3)].format(stuff[0])
        return f"{stuff[1]} below {stuff[0]}"
    thing_text = things[0] if len(things) == 1 else ", ".join(things[:-1]) + " and " + things[-1]
    if len(stuff) == 1:
        template = ["{} on {}", "a photo of {} on {}", "{} in front of {}"][rng.integers(3)]
        return template.format(thing_text, stuff[0])
    return ["{} on {} under {}", "a photo of {} on {} below {}"][rng.integers(2)].format(thing_text, stuff[1], stuff[0])


@dataclass(frozen=True)
class WorldStyle:
    """Generation parameters. ``shifted()`` is the cross-dataset variant (sizes, palette, textures)."""

    radius: tuple[float, float] = (0.12, 0.24)  # thing radius as a fraction of the image size
    single_radius: tuple[float, float] = (0.30, 0.42)
    rotation: float = 0.0  # max |rotation| of shapes, radians
    palette_shift: float = 0.0  # blend of each colour toward its neighbour in the palette
    texture_scale: float = 1.0
    colour_jitter: float = 10.0
    name: str = "toy"

    @staticmethod
    def shifted() -> "WorldStyle":
        return WorldStyle(radius=(0.08, 0.34), single_radius=(0.22, 0.46), rotation=0.5, palette_shift=0.2,
                          texture_scale=1.6, colour_jitter=18.0, name="toy-shifted")


def draw(rng: np.random.Generator, size: int, kind: str = "scene", style: WorldStyle = WorldStyle(),
         things: list[int] | None = None, n_things: int | None = None) -> dict:
    """Draw one sample: ``kind`` is ``scene`` (1-3 things on 1-2 stuff), ``single`` (one large thing)
    or ``stuff`` (background only). ``things`` restricts which thing classes may appear."""
    voc = vocabulary()
    n_thing_classes = len(voc.things)
    allowed = list(range(n_thing_classes)) if things is None else list(things)
    stuff_ids = list(range(n_thing_classes, len(voc.names)))
    # background: one stuff, or two split by a horizon (a "top" stuff above a "bottom" one)
    two = kind == "scene" and rng.random() < 0.6
    if two:
        tops = [i for i in stuff_ids if voc.stuff_style[voc.names[i]]["position"] == "top"]
        bottoms = [i for i in stuff_ids if voc.stuff_style[voc.names[i]]["position"] == "bottom"]
        bg = [int(rng.choice(tops)), int(rng.choice(bottoms))]
    else:
        bg = [int(rng.choice(stuff_ids))]
    image = stuff_texture(voc.names[bg[-1]], size, rng, style.texture_scale)
    mask = np.full((size, size), bg[-1], dtype=np.uint8)
    if two:
        top = stuff_texture(voc.names[bg[0]], size, rng, style.texture_scale)
        horizon = rng.uniform(0.3, 0.6) * size
        wobble = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:size, 0:size]
        above = yy < horizon + 2.0 * np.abs(np.mod(xx / 9.0 + wobble, 2.0) - 1.0)
        image[above] = top[above]
        mask[above] = bg[0]
    placed = []
    instances = np.zeros((size, size), dtype=np.uint8)  # 1.. = the n-th thing drawn, 0 = stuff
    if kind != "stuff":
        count = 1 if kind == "single" else (n_things or int(rng.choice([1, 2, 3], p=[0.45, 0.35, 0.2])))
        for _ in range(count):
            cls = int(rng.choice(allowed))
            c, s = voc.colour_shape(cls)
            lo, hi = style.single_radius if kind == "single" else style.radius
            r = rng.uniform(lo, hi) * size
            margin = 0.5 * r
            cx, cy = rng.uniform(margin, size - margin, size=2)
            if kind == "single":
                cx, cy = size / 2 + rng.uniform(-0.1, 0.1, size=2) * size
            angle = rng.uniform(-style.rotation, style.rotation) if style.rotation else 0.0
            m = shape_mask(voc.shapes[s], size, cx, cy, r, angle)
            if not m.any():
                continue
            rgb = voc.rgb[voc.colours[c]]
            if style.palette_shift:
                rgb = (1 - style.palette_shift) * rgb + style.palette_shift * voc.rgb[voc.colours[(c + 1) % len(voc.colours)]]
            rgb = rgb + rng.uniform(-style.colour_jitter, style.colour_jitter, size=3)
            shade = 1.0 + 0.12 * (np.mgrid[0:size, 0:size][0] - cy) / max(r, 1.0)
            obj = rgb[None, None, :] * np.clip(shade, 0.8, 1.2)[..., None] + rng.normal(0, 4.0, size=(size, size, 1))
            image[m] = obj[m]
            mask[m] = cls
            placed.append(cls)
            instances[m] = len(placed)
    visible_things = [c for c in dict.fromkeys(placed) if (mask == c).any()]
    visible_stuff = [b for b in bg if (mask == b).any()]
    caption = _caption([voc.names[c] for c in visible_things], [voc.names[b] for b in visible_stuff], rng)
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return {"image": image, "mask": mask, "caption": caption,
            "classes": sorted(visible_things + visible_stuff), "instances": instances}


def mosaic4(rng: np.random.Generator, size: int, style: WorldStyle = WorldStyle(),
            things: list[int] | None = None) -> dict:
    """A 2x2 mosaic of four single-object images of four different thing classes (Mosaic-4 analogue).

    ``mask`` holds the thing class inside each object and 255 elsewhere (each quadrant's background
    is no query class); ``classes`` lists the four things, top-left to bottom-right.
    """
    voc = vocabulary()
    allowed = list(range(len(voc.things))) if things is None else list(things)
    chosen = [int(c) for c in rng.choice(allowed, size=4, replace=False)]
    half = size // 2
    image = np.zeros((size, size, 3), dtype=np.uint8)
    mask = np.full((size, size), IGNORE_INDEX, dtype=np.uint8)
    instances = np.zeros((size, size), dtype=np.uint8)
    for q, cls in enumerate(chosen):
        tile = draw(rng, half, "single", style, things=[cls])
        y, x = divmod(q, 2)
        image[y * half:(y + 1) * half, x * half:(x + 1) * half] = tile["image"]
        tile_mask = np.where(tile["mask"] == cls, cls, IGNORE_INDEX).astype(np.uint8)
        mask[y * half:(y + 1) * half, x * half:(x + 1) * half] = tile_mask
        instances[y * half:(y + 1) * half, x * half:(x + 1) * half] = np.where(tile["mask"] == cls, q + 1, 0)
    names = ", ".join(("an " if voc.names[c][0] in "aeiou" else "a ") + voc.names[c] for c in chosen)
    return {"image": image, "mask": mask, "caption": f"a mosaic of {names}", "classes": chosen,
            "instances": instances}


@lru_cache(maxsize=16384)  # about 16 KB a 64-px sample: at most ~260 MB
def _render(seed: int, split: str, index: int, size: int, kind: str, style: "WorldStyle", things) -> dict:
    """Sample ``index`` of a world; it depends only on these arguments (its own random generator)."""
    rng = np.random.default_rng([seed, SPLITS[split], index, 1 if style.name != "toy" else 0])
    if kind == "mixed":
        u = rng.random()
        kind = "scene" if u < 0.5 else "single" if u < 0.85 else "stuff"
    if kind == "mosaic":
        sample = mosaic4(rng, size, style, None if things is None else list(things))
    else:
        sample = draw(rng, size, kind, style, None if things is None else list(things))
    for value in sample.values():
        if isinstance(value, np.ndarray):
            value.flags.writeable = False  # shared between callers
    return sample


class ToyWorld(torch.utils.data.Dataset):
    """``length`` toy samples of one ``split``; sample ``i`` depends only on (seed, split, i).

    kind: ``scene`` | ``single`` | ``stuff`` | ``mosaic`` | ``mixed`` (pretraining: half scenes, a third
    single objects, the rest stuff only). ``shifted=True`` draws the cross-dataset variant.
    """

    def __init__(self, split: str = "train", length: int = 1000, seed: int = 0, image_size: int = 64,
                 kind: str = "scene", shifted: bool = False, things: list[int] | None = None):
        if split not in SPLITS:
            raise ValueError(f"unknown toy split {split!r}; valid: {sorted(SPLITS)}")
        if kind not in KINDS + ("mosaic", "mixed"):
            raise ValueError(f"unknown toy kind {kind!r}; valid: {KINDS + ('mosaic', 'mixed')}")
        if image_size < 16 or (kind == "mosaic" and image_size % 2):
            raise ValueError(f"image_size must be >= 16 (and even for mosaics), got {image_size}")
        self.split, self.length, self.seed, self.image_size = split, length, seed, image_size
        self.kind, self.style, self.things = kind, WorldStyle.shifted() if shifted else WorldStyle(), things
        self.class_names = vocabulary().names

    def __len__(self) -> int:
        return self.length

    def raw(self, index: int) -> dict:
        """The sample as numpy arrays (HWC uint8 image, HW uint8 mask), read-only: a sample is drawn
        once and kept (``_render``), since training reads the same few thousand scenes many times."""
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} samples")
        sample = _render(self.seed, self.split, index, self.image_size, self.kind, self.style,
                         None if self.things is None else tuple(self.things))
        return {**sample, "classes": list(sample["classes"])}

    def __getitem__(self, index: int) -> dict:
        s = self.raw(index)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(s["image"].transpose(2, 0, 1))),  # uint8 [3, H, W]
            "mask": torch.from_numpy(s["mask"].astype(np.int64)),  # int64 [H, W], 255 = ignore
            "caption": s["caption"],
            "classes": s["classes"],
            "instances": torch.from_numpy(s["instances"].astype(np.int64)),  # 1.. per thing instance, 0 = stuff
            "id": f"{self.style.name}/{self.split}/{self.seed}/{index}",
        }
