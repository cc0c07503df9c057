"""Fusioner's experiments as data: one ``Experiment`` per trained model, run in any profile.

A notebook names what it needs (encoders, fusion, decoder, fold, dataset, text control, training
seed) and ``Runner.run(experiment)`` trains it (or loads its finished checkpoint from
``build/runs/<profile>/fusioner/<key>/``, so notebooks that need the same model share one training)
and evaluates it with the fold protocol; the evaluation is kept beside the checkpoint, so a warm
rebuild neither trains nor evaluates again. ``Runner.run_all`` does the same for a list of
experiments, training the missing ones in parallel processes where the profile asks for it
(``Profile.workers``). In the ``toy`` and ``smoke`` profiles the data are the toy world's folds and
the models the toy encoders; in ``quick`` / ``paper`` PASCAL-5i / COCO-20i / FSS-1000 under
``DATA_ROOT`` and the released encoders; in ``dryrun`` the same code on fixture datasets with the
real architectures' random weights.

**Seeds.** ``Experiment.seed`` is the training seed: the fusion module's initialisation, the order
of the training batches and the random-text control's vectors. The data - the toy world's scenes
and the test episodes drawn from them, like a benchmark's fixed test set - depend only on the
runner's ``data_seed``, so seeds differ in what training does, not in what is measured, and
configurations compared on one seed and fold see the same test episodes (``ovnb.claims`` pairs
them).
"""

from __future__ import annotations

