"""PnP-OVSS's published GPT-4o class lists: for every test image of VOC, PASCAL-Context, ADE20K,
COCO-Object and COCO-Stuff, the classes GPT-4o named and how sure it was (the lists the paper's
Table 3 puts in its captions; ``ovnb.data.class_lists`` reads them).

    ovnb data prepare gpt4o-lists --root data

Result: ``data/gpt4o_lists/{voc,psc,ade20k,coco_object,coco_stuff}_classification_noboundary.json``,
fetched from the official repository at a pinned commit and checked against their entry counts
(1,449 / 5,104 / 2,000 / 5,000 / 5,000; the repository publishes no checksums).
"""

from __future__ import annotations

import json
from pathlib import Path

from .download import fetch_pinned

COMMIT = "e43996255fac8526bb43a0375a734dbb638d1a61"
BASE_URL = f"https://raw.githubusercontent.com/letitiabanana/PnP-OVSS/{COMMIT}/GPT4o_classification"
SOURCES = {"pnp-ovss": BASE_URL}
FILES = {"voc": 1449, "psc": 5104, "ade20k": 2000, "coco_object": 5000, "coco_stuff": 5000}
FOLDER = "gpt4o_lists"


def filename(key: str) -> str:
    return f"{key}_classification_noboundary.json"


def check(root: Path) -> list[str]:
    """Problems with the lists under ``root/gpt4o_lists`` (empty when every file has its entry count)."""
    problems = []
    for key, count in FILES.items():
        path = Path(root) / FOLDER / filename(key)
        if not path.is_file():
            problems.append(f"{path}: missing")
            continue
        n = len(json.loads(path.read_text()))
        if n != count:
            problems.append(f"{path}: {n} entries, expected {count}")
    return problems


def prepare(root: Path, sources: dict = SOURCES) -> Path:
    root = Path(root)
    fetch_pinned(sources["pnp-ovss"], [filename(key) for key in FILES], root / FOLDER)
    problems = check(root)
    if problems:
        raise RuntimeError("GPT-4o lists do not match the official entry counts:\n  " + "\n  ".join(problems))
    print(f"PnP-OVSS's GPT-4o class lists ready in {root / FOLDER}")
    return root / FOLDER
