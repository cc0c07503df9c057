"""ADE20K-150: the MIT Scene Parsing benchmark (ADEChallengeData2016), SimBaseline's Table 1 and 6
cross-dataset target (FC-CLIP and PnP-OVSS evaluate on it too).

    ovnb data prepare ade20k-150 --root data

Result: ``data/ADEChallengeData2016/{images,annotations}/{training,validation}/*`` exactly as the
archive ships it (mask value = class id 1..150, 0 = "other", ignored). Nothing is converted on disk:
``ovnb.data.semseg.label_map("ade20k-150")`` maps 1..150 to 0..149 and 0 to 255 when a mask is read
(detectron2's ``prepare_ade20k_sem_seg.py`` writes the same as a second copy of every mask).
"""

from __future__ import annotations

from pathlib import Path

from .download import fetch_missing

SOURCES = {"ade": ("http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip",
                   "ADEChallengeData2016.zip", None)}


def prepare(root: Path, sources: dict = SOURCES) -> Path:
    root = Path(root)
    base = root / "ADEChallengeData2016"
    fetch_missing(root / "downloads", [(sources["ade"], "ADEChallengeData2016", base)])
    missing = [d for d in ("images/validation", "annotations/validation") if not (base / d).is_dir()]
    if missing:
        raise FileNotFoundError(f"{base}: missing {missing} after preparation")
    print(f"ADE20K-150 ready in {base}")
    return base
