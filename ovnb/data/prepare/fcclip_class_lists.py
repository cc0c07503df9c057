"""FC-CLIP's class names with synonyms ("prompt engineering" lists), one file per dataset.

    ovnb data prepare fcclip-class-lists --root data

Result: ``data/fcclip_class_lists/<dataset>_with_prompt_eng.txt``, fetched from the official
repository at a pinned commit and checked by their class counts (the repository publishes no
checksums). Each line is ``id:synonym,synonym,...``; ``ovnb.data.class_lists.fcclip_synonyms``
reads them as the official ``openseg_classes.get_*_with_prompt_eng`` does (id 0 and
``invalid_class_id`` lines skipped, except for Cityscapes and PASCAL VOC-21, whose 0 is a class).
These synonyms are the text classifier's input and decide which test classes count as seen (an
exact synonym match with COCO panoptic's), so they are part of the protocol.
"""

from __future__ import annotations

from pathlib import Path

from .download import fetch_pinned

COMMIT = "2b0bbe213070d44da9182530fa2e826fef03f974"
BASE_URL = f"https://raw.githubusercontent.com/bytedance/fc-clip/{COMMIT}/fcclip/data/datasets"
SOURCES = {"fc-clip": BASE_URL}
FOLDER = "fcclip_class_lists"
#: file stem -> number of classes it names (after the skipped lines)
FILES = {"coco_panoptic": 133, "ade20k_150": 150, "ade20k_847": 847, "pascal_ctx_59": 59, "pascal_ctx_459": 459,
         "pascal_voc_21": 21, "cityscapes": 19, "mapillary_vistas": 65, "coco_stuff": 171, "lvis_1203": 1203}
KEEP_ZERO = ("cityscapes", "pascal_voc_21")  # files whose id 0 is a class


def filename(stem: str) -> str:
    return f"{stem}_with_prompt_eng.txt"


def parse(text: str, keep_zero: bool = False) -> list[str]:
    """The class entries of one file in order: each a comma-separated synonym string."""
    entries = []
    for line in text.splitlines():
        if not line.strip():
            continue
        idx, _, names = line.partition(":")
        if names == "invalid_class_id" or (int(idx) == 0 and not keep_zero):
            continue
        entries.append(names)
    return entries


def check(root: Path) -> list[str]:
    """Problems with the lists under ``root/fcclip_class_lists`` (empty when every file has its count)."""
    problems = []
    for stem, count in FILES.items():
        path = Path(root) / FOLDER / filename(stem)
        if not path.is_file():
            problems.append(f"{path}: missing")
            continue
        n = len(parse(path.read_text(), stem in KEEP_ZERO))
        if n != count:
            problems.append(f"{path}: {n} classes, expected {count}")
    return problems


def prepare(root: Path, sources: dict = SOURCES) -> Path:
    root = Path(root)
    fetch_pinned(sources["fc-clip"], [filename(stem) for stem in FILES], root / FOLDER)
    problems = check(root)
    if problems:
        raise RuntimeError("FC-CLIP class lists do not match the official class counts:\n  " + "\n  ".join(problems))
    print(f"FC-CLIP's class lists ready in {root / FOLDER}")
    return root / FOLDER
