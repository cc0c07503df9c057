"""FSS-1000 (1000 classes x 10 images with binary masks), for Mosaic-4 (Table 3).

    ovnb data prepare fss1000 --root data

Result: ``data/FSS-1000/<class>/<n>.jpg`` and ``<n>.png``, from HSNet's release of FSS-1000 (its
README's link). Then prepare ``fewshot-splits`` for the 520 / 240 / 240 class split.
"""

from __future__ import annotations

from pathlib import Path

from .download import fetch_folder, google_drive

SOURCES = {"fss": (google_drive("1Fn-cUESMMF1pQy8Xff-vPQvXJdZoUlP3"), "FSS-1000.zip", None)}


def prepare(root: Path, sources: dict = SOURCES) -> Path:
    root = Path(root)
    dest = root / "FSS-1000"
    if not dest.is_dir():
        fetch_folder(sources["fss"], root / "downloads", "FSS-1000", dest)
    classes = [p for p in dest.iterdir() if p.is_dir()]
    print(f"FSS-1000 ready in {dest} ({len(classes)} class folders)")
    return dest