import hashlib
import json
import os
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
    seed: int = 0  # the training seed (initialisation, batch order, random-text vectors)

    def key(self, profile: str, extra: dict) -> str:
        text = json.dumps({**asdict(self), "profile": profile, **extra}, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    def label(self) -> str:
        parts = [self.visual, self.text, self.fusion, "decoder" if self.decoder else "no decoder",
                 f"fold {self.fold}", self.dataset]
        return ", ".join(parts) + (", random text" if self.text_control else "") + f", seed {self.seed}"

    def with_seeds(self, seeds) -> list["Experiment"]:
        """This experiment once per training seed."""
        from dataclasses import replace

        return [replace(self, seed=int(s)) for s in seeds]


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
    510 = 10 warmup + 500 cosine epochs), ``fusioner.eval_episodes`` per fold, ``seeds`` (the
    training seeds a notebook runs, unless it passes its own), ``workers`` (processes that
    ``run_all`` trains in), ``fusioner.folds`` (the folds notebooks run, ``self.folds``; all four
    unless set), ``eval_images`` (where set, PASCAL's test lists are cut to that many pairs, spread
    evenly) and grid rows a notebook's ``select`` keeps. ``data_seed`` fixes the toy world's sample
    and the drawn test episodes.
    """

    def __init__(self, profile, data_seed: int = 0, data_root: str | Path = "data",
                 cache_dir: str | Path | None = None, device=None, progress: bool = False,
                 coco_protocol: str = "hsnet-uniform", resolution: str = "original", normalisation: str = "encoder",
                 optimizer: str = "paper", seeds=None, workers: int | None = None, prepare_data: bool = False):
        self.profile = profile
        self.data_seed = data_seed
        from ..data.fixtures import data_root as fixture_root

        self.data_root = _resolve(fixture_root(profile, data_root))
        self.cache_dir = _resolve(cache_dir) if cache_dir is not None else None
        self.device = device
        self.progress = progress
        self.toy = profile.data == "toy"
        self.coco_protocol, self.resolution = coco_protocol, resolution
        self.normalisation, self.optimizer = normalisation, optimizer
        self.seeds = tuple(int(s) for s in (profile.seeds if seeds is None else seeds))
        if not self.seeds:
            raise ValueError("SEEDS is empty: give at least one training seed, e.g. [0]")
        self.workers = min(profile.workers if workers is None else int(workers), os.cpu_count() or 1)
        self.folds = tuple(profile.get("fusioner.folds", (0, 1, 2, 3)))
        if not self.folds or len(set(self.folds)) != len(self.folds) or not set(self.folds) <= {0, 1, 2, 3}:
            raise ValueError(f"profile {profile.name!r}: fusioner.folds must be distinct folds among 0-3, "
                             f"got {list(self.folds)!r}")
        self.iterations = profile.get("fusioner.iterations", profile.train_iterations)
        self.epochs = profile.get("fusioner.epochs")
        if self.iterations is None and self.epochs is None:
            raise ValueError(f"profile {profile.name!r} sets neither fusioner.iterations nor fusioner.epochs")
        self.batch_size = profile.batch_size
        self.eval_episodes = profile.get("fusioner.eval_episodes", profile.eval_images or 1000)
        self.encoders: dict = {}
        self.caches: dict = {}
        self.datasets: dict = {}
        self._pool = None
        self.prepare_data = prepare_data

    # -- models and data -----------------------------------------------------------------------
    def config(self, e: Experiment) -> fusioner.FusionerConfig:
        from dataclasses import replace

        base = fusioner.FusionerConfig.toy() if self.toy else fusioner.FusionerConfig()
        return replace(base, fusion=e.fusion, decoder=e.decoder, normalisation=self.normalisation)

    def build(self, e: Experiment) -> fusioner.Fusioner:
        # the embedded toy checkpoints, the released weights, or (dry run) none: random weights
        model = fusioner.build(e.visual, e.text, fusion=e.fusion, pretrained=self.profile.pretrained, config=self.config(e),
                               device=self.device, encoders=self.encoders, seed=e.seed)
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

    def _load(self, make):
        """``make()``, preparing a missing real dataset first when ``prepare_data`` is set."""
        from ..data.prepare import load_or_prepare

        return load_or_prepare(make, self.data_root, self.prepare_data)

    def train_set(self, e: Experiment):
        key = ("trn", e.dataset, e.fold)
        if key not in self.datasets:
            if self.toy:
                if e.dataset == "fss":
                    from ..data.toy_world import splits
                    seen = [c for c in range(48) if c not in splits()["folds"][e.fold]]
                    ds = fewshot.ToyMosaics("train", TOY_TRAIN_IMAGES, self.data_seed, things=seen)
                else:
                    ds = fewshot.toy_fold_episodes(e.fold, "trn", images=TOY_TRAIN_IMAGES, seed=self.data_seed)
            elif e.dataset == "pascal":
                ds = fewshot.TrainCrops(self._load(lambda: fewshot.pascal_episodes(self.data_root, e.fold, "trn")))
            elif e.dataset == "coco":
                ds = fewshot.TrainCrops(self._load(lambda: fewshot.coco_episodes(self.data_root, e.fold, "trn")))
            else:  # Table 3: trained on FSS-1000 with |W| = 4, i.e. on mosaics of its training classes (520 x 10 / 4)
                ds = self._load(lambda: fewshot.Mosaic4(self.data_root, length=1300, seed=self.data_seed + 1, split="trn"))
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
                    ds = fewshot.ToyMosaics("test", n, self.data_seed, things=splits()["folds"][e.fold])
                else:
                    ds = fewshot.toy_fold_episodes(e.fold, "val", images=TOY_TEST_IMAGES, episodes=n, seed=self.data_seed,
                                                   shifted=target == "pascal-transfer")
            elif target == "pascal":  # the fold's whole list, or a spread subset where the profile sets eval_images
                ds = self._load(lambda: fewshot.pascal_episodes(self.data_root, e.fold, "val")).subset(
                    self.profile.eval_images)
            elif target == "coco":
                ds = self._load(lambda: fewshot.coco_episodes(self.data_root, e.fold, "val", self.coco_protocol,
                                                              episodes=n, seed=self.data_seed))
            elif target == "pascal-transfer":
                ds = self._load(lambda: fewshot.transfer_episodes(self.data_root, e.fold)).subset(self.profile.eval_images)
            else:
                ds = self._load(lambda: fewshot.Mosaic4(self.data_root, length=600 if self.profile.name == "paper" else n,
                                                        seed=self.data_seed))
            self.datasets[key] = ds
        return self.datasets[key]

    def select(self, grid: list, key: str) -> list:
        """The entries of a notebook's ``grid`` (tuples whose first item is the paper row) that the
        profile's ``key`` lists (e.g. ``fusioner.table1.rows``: the ``quick`` profile's short grid);
        all of them where the profile sets none. An unknown row is an error naming the valid ones."""
        rows = self.profile.get(key)
        if rows is None:
            return list(grid)
        known = [entry[0] for entry in grid]
        unknown = [r for r in rows if r not in known]
        if unknown:
            raise ValueError(f"profile {self.profile.name!r}: {key} names unknown rows {unknown}; valid rows: {known}")
        return [entry for entry in grid if entry[0] in rows]

    def schedule(self, e: Experiment) -> int:
        """Optimizer steps of experiment ``e``: fixed, or epochs x ceil(training pairs / batch)."""
        if self.iterations is not None:
            return int(self.iterations)
        return int(self.epochs) * -(-len(self.train_set(e)) // self.batch_size)

    def run_dir(self, e: Experiment, model=None) -> Path:
        """``build/runs/<profile>/fusioner/<key>``: the key covers the experiment (training seed
        included), the schedule, the data seed and a fingerprint of the frozen encoders' weights
        (regenerated toy weights never reuse old runs). A configuration without trainable
        parameters (Table 4's B3) does not depend on the training seed: all seeds share its folder."""
        from dataclasses import replace

        from ..cache import weights_fingerprint

        model = model or self.build(e)
        if model.trainable_parameters() == 0:
            e = replace(e, seed=0)
        extra = {"iterations": self.schedule(e), "batch": self.batch_size, "data_seed": self.data_seed,
                 "normalisation": self.normalisation, "optimizer": self.optimizer,
                 "visual_weights": weights_fingerprint(model.visual_encoder),
                 "text_weights": weights_fingerprint(model.text_encoder)}
        return results.build_dir() / "runs" / self.profile.name / "fusioner" / e.key(self.profile.name, extra)

    def _evaluation_file(self, e: Experiment, run_dir: Path, target: str | None) -> Path:
        """Where the evaluation of ``e`` on ``target`` is kept: named by everything it depends on
        besides the checkpoint (the test set, its size and seed, the resolution and COCO protocol)."""
        spec = {"target": target or e.dataset, "episodes": self.eval_episodes, "data_seed": self.data_seed,
                "resolution": "original" if self.toy else self.resolution, "coco_protocol": self.coco_protocol}
        if not self.toy:  # PASCAL's lists are cut to eval_images where the profile sets it
            spec["eval_images"] = self.profile.eval_images
        digest = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
        return run_dir / f"evaluation-{digest}.json"

    def is_trained(self, e: Experiment, model=None) -> bool:
        """Whether ``e`` needs no more training (finished, or nothing to train: Table 4's B3)."""
        from ..train import is_finished

        model = model or self.build(e)
        return model.trainable_parameters() == 0 or is_finished(self.run_dir(e, model), self.schedule(e))

    def is_done(self, e: Experiment, evaluate_on: str | None = None) -> bool:
        """Whether ``e`` is trained and evaluated on ``evaluate_on`` already (nothing left to compute)."""
        model = self.build(e)
        return self.is_trained(e, model) and self._evaluation_file(e, self.run_dir(e, model), evaluate_on).is_file()

    # -- one experiment --------------------------------------------------------------------------
    def run(self, e: Experiment, evaluate_on: str | None = None, keep_model: bool = False) -> Outcome:
        """Train ``e`` (or load its checkpoint) and evaluate it on its test set, or on
        ``evaluate_on`` (``"pascal-transfer"``: Table 5's); a kept evaluation is read, not redone.
        With several workers, a missing training is done in a worker, so that every model of a
        profile is trained the same way (one torch thread), wherever it was asked for; evaluating a
        trained model is deterministic and runs here."""
        if self.workers > 1 and not self.is_trained(e):
            self._compute([e], evaluate_on)
        return self._run(e, evaluate_on, keep_model)

    def _run(self, e: Experiment, evaluate_on: str | None = None, keep_model: bool = False) -> Outcome:
        model = self.build(e)
        visual_fn = self.visual_fn(model)
        text_fn = fusioner.random_text(model.head.text_dim, e.seed) if e.text_control else None
        run_dir = self.run_dir(e, model)
        t0 = time.perf_counter()
        history, trained_now, train_s = [], False, 0.0
        if model.trainable_parameters() > 0:
            result = fusioner.train(model, self.train_set(e), self.schedule(e), self.batch_size, run_dir,
                                    visual_fn=visual_fn, text_fn=text_fn, seed=e.seed, optimizer=self.optimizer,
                                    progress=self.progress)
            history, trained_now = result.history, result.steps_run > 0
            timing = run_dir / "training.json"
            if trained_now:
                train_s = time.perf_counter() - t0
                for stale in run_dir.glob("evaluation-*.json"):  # of an earlier checkpoint of this folder
                    stale.unlink()
                results.write_json_atomic(timing, {"train_s": train_s, "steps": result.steps_run})
                (run_dir / "experiment.json").write_text(json.dumps({**asdict(e), **model.describe()}, indent=1))
            elif timing.is_file():
                train_s = json.loads(timing.read_text())["train_s"]
        kept = self._evaluation_file(e, run_dir, evaluate_on)
        if kept.is_file():
            scores = json.loads(kept.read_text())
        else:
            t1 = time.perf_counter()
            test = self.test_set(e, evaluate_on)
            if e.dataset == "fss" and (evaluate_on in (None, "fss")):
                meter = evaluate_mosaics(model, test, visual_fn=visual_fn)
            else:
                meter = evaluate_episodes(model, test, resolution="original" if self.toy else self.resolution,
                                          visual_fn=visual_fn, text_fn=text_fn)
            if hasattr(visual_fn, "flush"):
                visual_fn.flush()
            scores = {"miou": meter.miou(), "fb_iou": meter.fb_iou(),
                      "per_class": {str(c): v for c, v in meter.per_class_iou().items()},
                      "eval_s": time.perf_counter() - t1}
            results.write_json_atomic(kept, scores)
        return Outcome(e, scores["miou"], scores["fb_iou"], {int(c): v for c, v in scores["per_class"].items()},
                       train_s, scores["eval_s"], self.schedule(e) if model.trainable_parameters() else 0,
                       trained_now, history, model if keep_model else None)

    def run_all(self, experiments: list[Experiment], evaluate_on: str | None = None) -> list[Outcome]:
        """``run`` for each experiment; the ones not yet trained are trained (and evaluated) first,
        side by side in ``self.workers`` processes when that is more than one (the toy profile).
        Models that are trained already are only evaluated, here."""
        todo = [e for e in experiments if not self.is_trained(e)] if self.workers > 1 else []
        if todo:
            self._compute(todo, evaluate_on)
        return [self._run(e, evaluate_on) for e in experiments]

    def _compute(self, experiments: list[Experiment], evaluate_on: str | None) -> None:
        """Train and evaluate ``experiments`` in the worker processes (results land on disk)."""
        if self._pool is None:
            from functools import partial

            from .pool import WorkerPool

            factory = partial(Runner, self.profile, data_seed=self.data_seed, data_root=self.data_root,
                              cache_dir=self.cache_dir, device=self.device, coco_protocol=self.coco_protocol,
                              resolution=self.resolution, normalisation=self.normalisation, optimizer=self.optimizer,
                              seeds=self.seeds, workers=1, prepare_data=self.prepare_data)
            self._pool = WorkerPool(factory, self.workers)
        self._pool.run("run", [(e, evaluate_on) for e in experiments], description=f"{len(experiments)} Fusioner runs")
        for cache in self.caches.values():  # the workers wrote new feature shards
            cache.refresh()

    def close(self) -> None:
        """Stop the worker processes (they also stop when the notebook's kernel ends)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def weights_source(self) -> str:
        """How the recorded numbers were made: ``toy`` encoders, ``random`` ones (the dry run), or
        released encoders with a fusion module ``retrained`` here."""
        return {"toy": "toy", "random": "random"}.get(self.profile.weights, "retrained")


def start_notebook(notebook: str, profile: str, seeds=None, data_root: str | Path = "data",
                   cache_dir: str | Path | None = None, progress: bool = False,
                   prepare_data: bool = False) -> tuple[Runner, results.RunRecord]:
    """The setup cell of a Fusioner notebook: load ``profile`` and return a ``Runner`` on the
    available device for the training ``seeds`` (``None``: the profile's), preparing missing real
    datasets when ``prepare_data``, and the notebook's ``RunRecord`` (which times the notebook)."""
    from .. import env, profiles

    runner = Runner(profiles.load(profile), data_root=data_root, cache_dir=cache_dir, device=env.device(),
                    progress=progress, seeds=seeds, prepare_data=prepare_data)
    return runner, results.RunRecord(notebook, profile, runner.seeds)


# ----------------------------------------------------------------------------------------------
# Recording and showing


def record_folds(record, outcomes: list[Outcome], table: str, row: str, columns: list[str], weights: str,
                 metric: str = "miou", **protocol) -> "pd.Series":
    """Record, for every training seed, the per-fold values (%) into ``columns`` (4 fold labels +
    the mean label) of ``table``'s ``row``, and their mean where all four folds ran (a profile may
    run fewer: ``fusioner.folds``; the paper's mean column is then left empty). Returns the mean of
    the folds that ran, per seed (``ovnb.results`` aggregates them over seeds)."""
    import pandas as pd

    values = unit_values(outcomes, metric)
    if len(columns) != 5:
        raise ValueError(f"expected 5 columns (4 folds + the mean), got {len(columns)}")
    means, folds = {}, None
    for seed, per_fold in values.groupby(level="seed"):
        per_fold = per_fold.droplevel("seed").sort_index()
        if folds is not None and list(per_fold.index) != folds:
            raise ValueError(f"seed {seed} ran folds {list(per_fold.index)}, an earlier seed {folds}")
        folds = list(per_fold.index)
        if not set(folds) <= {0, 1, 2, 3} or len(set(folds)) != len(folds):
            raise ValueError(f"seed {seed}: expected distinct folds among 0-3, got {folds}")
        for fold, value in per_fold.items():
            record.add(value, paper="fusioner", table=table, row=row, column=columns[fold], weights=weights,
                       seed=seed, **protocol)
        means[seed] = float(per_fold.mean())
        if folds == [0, 1, 2, 3]:
            record.add(means[seed], paper="fusioner", table=table, row=row, column=columns[-1], weights=weights,
                       seed=seed, **protocol)
    return pd.Series(means, name=row).rename_axis("seed")


def unit_values(outcomes: list[Outcome], metric: str = "miou") -> "pd.Series":
    """``metric`` (%) of each outcome, indexed by (seed, fold): the paired units of ``ovnb.claims``."""
    import pandas as pd

    index = pd.MultiIndex.from_tuples([(o.experiment.seed, o.experiment.fold) for o in outcomes],
                                      names=["seed", "fold"])
    return pd.Series([100 * getattr(o, metric) for o in outcomes], index=index).sort_index()


def paper_vs_ours(record, table: str, profile: str):
    """``results.paper_vs_ours`` for Fusioner's tables."""
    return results.paper_vs_ours(record, "fusioner", table, profile)


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
