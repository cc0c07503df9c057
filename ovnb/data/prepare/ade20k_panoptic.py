"""ADE20K panoptic (150 classes: the 100 of the instance annotations are things): FC-CLIP's Table 1,
Table 6 and Table 8 (zero-shot PQ) and Table 5's training set.

    ovnb data prepare ade20k-panoptic --root data

Needs ``ade20k-150`` (ADEChallengeData2016, prepared first when missing); downloads the 2017 challenge's
instance annotations ``annotations_instance.tar`` (R = instance category 1..100, G = instance id) into
``ADEChallengeData2016/annotations_instance/``, then converts them with the semantic annotations into the
COCO panoptic format, as Mask2Former's ``prepare_ade20k_pan_seg.py`` does (``ovnb.data.panoptic.
convert_ade20k``): ``ADEChallengeData2016/ade20k_panoptic_{train,val}.json`` and ``ade20k_panoptic_{train,
val}/*.png``. Converting the 20,210 training images takes a while; ``--only-val`` is not offered because
Table 5 trains on them; what is converted already is kept.
"""

from __future__ import annotations

import json
from pathlib import Path

from .download import fetch_missing

SOURCES = {"instances": ("http://sceneparsing.csail.mit.edu/data/ChallengeData2017/annotations_instance.tar",
                         "annotations_instance.tar", None)}
SETS = {"training": "train", "validation": "val"}


def convert(base: Path, image_set: str, progress: bool = True) -> Path:
    """Write ``ade20k_panoptic_<tag>.json`` and its PNGs for one image set of ``base`` (ADEChallengeData2016)."""
    import numpy as np
    from PIL import Image
    from tqdm.auto import tqdm

    from ..panoptic import ade20k_categories, convert_ade20k, id_to_rgb
    from ..semseg import split

    tag = SETS[image_set]
    out_dir = base / f"ade20k_panoptic_{tag}"
    out_json = base / f"ade20k_panoptic_{tag}.json"
    if out_json.is_file():
        return out_json
    out_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    files = sorted((base / "images" / image_set).glob("*.jpg"))
    for path in tqdm(files, desc=f"ADE20K panoptic ({image_set})", disable=not progress, leave=False):
        key = path.stem
        semantic = np.asarray(Image.open(base / "annotations" / image_set / f"{key}.png"))
        instance = np.asarray(Image.open(base / "annotations_instance" / image_set / f"{key}.png").convert("RGB"))
        pan, segments = convert_ade20k(semantic, instance)
        png = out_dir / f"{key}.png"
        if not png.is_file():
            Image.fromarray(id_to_rgb(pan)).save(png)
        h, w = semantic.shape
        images.append({"id": key, "file_name": path.name, "width": int(w), "height": int(h)})
        annotations.append({"image_id": key, "file_name": f"{key}.png", "segments_info": segments})
    categories = ade20k_categories(list(split("ade20k-150").class_names))
    tmp = out_json.with_suffix(".part")
    tmp.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    tmp.replace(out_json)
    return out_json


def prepare(root: Path, sources: dict = SOURCES, progress: bool = True) -> Path:
    from . import prepare as prepare_dataset

    root = Path(root)
    base = root / "ADEChallengeData2016"
    if not (base / "annotations" / "validation").is_dir():
        prepare_dataset("ade20k-150", root)
    fetch_missing(root / "downloads", [(sources["instances"], "annotations_instance", base / "annotations_instance")])
    for image_set in SETS:
        if (base / "images" / image_set).is_dir():
            convert(base, image_set, progress)
    print(f"ADE20K panoptic ready in {base}")
    return base
