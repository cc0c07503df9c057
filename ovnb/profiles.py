"""Run profiles: how big a run is, on which data and with which weights.

| profile | where | weights | data |
|---|---|---|---|
| ``toy`` | any CPU, offline | toy models | the toy world |
| ``smoke`` | CI | toy models, fewest steps | a few toy images |
| ``quick`` | one Colab GPU | released public weights | subsets of the real benchmarks |
| ``paper`` | a GPU node | released public weights | full benchmarks, paper protocol |
| ``dryrun`` | CI | the real architectures, random weights | fixture datasets in the real layouts |

Each profile is a YAML file in ``ovnb/profiles/``; ``load(name)`` returns a frozen ``Profile``.
``seeds`` lists the training seeds each experiment that backs a claim runs with (``toy``: three,
so every toy claim carries its spread; the others one, more through a notebook's ``SEEDS``).
Chapters read the generic fields below and keep chapter-specific settings under ``extra``.

``dryrun`` executes the real path (the branch ``quick`` and ``paper`` take) where nothing can be
downloaded: the real architectures built with random weights (``weights: random``) on fixture
datasets (``fixtures: true``: ``ovnb.data.fixtures`` writes them under ``build/fixtures`` and that
folder replaces ``DATA_ROOT``). Notebooks branch on ``data`` (toy world or real datasets) and
``weights`` (toy or not), never on the profile's name; its numbers mean nothing and, like
``smoke``'s, never count as a reproduction.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

PROFILE_DIR = Path(__file__).with_name("profiles")
ENCODER_WEIGHTS = ("toy", "released", "random")  # random: the real architectures, never downloaded


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    weights: str  # where frozen encoders come from: "toy", "released" or "random" (ENCODER_WEIGHTS)
    data: str  # "toy" (the embedded world) or "real" (prepared benchmark datasets)
    offline: bool  # True: never contact a model hub
    train_iterations: int | None  # trained methods: optimizer steps per run (None = the paper schedule)
    eval_images: int | None  # images per evaluation split (None = the whole split)
    batch_size: int
    seeds: tuple[int, ...] = (0,)  # the training seeds of every experiment that backs a claim
    workers: int = 1  # processes that train independent models side by side (CPU profiles)
    fixtures: bool = False  # real data replaced by fixture datasets made by code (the dry run)
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in self.seeds):
            raise ValueError(f"profile {self.name!r}: seeds must be a non-empty list of integers, got {list(self.seeds)!r}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"profile {self.name!r}: seeds repeat: {list(self.seeds)!r}")
        if not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"profile {self.name!r}: workers must be an integer >= 1, got {self.workers!r}")
        if self.weights not in ENCODER_WEIGHTS:
            raise ValueError(f"profile {self.name!r}: weights must be one of {ENCODER_WEIGHTS}, got {self.weights!r}")
        if self.data not in ("toy", "real"):
            raise ValueError(f"profile {self.name!r}: data must be 'toy' or 'real', got {self.data!r}")
        if self.fixtures and self.data != "real":
            raise ValueError(f"profile {self.name!r}: fixtures replace real data; set data: real")

    @property
    def pretrained(self) -> bool:
        """Whether encoders load weights (toy checkpoints or released ones) rather than random ones."""
        return self.weights != "random"

    def get(self, key: str, default=None):
        """A chapter-specific setting from ``extra`` (e.g. ``profile.get("fusioner.iterations")``)."""
        return self.extra.get(key, default)


def names() -> list[str]:
    """The valid profile names, in order from smallest to largest."""
    order = ["smoke", "dryrun", "toy", "quick", "paper"]
    found = sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))
    return [n for n in order if n in found] + [n for n in found if n not in order]


def load(name: str | Profile) -> Profile:
    """The profile called ``name``; an unknown name is an error listing the valid ones."""
    if isinstance(name, Profile):
        return name
    path = PROFILE_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown profile {name!r}; valid profiles: {', '.join(names())}")
    raw = yaml.safe_load(path.read_text()) or {}
    known = {f.name for f in dataclasses.fields(Profile)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{path}: unknown field(s) {unknown}; known fields: {sorted(known)}")
    missing = sorted(f.name for f in dataclasses.fields(Profile)
                     if f.name not in raw and f.default is dataclasses.MISSING
                     and f.default_factory is dataclasses.MISSING)
    if missing:
        raise ValueError(f"{path}: missing field(s) {missing}")
    if raw.get("name") != name:
        raise ValueError(f"{path}: field 'name' is {raw.get('name')!r}, expected {name!r}")
    raw["seeds"] = tuple(raw.get("seeds", (0,)))
    return Profile(**raw)
