"""Fusioner's experiments as data: one ``Experiment`` per trained model, run in any profile.

A notebook names what it needs (encoders, fusion, decoder, fold, dataset, text control) and
``Runner.run(experiment)`` trains it (or loads its finished checkpoint from
``build/runs/<profile>/fusioner/<key>/``, so notebooks that need the same model share one training)
and evaluates it with the fold protocol. In the ``toy`` and ``smoke`` profiles the data are the toy
world's folds and the models the toy encoders; in ``quick`` / ``paper`` PASCAL-5i / COCO-20i / FSS-1000
under ``DATA_ROOT`` and the released encoders.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .. import results
from ..data import fewshot
from ..evaluate import evaluate_episodes, evaluate_mosaics
from ..methods import fusioner

TOY_TRAIN_IMAGES = 3000
TOY_TEST_IMAGES = 1000


def _resolve(path) -> Path:
    """A relative path is relative to the checkout (where ``build/`` and ``data/`` live), so notebooks
    executed from ``notebooks/`` and a shell at the top level share the same folders; outside a
    checkout (Colab), to the working directory."""
    from ..env import project_root

    path = Path(path)
    if path.is_absolute():
        return path
    root = project_root()
    return (root / path) if root is not None else path.resolve()


@dataclass(frozen=True)
class Experiment:
    visual: str
    text: str
    fusion: str = "early"
    decoder: bool = True
    fold: int = 0
    dataset: str = "pascal"  # pascal | coco | fss (Mosaic-4 training); toy profiles map them to toy data
    text_control: bool = False  # replace class-name embeddings with random vectors

    def key(self, profile: str, extra: dict) -> str:
        text = json.dumps({**asdict(self), "profile": profile, **extra}, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    def label(self) -> str:
        parts = [self.visual, self.text, self.fusion, "decoder" if self.decoder else "no decoder",
                 f"fold {self.fold}", self.dataset]
        return ", ".join(parts) + (", random text" if self.text_control else "")


@dataclass
class Outcome:
    experiment: Experiment
    miou: float
    fb_iou: float
    per_class: dict
    train_s: float
    eval_s: float
    iterations: int
    trained_now: bool
    history: list = field(default_factory=list)
    model: object = None


class Runner:
    """Trains and evaluates Fusioner experiments for one profile.

    ``toy`` sizes: the fusion module of ``FusionerConfig.toy()``. From the profile: ``batch_size``,
    ``fusioner.iterations`` (or ``fusioner.epochs`` of the fold's training pairs - the paper profile's
    510 = 10 warmup + 500 cosine epochs) and ``fusioner.eval_episodes`` per fold.
    """

    def __init__(self, profile, seed: int = 0, data_root: str | Path = "data", cache_dir: str | Path | None = None,
                 device=None, progress: bool = False, coco_protocol: str = "hsnet-uniform",
                 resolution: str = "original", normalisation: str = "encoder", optimizer: str = "paper"):
        self.profile = profile
        self.seed = seed
        self.data_root = _resolve(data_root)
        self.cache_dir = _resolve(cache_dir) if cache_dir is not None else None
        self.device = device
        self.progress = progress
        self.toy = profile.data == "toy"
        self.coco_protocol, self.resolution = coco_protocol, resolution
        self.normalisation, self.optimizer = normalisation, optimizer
        self.iterations = profile.get("fusioner.iterations", profile.train_iterations)
        self.epochs = profile.get("fusioner.epochs")
        if self.iterations is None and self.epochs is None:
            raise ValueError(f"profile {profile.name!r} sets neither fusioner.iterations nor fusioner.epochs")
        self.batch_size = profile.batch_size
        self.eval_episodes = profile.get("fusioner.eval_episodes", profile.eval_images or 1000)
        self.encoders: dict = {}
        self.caches: dict = {}
        self.datasets: dict = {}

    # -- models and data -----------------------------------------------------------------------
    def config(self, e: Experiment) -> fusioner.FusionerConfig:
        from dataclasses import replace

        base = fusioner.FusionerConfig.toy() if self.toy else fusioner.FusionerConfig()
        return replace(base, fusion=e.fusion, decoder=e.decoder, normalisation=self.normalisation)

    def build(self, e: Experiment) -> fusioner.Fusioner:
        torch.manual_seed(self.seed)
        # every profile loads real weights: the embedded toy checkpoints or the released ones
        model = fusioner.build(e.visual, e.text, fusion=e.fusion, pretrained=True, config=self.config(e),
                               device=self.device, encoders=self.encoders)
        self.encoders.update({e.visual: model.visual_encoder, e.text: model.text_encoder})
        return model

    def visual_fn(self, model):
        from ..cache import visual_cache

        key = (model.visual_name, model.image_size, model.config.normalisation)
        if key not in self.caches:
            self.caches[key] = visual_cache(model, self.cache_dir, enabled=self.toy)
        cache = self.caches[key]
        cache.model = model
        return cache

    def train_set(self, e: Experiment):
        key = ("trn", e.dataset, e.fold)
        if key not in self.datasets:
            if self.toy:
                if e.dataset == "fss":
                    from ..data.toy_world import splits
                    seen = [c for c in range(48) if c not in splits()["folds"][e.fold]]
                    ds = fewshot.ToyMosaics("train", TOY_TRAIN_IMAGES, self.seed, things=seen)
                else:
                    ds = fewshot.toy_fold_episodes(e.fold, "trn", images=TOY_TRAIN_IMAGES, seed=self.seed)
            elif e.dataset == "pascal":
                ds = fewshot.TrainCrops(fewshot.pascal_episodes(self.data_root, e.fold, "trn"))
            elif e.dataset == "coco":
                ds = fewshot.TrainCrops(fewshot.coco_episodes(self.data_root, e.fold, "trn"))
            else:  # Table 3: trained on FSS-1000 with |W| = 4, i.e. on mosaics of its training classes
                ds = fewshot.Mosaic4(self.data_root, length=1300, seed=self.seed + 1, split="trn")  # 520 x 10 / 4
            self.datasets[key] = ds
        return self.datasets[key]

    def test_set(self, e: Experiment, target: str | None = None):
        """The fold's test episodes; ``target="pascal-transfer"`` gives Table 5's (toy: shifted world)."""
        target = target or e.dataset
        key = ("val", target, e.fold)
        if key not in self.datasets:
            n = self.eval_episodes
            if self.toy:
                if target == "fss":
                    from ..data.toy_world import splits
                    ds = fewshot.ToyMosaics("test", n, self.seed, things=splits()["folds"][e.fold])
                else:
                    ds = fewshot.toy_fold_episodes(e.fold, "val", images=TOY_TEST_IMAGES, episodes=n, seed=self.seed,
                                                   shifted=target == "pascal-transfer")
            elif target == "pascal":
                ds = fewshot.pascal_episodes(self.data_root, e.fold, "val")
            elif target == "coco":
                ds = fewshot.coco_episodes(self.data_root, e.fold, "val", self.coco_protocol, episodes=n, seed=self.seed)
            elif target == "pascal-transfer":
                ds = fewshot.transfer_episodes(self.data_root, e.fold)
            else:
                ds = fewshot.Mosaic4(self.data_root, length=600 if self.profile.name == "paper" else n, seed=self.seed)
            self.datasets[key] = ds
        return self.datasets[key]

    def schedule(self, e: Experiment) -> int:
        """Optimizer steps of experiment ``e``: fixed, or epochs x ceil(training pairs / batch)."""
        if self.iterations is not None:
            return int(self.iterations)
        return int(self.epochs) * -(-len(self.train_set(e)) // self.batch_size)

    def run_dir(self, e: Experiment, model=None) -> Path:
        """``build/runs/<profile>/fusioner/<key>``: the key covers the experiment, the schedule and a
        fingerprint of the frozen encoders' weights (regenerated toy weights never reuse old runs)."""
        from ..cache import weights_fingerprint

        model = model or self.build(e)
        extra = {"iterations": self.schedule(e), "batch": self.batch_size, "seed": self.seed,
                 "normalisation": self.normalisation, "optimizer": self.optimizer,
                 "visual_weights": weights_fingerprint(model.visual_encoder),
                 "text_weights": weights_fingerprint(model.text_encoder)}
        return results.build_dir() / "runs" / self.profile.name / "fusioner" / e.key(self.profile.name, extra)

    # -- one experiment --------------------------------------------------------------------------
    def run(self, e: Experiment, evaluate_on: str | None = None, keep_model: bool = False) -> Outcome:
        model = self.build(e)
        visual_fn = self.visual_fn(model)
        text_fn = fusioner.random_text(model.head.text_dim, self.seed) if e.text_control else None
        trainable = model.trainable_parameters() > 0
        t0 = time.perf_counter()
        history, trained_now = [], False
        if trainable:
            run_dir = self.run_dir(e, model)
            result = fusioner.train(model, self.train_set(e), self.schedule(e), self.batch_size, run_dir,
                                    visual_fn=visual_fn, text_fn=text_fn, seed=self.seed, optimizer=self.optimizer,
                                    progress=self.progress)
            history, trained_now = result.history, result.steps_run > 0
            (run_dir / "experiment.json").write_text(json.dumps({**asdict(e), **model.describe()}, indent=1))
        train_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        test = self.test_set(e, evaluate_on)
        if e.dataset == "fss" and (evaluate_on in (None, "fss")):
            meter = evaluate_mosaics(model, test, visual_fn=visual_fn)
        else:
            meter = evaluate_episodes(model, test, resolution="original" if self.toy else self.resolution,
                                      visual_fn=visual_fn, text_fn=text_fn)
        if hasattr(visual_fn, "flush"):
            visual_fn.flush()
        return Outcome(e, meter.miou(), meter.fb_iou(), meter.per_class_iou(), train_s, time.perf_counter() - t1,
                       self.schedule(e) if trainable else 0, trained_now, history, model if keep_model else None)

    def weights_source(self) -> str:
        return "toy" if self.profile.weights == "toy" else "retrained"


