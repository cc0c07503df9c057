"""Class lists the papers publish: PnP-OVSS's per-image GPT-4o lists and FC-CLIP's synonym lists.

**FC-CLIP** (``fcclip_synonyms``): one comma-separated synonym string per class of a split, in the
split's class order, from the official ``*_with_prompt_eng.txt`` files (``ovnb data prepare
fcclip-class-lists``). PAS-20 is PAS-21 without its background entry, as the official registration.

**PnP-OVSS** (below): per-image candidate classes for the captions, the official GPT-4o lists.

Each entry of the published JSON files (``ovnb data prepare gpt4o-lists``) is GPT-4o's answer for
one image, ``"[id: 'name', id: name, ...], [p1, p2%, ...]"``: the ids are the dataset's own (VOC,
PASCAL-Context, ADE20K: 1-based class numbers; COCO: category ids), one probability (%) per id. The
official evaluation keeps the classes with probability **> 70** (strict) and has two fallbacks,
reproduced here:

* an empty answer becomes id 1 at 100 % (VOC / PASCAL-Context: aeroplane, ADE20K: wall, COCO: person);
* when no class passes the threshold, the list is the dataset's first class.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

#: our split -> (official file stem, first entry used)
FCCLIP_FILES = {"coco-panoptic-133": ("coco_panoptic", 0), "ade20k-150": ("ade20k_150", 0),
                "ade20k-847": ("ade20k_847", 0), "pascal-context-59": ("pascal_ctx_59", 0),
                "pascal-context-459": ("pascal_ctx_459", 0), "voc-21": ("pascal_voc_21", 0),
                "voc-20": ("pascal_voc_21", 1), "cityscapes-19": ("cityscapes", 0),
                "mapillary-vistas-65": ("mapillary_vistas", 0), "coco-stuff-171": ("coco_stuff", 0)}


def fcclip_synonyms(root: str | Path, split: str) -> list[str]:
    """FC-CLIP's synonym string of every class of ``split`` (e.g. ``"wall,walls,brick wall"``)."""
    from .prepare import fcclip_class_lists as F

    if split not in FCCLIP_FILES:
        raise ValueError(f"FC-CLIP publishes no class list for {split!r}; there are lists for {list(FCCLIP_FILES)}")
    stem, first = FCCLIP_FILES[split]
    from .files import require

    path = require(Path(root) / F.FOLDER / F.filename(stem), ("fcclip-class-lists",), Path(root),
                   "FC-CLIP's class list", layout="ovnb/data/prepare/fcclip_class_lists.py")
    return F.parse(path.read_text(), stem in F.KEEP_ZERO)[first:]


FILES = {"voc-21": "voc", "pascal-context-60": "psc", "ade20k-151": "ade20k", "coco-object-81": "coco_object",
         "coco-stuff-172": "coco_stuff"}
THRESHOLD = 70


def parse(entry: str) -> list[tuple[int, int]]:
    """``[(id, probability), ...]`` of one answer (an empty answer: ``[]``). As the official reader:
    the class list and the probability list are split at the ``], [`` between them (line breaks
    between them allowed); an id is the number before an item's ``:``, a probability the number
    after an item's last ``:`` with its ``%`` dropped."""
    text = entry.strip()
    if not text.strip("[], \n"):
        return []
    parts = re.split(r"\]\s*,?\s*\[", text, maxsplit=1)
    if len(parts) != 2:
        raise ValueError(f"GPT-4o answer {entry!r} does not hold a class list and a probability list")
    head, tail = (x.strip("[] \n") for x in parts)
    ids = [int(item.split(":")[0].strip(" '\"\n[")) for item in head.split(",") if ":" in item]
    probs = [int(float(item.split(":")[-1].strip().rstrip("]").strip().rstrip("%"))) for item in tail.split(",")
             if item.strip()]
    if len(probs) != len(ids):
        raise ValueError(f"GPT-4o answer {entry!r}: {len(ids)} class ids but {len(probs)} probabilities")
    return list(zip(ids, probs))


def chosen_ids(entry: str, threshold: int = THRESHOLD) -> list[int]:
    """The dataset ids the official code keeps for one answer: probability > ``threshold``; an empty
    answer counts as id 1 at 100 %; none kept: ``[]`` (the caller falls back to the first class)."""
    pairs = parse(entry) or [(1, 100)]
    return [i for i, p in pairs if p > threshold]


def load(root: str | Path, split: str) -> dict:
    """The answers for ``split``'s images, keyed by image id (the file's keys)."""
    if split not in FILES:
        raise ValueError(f"no GPT-4o lists for {split!r}; there are lists for {list(FILES)}")
    path = Path(root) / "gpt4o_lists" / f"{FILES[split]}_classification_noboundary.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; run `ovnb data prepare gpt4o-lists --root {root}`")
    return json.loads(path.read_text())


def image_key(split: str, sample_id: str) -> str:
    """The file's key for a sample id (``"<split-name>/<key>"``): the file stem; ADE20K ``ADE_val_%08d``."""
    stem = Path(sample_id.split("/", 1)[-1]).stem
    if split == "ade20k-151" and not stem.startswith("ADE_val_"):
        stem = "ADE_val_" + stem.rjust(8, "0")
    return stem


def candidates(answers: dict, split: str, sample_id: str, to_index, threshold: int = THRESHOLD) -> list[int]:
    """Class indices (of the split) for one image: ``to_index(dataset_id)`` maps the answer's ids; the
    first class (index 1: the split's index 0 is background) when nothing passes."""
    ids = chosen_ids(answers[image_key(split, sample_id)], threshold)
    out = [to_index(i) for i in ids]
    return [c for c in dict.fromkeys(out) if c is not None] or [1]
