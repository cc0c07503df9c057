"""HSNet's split files for PASCAL-5i, COCO-20i and FSS-1000 (the lists the official Fusioner code uses).

    ovnb data prepare fewshot-splits --root data

Result: ``data/splits/pascal/{trn,val}/fold{0..3}.txt``, ``data/splits/coco/{trn,val}/fold{0..3}.pkl``,
``data/splits/fss/{trn,val,test}.txt``, fetched from HSNet's repository and checked against the line /
pair counts in ``ovnb/data/fewshot_classes.yaml`` (HSNet publishes no checksums; counts catch a
truncated or wrong file). The COCO pickles are read with an unpickler that refuses any object.
"""

from __future__ import annotations

from pathlib import Path

from .download import download

BASE_URL = "https://raw.githubusercontent.com/juhongm999/hsnet/main/data/splits"
SOURCES = {"hsnet": BASE_URL}  # where the split files live (a test serves fixtures from elsewhere)


def files() -> list[str]:
    out = [f"pascal/{s}/fold{i}.txt" for s in ("trn", "val") for i in range(4)]
    out += [f"coco/{s}/fold{i}.pkl" for s in ("trn", "val") for i in range(4)]
    out += [f"fss/{s}.txt" for s in ("trn", "val", "test")]
    return out


def check(root: Path) -> list[str]:
    """Problems with the split files under ``root/splits`` (empty when all counts match)."""
    from .. import fewshot

    counts = fewshot.expected_counts()
    splits = Path(root) / "splits"
    problems = []
    for s in ("trn", "val"):
        for i in range(4):
            path = splits / "pascal" / s / f"fold{i}.txt"
            if path.is_file():
                n = len(path.read_text().split())
                if n != counts["pascal"][s][i]:
                    problems.append(f"{path}: {n} lines, expected {counts['pascal'][s][i]}")
            else:
                problems.append(f"{path}: missing")
            path = splits / "coco" / s / f"fold{i}.pkl"
            if path.is_file():
                n = sum(len(v) for v in fewshot.load_split_pickle(path).values())
                if n != counts["coco"][f"{s}_pairs"][i]:
                    problems.append(f"{path}: {n} pairs, expected {counts['coco'][f'{s}_pairs'][i]}")
            else:
                problems.append(f"{path}: missing")
    for s in ("trn", "val", "test"):
        path = splits / "fss" / f"{s}.txt"
        if path.is_file():
            n = len(path.read_text().split())
            if n != counts["fss"][s]:
                problems.append(f"{path}: {n} classes, expected {counts['fss'][s]}")
        else:
            problems.append(f"{path}: missing")
    return problems


def prepare(root: Path, sources: dict = SOURCES) -> Path:
    root = Path(root)
    for rel in files():
        download(f"{sources['hsnet']}/{rel}", root / "splits" / rel)
    problems = check(root)
    if problems:
        raise RuntimeError("split files do not match HSNet's counts:\n  " + "\n  ".join(problems))
    print(f"HSNet split files ready in {root / 'splits'}")
    return root / "splits"