def start_notebook(notebook: str, profile: str, seed: int = 0, data_root: str | Path = "data",
                   cache_dir: str | Path | None = None, progress: bool = False) -> tuple[Runner, results.RunRecord]:
    """The setup cell of a Fusioner notebook: load ``profile`` and return a ``Runner`` on the
    available device and the notebook's ``RunRecord`` (which times the notebook)."""
    from .. import env, profiles

    runner = Runner(profiles.load(profile), seed, data_root, cache_dir, device=env.device(), progress=progress)
    return runner, results.RunRecord(notebook, profile, seed)


# ----------------------------------------------------------------------------------------------
# Recording and showing


def record_folds(record, outcomes: list[Outcome], table: str, row: str, columns: list[str], weights: str,
                 metric: str = "miou", **protocol) -> float:
    """Record four per-fold values (%) and their mean into ``columns`` (4 fold labels + the mean
    label) of ``table``'s ``row``; returns the mean."""
    values = [100 * getattr(o, metric) for o in sorted(outcomes, key=lambda o: o.experiment.fold)]
    if len(values) != 4 or len(columns) != 5:
        raise ValueError(f"expected 4 folds and 5 columns, got {len(values)} folds and {len(columns)} columns")
    for value, column in zip(values, columns):
        record.add(value, paper="fusioner", table=table, row=row, column=column, weights=weights, **protocol)
    mean = sum(values) / 4
    record.add(mean, paper="fusioner", table=table, row=row, column=columns[-1], weights=weights, **protocol)
    return mean


