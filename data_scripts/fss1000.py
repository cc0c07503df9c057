"""FSS-1000 (1000 classes x 10 images with binary masks), for Mosaic-4 (Table 3).

    python data_scripts/fss1000.py --root data

Result: ``data/FSS-1000/<class>/<n>.jpg`` and ``<n>.png``, from HSNet's release of FSS-1000 (its
README's link). Then run ``data_scripts/fewshot_splits.py`` for the 520 / 240 / 240 class split.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import download, extract, google_drive, move_into  # noqa: E402

SOURCES = {"fss": (google_drive("1Fn-cUESMMF1pQy8Xff-vPQvXJdZoUlP3"), "FSS-1000.zip", None)}


def prepare(root: Path, sources: dict = SOURCES) -> Path:
    root = Path(root)
    dest = root / "FSS-1000"
    if not dest.is_dir():
        url, name, digest = sources["fss"]
        scratch = root / "downloads" / "x_fss"
        extract(download(url, root / "downloads" / name, digest), scratch)
        found = next((p for p in sorted(scratch.rglob("*")) if p.is_dir() and p.name.lower() == "fss-1000"), None)
        if found is None:
            raise FileNotFoundError(f"{name} holds no FSS-1000/ folder")
        move_into(found, dest)
        shutil.rmtree(scratch, ignore_errors=True)
    classes = [p for p in dest.iterdir() if p.is_dir()]
    print(f"FSS-1000 ready in {dest} ({len(classes)} class folders)")
    return dest


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="data", type=Path)
    prepare(parser.parse_args(argv).root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
