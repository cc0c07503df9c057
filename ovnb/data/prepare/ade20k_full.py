"""ADE20K-full, 847 classes (ADE20K_2021_17_01): SimBaseline's Table 1 cross-dataset target (FC-CLIP
evaluates on it too).

    ovnb data prepare ade20k-847 --root data

ADE20K-full is behind a registration: download the release from
https://groups.csail.mit.edu/vision/datasets/ADE20K/ yourself and put the zip in
``data/downloads/ADE20K_2021_17_01.zip`` (or unzip it into ``data/ADE20K_2021_17_01``, or give its path
with ``--source ade=URL_OR_FILE_URL``). This step converts the validation images as MaskFormer's
``prepare_ade20k_full_sem_seg.py`` does (zsseg and FC-CLIP use the same script):

* the class of a pixel is ``R / 10 * 256 + G`` of ``*_seg.png`` (integer division); the 847 object ids
  of ``semseg_classes.yaml`` become train ids 0..846, everything else 65535 (ignored);
* an image whose shorter side exceeds 512 px is resized to 512 on that side (bilinear; the mask
  nearest), then written as JPEG (PIL's default quality, as the official script writes it);
* masks are written as 16-bit PNGs (the official script writes 16-bit TIFFs; same values).

Result: ``data/ADE20K_2021_17_01/{images_detectron2,annotations_detectron2}/validation/ADE_val_*``.
Only the 2,000 validation images are converted: the papers train on other datasets and evaluate on
this one (``splits=("training", "validation")`` converts the training images too).
"""

from __future__ import annotations

from pathlib import Path

from .download import download, extract

SOURCES = {"ade": (None, "ADE20K_2021_17_01.zip", None)}
WHERE = "https://groups.csail.mit.edu/vision/datasets/ADE20K/ (free registration)"
MAX_SHORT_SIDE = 512


def object_ids(seg):
    """The ADE20K-full object id of every pixel of a ``*_seg.png`` (``[H, W, 3]`` uint8)."""
    import numpy as np

    return (seg[:, :, 0].astype(np.int32) // 10) * 256 + seg[:, :, 1].astype(np.int32)


def convert(seg_path: Path, image_path: Path, image_out: Path, mask_out: Path, id_to_train) -> None:
    """One image and its mask in the converted layout (module docstring)."""
    import numpy as np
    from PIL import Image

    with Image.open(seg_path) as im:
        ids = object_ids(np.asarray(im.convert("RGB")))
    with Image.open(image_path) as im:
        image = im.convert("RGB")
    w, h = image.size
    if min(h, w) > MAX_SHORT_SIDE:
        size = (round(w / h * MAX_SHORT_SIDE), MAX_SHORT_SIDE) if w >= h else (MAX_SHORT_SIDE, round(h / w * MAX_SHORT_SIDE))
        image = image.resize(size, Image.BILINEAR)
        ids = np.asarray(Image.fromarray(ids).resize(size, Image.NEAREST))
    mask = id_to_train[np.clip(ids, 0, len(id_to_train) - 1)].astype(np.uint16)
    image_out.parent.mkdir(parents=True, exist_ok=True)
    mask_out.parent.mkdir(parents=True, exist_ok=True)
    image.save(image_out)
    Image.fromarray(mask).save(mask_out)


def prepare(root: Path, sources: dict = SOURCES, splits=("validation",)) -> Path:
    import numpy as np
    from tqdm.auto import tqdm

    from ..semseg import _classes

    root = Path(root)
    base = root / "ADE20K_2021_17_01"
    if not (base / "images").is_dir():
        url, name, digest = sources["ade"]
        archive = root / "downloads" / name
        if url is not None:
            archive = download(url, archive, digest)
        elif not archive.is_file():
            raise FileNotFoundError(
                f"ade20k-847: neither {base}/images nor {archive} found. ADE20K-full needs a registration: "
                f"download the ADE20K_2021_17_01 zip from {WHERE}, save it as {archive} (or unzip it into {root}) "
                "and prepare again (or pass --source ade=URL_OR_FILE_URL)")
        extract(archive, root)
        if not (base / "images").is_dir():
            raise FileNotFoundError(f"{archive} holds no ADE20K_2021_17_01/images folder")
    categories = _classes()["ade20k_847"]
    id_to_train = np.full(max(i for i, _ in categories) + 1, 65535, dtype=np.int64)
    for train_id, (object_id, _) in enumerate(categories):
        id_to_train[object_id] = train_id
    tag = {"validation": "val", "training": "train"}
    for split in splits:
        segs = sorted(p for p in (base / "images").rglob(f"ADE_{tag[split]}_*_seg.png"))
        if not segs:
            raise FileNotFoundError(f"{base}/images holds no ADE_{tag[split]}_*_seg.png")
        for seg in tqdm(segs, desc=f"ade20k-847 {split}", disable=len(segs) < 100):
            name = seg.name[:-len("_seg.png")]
            mask_out = base / "annotations_detectron2" / split / f"{name}.png"
            if not mask_out.is_file():
                convert(seg, seg.with_name(f"{name}.jpg"), base / "images_detectron2" / split / f"{name}.jpg",
                        mask_out, id_to_train)
    print(f"ADE20K-847 ready in {base}")
    return base