def paper_vs_ours(record, table: str, profile: str):
    """The paper's table with our values of this run beside it: one row per (row, column)."""
    df = results.compare([record.to_dict()], ["fusioner"], profile=profile)
    df = df[df["table"] == table]
    rows = df[df["ours"].notna()]["row"].unique()
    df = df[df["row"].isin(rows)]
    out = df[["row", "column", "paper_value", "ours", "delta", "weights"]].rename(
        columns={"paper_value": "paper"})
    return out.set_index(["row", "column"]).round(1)


def paper_schedule(batch_size: int = 32, epochs: int = 510) -> "pd.DataFrame":
    """Optimizer steps of the ``paper`` profile per fold: ``epochs`` x ceil(training pairs / batch),
    with HSNet's training-pair counts (PASCAL: the other three folds' lists; COCO: the fold's pickle)."""
    import pandas as pd

    counts = fewshot.expected_counts()
    rows = []
    for f in range(4):
        pascal = sum(n for j, n in enumerate(counts["pascal"]["trn"]) if j != f)
        coco = counts["coco"]["trn_pairs"][f]
        for name, pairs in (("PASCAL-5i", pascal), ("COCO-20i", coco)):
            rows.append({"dataset": name, "fold": f, "training pairs": pairs,
                         "steps": epochs * -(-pairs // batch_size)})
    return pd.DataFrame(rows)
