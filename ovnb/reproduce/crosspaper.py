"""The cross-paper benchmark: the four methods on one benchmark definition - the same images, the same
vocabulary, the same seen/unseen split and the same metric code - with each method's cost beside its
quality.

**The benchmark** (``benchmark(profile)``): a list of ``Entry`` (test set, class list, whether the
seen/unseen split applies, metric protocol), the same for every method.

* ``toy`` / ``smoke``: the toy world's ``toy-zero-shot`` split (the COCO-Stuff 156/15 analogue: 62
  classes, 7 unseen) on its test scenes and on the **shifted** world (sizes, palette, textures: the
  cross-dataset analogue, same classes). Every trained method learns from the same training scenes
  (``TOY_TRAIN_IMAGES`` of the toy world's training stream, seed 0) with the same seen classes, unseen
  pixels ignored (``semseg.training_mask``); SimBaseline's and FC-CLIP's models are their chapters'
  (``02_simbaseline_zero_shot``, ``04_fcclip_zero_shot``), reused from ``build/runs/``.
* ``quick`` / ``paper``: COCO-Stuff-171 (156/15: the split the trained methods were trained on),
  VOC-20, Pascal Context-59, ADE20K-150 and, where the profile lists them, ADE20K-847 and Pascal
  Context-459 (cross-dataset: mIoU over all classes). SimBaseline and FC-CLIP with their **released**
  weights, PnP-OVSS training-free, Fusioner **retrained** here on COCO-Stuff's seen classes (no
  semantic-segmentation Fusioner was released).
* ``dryrun``: the real path on fixture datasets with random weights.

**The contract** (``Contender``): each method is called as ``segment(images [1, 3, H, W] uint8,
class_names) -> [1, K, H, W]`` on the benchmark's image and the entry's whole class list; whatever a
method does inside - its own test-time resize (SimBaseline's shortest edge 640/512, FC-CLIP's 800,
PnP-OVSS's 336-px BLIP input, Fusioner's sliding windows), prompt templates, PnP-OVSS's choice of
candidate classes from the image and the vocabulary - is part of the method. The prediction is the
argmax; one ``ConfusionMatrix`` per (method, entry, seed), scored by ``evaluate.generalized_zero_shot``
(mIoU, mIoU-seen, mIoU-unseen, hIoU, pAcc) with the ``gt_present`` convention.

**Cost**, measured in the same run on the same machine for every method (``Runner.cost``):
parameters (trainable, total), training time of the profile (from the run's ``training.json``),
median seconds per image and peak memory over ``crosspaper.timing_images`` test images (``ovnb.cost``).

Profile keys: ``crosspaper.methods``, ``crosspaper.datasets`` (real entries), ``crosspaper.eval_images``
(test images per entry; default the profile's ``eval_images``, toy all 200), ``crosspaper.train_images``
(toy training scenes of Fusioner; default ``TOY_TRAIN_IMAGES``), ``crosspaper.timing_images``,
``crosspaper.fusioner.iterations`` (Fusioner's training steps; default the profile's
``train_iterations``), ``crosspaper.fusioner.batch_size``, ``crosspaper.fusioner.templates`` (default the
paper's 32; the dry run uses one: each sentence costs the real text tower tens of milliseconds on a CPU).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch
import torch.nn.functional as F

from .. import results
from ..data import semseg
from .fusioner import _resolve

if TYPE_CHECKING:
    import pandas as pd

METHODS = ("Fusioner", "SimBaseline", "PnP-OVSS", "FC-CLIP")
TOY_SPLIT = "toy-zero-shot"
TOY_TRAIN_IMAGES = 3000  # the toy world's training scenes every trained method learns from
TOY_TEST_IMAGES = 200
TOY_FUSIONER_ITERATIONS = 300
REAL_TRAIN = "coco-stuff-171"  # the trained methods' seen classes: COCO-Stuff's 156
RELEASED_SIMBASELINE = {"coco-stuff-171": "zsseg-coco156-zero-shot"}  # elsewhere: the cross-dataset model
CROSS_SIMBASELINE = "zsseg-coco156-cross-dataset"
METRICS = ("mIoU", "mIoU-seen", "mIoU-unseen", "hIoU", "pAcc")
PANOPTIC_METRICS = ("PQ", "PQ-seen", "PQ-unseen")  # FC-CLIP only: the one method with panoptic output
COST_COLUMNS = ("trainable (M)", "parameters (M)", "train (s)", "s / image", "first image (s)", "peak memory (MiB)")


@dataclass(frozen=True)
class Entry:
    """One test set of the benchmark: ``name`` (``toy`` / ``toy-shifted`` or a split with a standard test
    set, ``semseg.TEST_SETS``), the class list every method is given (``split``), whether the trained
    methods' seen classes are this split's (``zero_shot``: mIoU-seen / -unseen / hIoU apply; else the
    set is cross-dataset and only mIoU and pAcc are reported) and the metric protocol."""

    name: str
    split: str
    zero_shot: bool
    protocol: str = "standard"
    description: str = ""


TOY_ENTRIES = (
    Entry("toy", TOY_SPLIT, True, description="toy world test scenes (the COCO-Stuff 156/15 analogue)"),
    Entry("toy-shifted", TOY_SPLIT, True, description="the shifted toy world: new sizes, palette and textures"),
)
REAL_ENTRIES = (
    Entry("coco-stuff-171", "coco-stuff-171", True, description="COCO-Stuff val2017, 156 seen / 15 unseen"),
    Entry("voc-20", "voc-20", False, description="PASCAL VOC 2012 val, 20 classes, background ignored"),
    Entry("pascal-context-59", "pascal-context-59", False, description="Pascal Context val, 59 classes"),
    Entry("ade20k-150", "ade20k-150", False, description="ADE20K val, 150 classes"),
    Entry("ade20k-847", "ade20k-847", False, description="ADE20K-full val, 847 classes"),
    Entry("pascal-context-459", "pascal-context-459", False, description="Pascal Context val, 459 classes"),
)
DEFAULT_REAL = ("coco-stuff-171", "voc-20", "pascal-context-59", "ade20k-150")

#: each method's own paper number for a benchmark cell: (method, entry, metric) -> (paper, table, row, column)
PAPER_CELLS = {
    ("SimBaseline", "coco-stuff-171", "hIoU"): ("simbaseline", "Table 2", "Ours", "hIoU"),
    ("SimBaseline", "coco-stuff-171", "mIoU-seen"): ("simbaseline", "Table 2", "Ours", "mIoU seen"),
    ("SimBaseline", "coco-stuff-171", "mIoU-unseen"): ("simbaseline", "Table 2", "Ours", "mIoU unseen"),
    ("SimBaseline", "pascal-context-59", "mIoU"): ("simbaseline", "Table 1", "Ours", "Pascal Context (59)"),
    ("SimBaseline", "ade20k-150", "mIoU"): ("simbaseline", "Table 1", "Ours", "ADE20K (150)"),
    ("SimBaseline", "ade20k-847", "mIoU"): ("simbaseline", "Table 1", "Ours", "ADE20K (847)"),
    ("PnP-OVSS", "voc-20", "mIoU"): ("pnp_ovss", "Table 3", "PnP-OVSS + BLIP @336", "Pascal VOC-20"),
    ("PnP-OVSS", "pascal-context-59", "mIoU"): ("pnp_ovss", "Table 3", "PnP-OVSS + BLIP @336", "Pascal Context-59"),
    ("PnP-OVSS", "coco-stuff-171", "mIoU"): ("pnp_ovss", "Table 3", "PnP-OVSS + BLIP @336", "COCO Stuff-171"),
    ("PnP-OVSS", "ade20k-150", "mIoU"): ("pnp_ovss", "Table 3", "PnP-OVSS + BLIP @336", "ADE 20K-150"),
    ("PnP-OVSS", "coco-stuff-171", "mIoU-unseen"): ("pnp_ovss", "Table 4", "PnP-OVSS + BLIP", "COCO Stuff-171"),
    ("FC-CLIP", "ade20k-847", "mIoU"): ("fc_clip", "Table 3", "FC-CLIP", "A-847"),
    ("FC-CLIP", "pascal-context-459", "mIoU"): ("fc_clip", "Table 3", "FC-CLIP", "PC-459"),
    ("FC-CLIP", "ade20k-150", "mIoU"): ("fc_clip", "Table 3", "FC-CLIP", "A-150"),
    ("FC-CLIP", "pascal-context-59", "mIoU"): ("fc_clip", "Table 3", "FC-CLIP", "PC-59"),
    ("FC-CLIP", "voc-20", "mIoU"): ("fc_clip", "Table 3", "FC-CLIP", "PAS-20"),
}

#: how this benchmark differs from each paper's own protocol (shown beside every number)
DIFFERENCES = {
    "Fusioner": [
        "The paper evaluates few-shot folds (PASCAL-5i, COCO-20i): one queried class per episode, mIoU over "
        "a fold's classes. No semantic-segmentation number of Fusioner exists, so no paper number stands beside ours.",
        "Trained here on the benchmark's seen classes with every seen class name queried at once (per-class "
        "sigmoid + BCE, Eq. 4), as the paper's Mosaic-4 training queries four; the paper trains on one name per "
        "episode.",
        "Real images: shortest edge resized to the model's input, then the official sliding windows (stride 2/3).",
    ],
    "SimBaseline": [
        "The paper's tables use zsseg's mIoU convention (detectron2 0.6); the benchmark uses one convention for "
        "all (classes absent from the ground truth do not count), so its COCO-Stuff numbers can differ.",
        "Released weights: the zero-shot model (learned prompts) on COCO-Stuff, the cross-dataset model "
        "(ViLD templates, Table 1) elsewhere, each with the dataset's official ensemble weight and mask threshold.",
    ],
    "PnP-OVSS": [
        "The paper counts background as a class (VOC-21, Context-60, COCO-Stuff-172, ADE-151) and asks GPT-4o "
        "which classes each image holds; the benchmark ignores background (standard protocol) and lets a CLIP "
        "choose the candidates from the image and the vocabulary (the chapter's stand-in), as every method sees "
        "only the image and the class list. Its paper numbers are therefore not this protocol's.",
        "Training-free: nothing changes with the seed, so its spread is over one evaluation.",
    ],
    "FC-CLIP": [
        "The released model was trained on all 133 COCO panoptic classes, which merge COCO-Stuff's 15 unseen "
        "classes into seen ones: on COCO-Stuff its 'unseen' classes are not unseen.",
        "Class names are the benchmark's, without the official synonym lists; tested at the official 800-px "
        "shortest edge (toy: 128 px, as its chapter), scores resized back to the image.",
    ],
}


def benchmark(profile) -> tuple[Entry, ...]:
    """The entries of ``profile``: the toy pair, or the real entries named by ``crosspaper.datasets``
    (default VOC-20, Pascal Context-59, ADE20K-150 and COCO-Stuff-171)."""
    if profile.data == "toy":
        return TOY_ENTRIES
    wanted = tuple(profile.get("crosspaper.datasets", DEFAULT_REAL))
    known = {e.name: e for e in REAL_ENTRIES}
    unknown = [w for w in wanted if w not in known]
    if unknown or not wanted:
        raise ValueError(f"crosspaper.datasets names {unknown or 'nothing'}; valid: {', '.join(known)}")
    return tuple(known[w] for w in wanted)


@dataclass
class Contender:
    """One method as the benchmark calls it: ``segment(images, class_names)`` on the benchmark's uint8
    image, scores at its size; ``modules`` (for parameters and memory), ``trainable`` parameters, the
    weights source, the run folder whose ``training.json`` holds the training time (None: nothing trained
    here) and ``key``, which names the weights (kept evaluations are found by it)."""

    method: str
    segment: Callable[[torch.Tensor, list], torch.Tensor]
    modules: tuple
    trainable: int
    weights: str
    key: str
    run_dir: Path | None = None
    notes: dict = field(default_factory=dict)

    @property
    def parameters(self) -> int:
        """Every distinct parameter of the method's modules (frozen ones included)."""
        seen, total = set(), 0
        for module in self.modules:
            for p in module.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    total += p.numel()
        return total

    def train_s(self) -> float:
        """Seconds the training took when it ran (NaN: nothing trained here)."""
        path = self.run_dir / "training.json" if self.run_dir is not None else None
        if path is None or not path.is_file():
            return math.nan
        return float(json.loads(path.read_text())["train_s"])


class SeenQueries(torch.utils.data.Dataset):
    """Semantic training images as Fusioner samples: the seen class names queried together (``class_names``)
    and the mask in positions of that list, every other pixel 255 (``fusioner.episode_batch``'s mosaic
    form)."""

    def __init__(self, base, seen: list[int]):
        self.base, self.seen = base, list(seen)
        names = list(base.class_names)
        self.names = [names[c] for c in self.seen]
        self.table = torch.full((256,), 255, dtype=torch.long)
        self.table[torch.tensor(self.seen)] = torch.arange(len(self.seen))

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict:
        s = self.base[index]
        mask = self.table[s["mask"].clamp(0, 255)]
        return {"image": s["image"], "mask": mask, "class_names": list(self.names)}


class Runner:
    """The benchmark of one profile: the chapters' runners provide the trained models, ``evaluate`` scores
    a method on an entry with one metric code, ``cost`` measures every method side by side."""

    def __init__(self, profile, data_root: str | Path = "data", device=None, progress: bool = False, seeds=None,
                 prepare_data: bool = False, methods=None):
        from ..data.fixtures import data_root as fixture_root

        self.profile = profile
        self.toy = profile.data == "toy"
        self.data_root = _resolve(fixture_root(profile, data_root))
        self.device, self.progress, self.prepare_data = device, progress, prepare_data
        self.seeds = tuple(int(s) for s in (profile.seeds if seeds is None else seeds))
        if not self.seeds:
            raise ValueError("SEEDS is empty: give at least one training seed, e.g. [0]")
        self.methods = tuple(methods or profile.get("crosspaper.methods", METHODS))
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ValueError(f"methods {unknown or 'none'} are not benchmark methods; valid: {', '.join(METHODS)}")
        self.entries = benchmark(profile)
        default_eval = TOY_TEST_IMAGES if self.toy else profile.eval_images
        self.eval_images = profile.get("crosspaper.eval_images", default_eval)
        self.timing_images = int(profile.get("crosspaper.timing_images", 16))
        self._runners: dict = {}
        self._data: dict = {}
        self._contenders: dict = {}
        self._encoders: dict = {}
        self._fusioner_models: dict = {}  # seed -> (model, run folder)

    # -- the chapters' runners -------------------------------------------------------------------
    def chapter(self, method: str):
        """The chapter runner that provides ``method``'s models (built once)."""
        if method not in self._runners:
            common = dict(data_root=self.data_root, device=self.device, progress=self.progress,
                          prepare_data=self.prepare_data)
            if method == "SimBaseline":
                from .simbaseline import Runner as R

                self._runners[method] = R(self.profile, seeds=self.seeds, **common)
            elif method == "FC-CLIP":
                from .fcclip import Runner as R

                self._runners[method] = R(self.profile, **common)
            elif method == "PnP-OVSS":
                from .pnp_ovss import Runner as R

                self._runners[method] = R(self.profile, encoders=self._encoders, **common)  # one reward CLIP
            else:
                raise ValueError(f"{method} has no chapter runner here: the benchmark trains it itself")
        return self._runners[method]

    def weights_source(self, method: str) -> str:
        if self.toy:
            return "toy"
        if self.profile.weights == "random":
            return "random"
        return "retrained" if method == "Fusioner" else "released"

    def entry(self, name: str) -> Entry:
        for e in self.entries:
            if e.name == name:
                return e
        raise ValueError(f"no benchmark entry {name!r} in profile {self.profile.name}; "
                         f"valid: {', '.join(e.name for e in self.entries)}")

    # -- data ------------------------------------------------------------------------------------
    def dataset(self, entry: Entry | str) -> semseg.SemSegImages:
        """The test images of ``entry``, the same object for every method."""
        entry = self.entry(entry) if isinstance(entry, str) else entry
        if entry.name not in self._data:
            if self.toy:
                self._data[entry.name] = semseg.toy(TOY_SPLIT, "test", TOY_TEST_IMAGES,
                                                    shifted=entry.name == "toy-shifted")
            else:
                from ..data.prepare import load_or_prepare

                self._data[entry.name] = load_or_prepare(lambda: semseg.test_set(entry.name, self.data_root),
                                                         self.data_root, self.prepare_data)
        return self._data[entry.name]

    def indices(self, entry: Entry | str) -> list[int]:
        """The scored test images: all, or ``eval_images`` of them spread evenly over the set."""
        n = len(self.dataset(entry))
        if self.eval_images is None or int(self.eval_images) >= n:
            return list(range(n))
        k = int(self.eval_images)
        return sorted({round(i * (n - 1) / max(k - 1, 1)) for i in range(k)})

    def train_set(self):
        """The training images of the trained methods: the toy world's training scenes (or COCO-Stuff
        train2017), unseen pixels ignored."""
        if "train" not in self._data:
            if self.toy:
                images = int(self.profile.get("crosspaper.train_images", TOY_TRAIN_IMAGES))
                self._data["train"] = semseg.toy(TOY_SPLIT, "train", images, training=True)
            else:
                from ..data.prepare import load_or_prepare

                self._data["train"] = load_or_prepare(
                    lambda: semseg.coco_stuff(self.data_root, "train2017", training=True), self.data_root,
                    self.prepare_data)
        return self._data["train"]

    def split(self) -> semseg.Split:
        return semseg.split(TOY_SPLIT if self.toy else REAL_TRAIN)

    # -- the contenders --------------------------------------------------------------------------
    def train_all(self) -> None:
        """Train what the benchmark needs and is not trained yet (the chapters' toy models side by side in
        their worker pools; Fusioner here)."""
        if "SimBaseline" in self.methods and (self.toy or self.profile.weights == "random"):
            from .simbaseline import Experiment

            runner = self.chapter("SimBaseline")
            runner.train_all([Experiment("coco-stuff-171", prompt=runner.prompt, seed=s) for s in self.seeds])
            runner.close()
        if "FC-CLIP" in self.methods and (self.toy or self.chapter("FC-CLIP").retrain_on("coco")):
            from .fcclip import Experiment

            runner = self.chapter("FC-CLIP")
            runner.train_all([Experiment("frozen", s) for s in self.seeds])
            runner.close()
        if "Fusioner" in self.methods:
            for s in self.seeds:
                self.contender("Fusioner", s)

    def contender(self, method: str, seed: int, entry: Entry | None = None) -> Contender:
        """``method`` with the weights of training seed ``seed`` (methods trained on nothing here: the same
        weights for every seed), set up for ``entry`` (its test-time resize and, SimBaseline's released
        models, the dataset's checkpoint and ensemble weight)."""
        if method not in self.methods:
            raise ValueError(f"method {method!r} is not benchmarked in this run; valid: {', '.join(self.methods)}")
        entry = entry or self.entries[0]
        key = (method, seed, entry.name)
        if key not in self._contenders:
            build = {"Fusioner": self._fusioner, "SimBaseline": self._simbaseline, "PnP-OVSS": self._pnp,
                     "FC-CLIP": self._fcclip}[method]
            self._contenders[key] = build(seed, entry)
        return self._contenders[key]

    def _fusioner(self, seed: int, entry: Entry) -> Contender:
        from ..cache import visual_cache, weights_fingerprint
        from ..evaluate import sliding_logits
        from ..methods import fusioner
        from .simbaseline import resize_shortest_edge

        if seed not in self._fusioner_models:
            name = "toy-clip-vit" if self.toy else "clip-vit-l-14"
            config = fusioner.FusionerConfig.toy() if self.toy else fusioner.FusionerConfig()
            config = replace(config, templates=self.profile.get("crosspaper.fusioner.templates", config.templates))
            model = fusioner.build(name, name, pretrained=self.profile.pretrained, config=config, device=self.device,
                                   encoders=self._encoders, seed=seed)
            self._encoders[name] = model.visual_encoder
            settings = self.fusioner_settings()
            spec = {"profile": self.profile.name, "seed": seed, "settings": settings, "config": config.to_dict(),
                    "encoder": name, "weights": weights_fingerprint(model.visual_encoder),
                    "train": f"{self.train_set().name}-{len(self.train_set())}"}
            run_dir = results.build_dir() / "runs" / self.profile.name / "crosspaper" / (
                "fusioner-" + results.digest(spec))
            data = SeenQueries(self.train_set(), self.split().seen)
            if not self.toy:
                from ..data.fewshot import TrainCrops

                data = TrainCrops(data, model.image_size)
            threads = torch.get_num_threads()
            if self.toy:
                torch.set_num_threads(1)  # as the chapters' toy trainings, so training times compare
            t0 = time.perf_counter()
            try:
                result = fusioner.train(model, data, settings["iterations"], settings["batch_size"], run_dir,
                                        visual_fn=visual_cache(model, None, enabled=self.toy), seed=seed,
                                        progress=self.progress)
            finally:
                torch.set_num_threads(threads)
            if result.steps_run:
                results.write_json_atomic(run_dir / "training.json", {"train_s": time.perf_counter() - t0,
                                                                      "steps": result.steps_run, "spec": spec})
            self._fusioner_models[seed] = (model.eval(), run_dir)
        model, run_dir = self._fusioner_models[seed]

        def segment(images, names):
            if self.toy:
                with torch.no_grad():
                    return model.segment(images.to(next(model.head.parameters()).device), names).float().cpu()
            text = model.text_embeddings(names)
            x = resize_shortest_edge(images, model.image_size)[0].round().clamp(0, 255).byte()
            logits = sliding_logits(model, x, text)
            return F.interpolate(logits[None], size=images.shape[-2:], mode="bilinear", align_corners=False)

        return Contender("Fusioner", segment, (model,), model.trainable_parameters(), self.weights_source("Fusioner"),
                         key=run_dir.name, run_dir=run_dir)

    def fusioner_settings(self) -> dict:
        default = TOY_FUSIONER_ITERATIONS if self.toy else (self.profile.train_iterations or 20_000)
        return {"iterations": int(self.profile.get("crosspaper.fusioner.iterations", default)),
                "batch_size": int(self.profile.get("crosspaper.fusioner.batch_size", self.profile.batch_size))}

    def _simbaseline(self, seed: int, entry: Entry) -> Contender:
        from ..cache import weights_fingerprint
        from ..methods import simbaseline as sb
        from .simbaseline import Experiment, segment_at

        runner = self.chapter("SimBaseline")
        released = not self.toy and self.profile.weights != "random"
        if released:
            name = RELEASED_SIMBASELINE.get(entry.name, CROSS_SIMBASELINE)
            model, run_dir, key = runner.released(name), None, name
        else:
            e = Experiment("coco-stuff-171", prompt=runner.prompt, seed=seed)
            model, run_dir = runner.model(e), runner.run_dir(e)
            key = run_dir.name if self.toy else f"{run_dir.name}-{weights_fingerprint(model)}"
        edge = runner.test_edge(entry.name)
        overrides = sb.ENSEMBLE_WEIGHTS.get(entry.name, {})

        def segment(images, names):
            original = model.config
            model.config = replace(original, classifier="ensemble", **overrides)
            try:  # the chapter's test path: resize, Eq. (2) scores, back to the image's size
                scores = segment_at(model, images[0], list(names), edge, images.shape[-2:])
            finally:
                model.config = original
            return scores.float().cpu()[None]

        from ..cost import parameter_count

        return Contender("SimBaseline", segment, (model,), 0 if released else parameter_count(model, trainable=True),
                         self.weights_source("SimBaseline"), key=f"{key}-{entry.name}", run_dir=run_dir)

    def _pnp(self, seed: int, entry: Entry) -> Contender:
        from ..cache import weights_fingerprint
        from .pnp_ovss import clip_choice

        runner = self.chapter("PnP-OVSS")  # its reward CLIP is Fusioner's encoder: one frozen copy, one text cache
        model, clip = runner.model(background="never"), runner.clip()

        def segment(images, names):
            candidates = [clip_choice(clip, image, list(names)) for image in images]
            return model.segment(images, list(names), candidates).float().cpu()

        key = f"{runner.vlm}-{weights_fingerprint(model)}-{weights_fingerprint(clip)}-{model.config.image_size}"
        return Contender("PnP-OVSS", segment, (model, clip), 0, self.weights_source("PnP-OVSS"), key=key)

    def _fcclip(self, seed: int, entry: Entry) -> Contender:
        from ..cache import weights_fingerprint
        from ..cost import parameter_count
        from .fcclip import Experiment

        runner = self.chapter("FC-CLIP")
        e = Experiment("frozen", seed)
        trained = self.toy or runner.retrain_on("coco")
        model = runner.model(e)
        run_dir = runner.run_dir(e) if trained else None
        device = next(model.parameters()).device
        source = "retrained" if trained else "released"
        key = run_dir.name if (trained and self.toy) else f"{source}-{weights_fingerprint(model)}"

        def segment(images, names):
            x = torch.stack([runner.resize(image) for image in images])
            with torch.no_grad():
                scores = model.segment(x.to(device), list(names)).float().cpu()
            return F.interpolate(scores, size=images.shape[-2:], mode="bilinear", align_corners=False)

        return Contender("FC-CLIP", segment, (model,), parameter_count(model, trainable=True) if trained else 0,
                         self.weights_source("FC-CLIP"), key=f"{key}-{runner.test_size}-{runner.test_edge}",
                         run_dir=run_dir)

    # -- evaluation: one metric code for every method --------------------------------------------
    def evaluate(self, method: str, entry: Entry | str, seed: int) -> dict:
        """``method``'s scores (%) on ``entry`` with the weights of ``seed``: every test image segmented with
        the entry's whole class list, the argmax scored by ``score_predictions``. Kept under
        ``build/runs/<profile>/crosspaper/`` by the weights' key, so a warm rebuild evaluates nothing."""
        entry = self.entry(entry) if isinstance(entry, str) else entry
        contender = self.contender(method, seed, entry)
        indices = self.indices(entry)
        spec = {"method": method, "weights": contender.key, "entry": entry.name, "split": entry.split,
                "protocol": entry.protocol, "images": indices}
        def compute():
            t0 = time.perf_counter()
            scores = score_predictions(contender.segment, self.dataset(entry), indices, entry, progress=self.progress,
                                       description=f"{method} on {entry.name}")
            return {**scores, "eval_s": time.perf_counter() - t0, "images": len(indices), "weights": contender.weights}

        return results.kept(self._kept_dir() / f"evaluation-{results.digest(spec)}.json", compute)

    def _kept_dir(self) -> Path:
        return results.build_dir() / "runs" / self.profile.name / "crosspaper"

    def panoptic_quality(self, entry: Entry | str, seed: int) -> dict:
        """FC-CLIP's panoptic quality (%; all, seen and unseen classes) on a toy entry: the same test scenes
        (``dataset(entry)``, drawn again with their instance maps), one segment per thing instance and per
        stuff class present (``panoptic.targets_from_instances``), FC-CLIP's ``panoptic`` output at its test
        size resized back (nearest). FC-CLIP is the only method with panoptic output, and the toy entries the
        only ones with instances (the real entries are semantic benchmarks). Kept like ``evaluate``."""
        entry = self.entry(entry) if isinstance(entry, str) else entry
        if not self.toy or "FC-CLIP" not in self.methods:
            raise ValueError("panoptic quality is scored on the toy entries, for FC-CLIP (the one panoptic method)")
        contender = self.contender("FC-CLIP", seed, entry)
        indices = self.indices(entry)
        spec = {"method": "FC-CLIP", "weights": contender.key, "entry": entry.name, "images": indices, "kind": "PQ"}
        return results.kept(self._kept_dir() / f"panoptic-{results.digest(spec)}.json",
                            lambda: self._panoptic_quality(entry, seed, indices))

    def _panoptic_quality(self, entry: Entry, seed: int, indices) -> dict:
        from ..data.toy_world import ToyWorld
        from ..panoptic import PanopticQuality, targets_from_instances
        from .fcclip import Experiment

        runner = self.chapter("FC-CLIP")
        model = runner.model(Experiment("frozen", seed))
        device = next(model.parameters()).device
        world = ToyWorld("test", TOY_TEST_IMAGES, seed=0, shifted=entry.name == "toy-shifted")
        split = semseg.split(entry.split)
        names, thing = list(split.class_names), runner.thing()
        pq = PanopticQuality(len(names), thing)
        for i in indices:
            sample = world[i]
            x = runner.resize(sample["image"])[None].to(device)
            out = model.panoptic(x, names, thing=thing)[0]
            segments = F.interpolate(out["segments"][None, None].float().cpu(), size=sample["mask"].shape,
                                     mode="nearest")[0, 0].long()
            truth, truth_info = targets_from_instances(sample["mask"], sample["instances"], thing)
            pq.update(segments, out["info"], truth, truth_info)
        return {name: 100 * pq.summary(ids)["pq"] for name, ids in
                (("PQ", None), ("PQ-seen", split.seen), ("PQ-unseen", split.unseen))}

    def panoptic_scores(self, record: results.RunRecord | None = None) -> "pd.DataFrame":
        """``panoptic_quality`` for every toy entry and seed (recorded as ``kind="quality"``); empty on real data."""
        import pandas as pd

        rows = []
        if self.toy and "FC-CLIP" in self.methods:
            for entry in self.entries:
                for seed in self.seeds:
                    out = self.panoptic_quality(entry, seed)
                    rows.append({"method": "FC-CLIP", "entry": entry.name, "seed": seed,
                                 "key": self.contender("FC-CLIP", seed, entry).key, **out})
                    if record is not None:
                        for m, v in out.items():
                            record.metric(f"FC-CLIP | {entry.name} | {m}", v, seed=seed, kind="quality",
                                          method="FC-CLIP", entry=entry.name, metric=m, weights="toy")
        return pd.DataFrame(rows)

    def predict(self, method: str, entry: Entry | str, seed: int, index: int) -> torch.Tensor:
        """The label map ``method`` predicts for test image ``index`` of ``entry``, as ``evaluate`` scores it."""
        entry = self.entry(entry) if isinstance(entry, str) else entry
        sample = self.dataset(entry)[index]
        names = list(semseg.split(entry.split).class_names)
        return self.contender(method, seed, entry).segment(sample["image"][None], names)[0].argmax(0)

    def cost(self, method: str, seed: int | None = None, entry: Entry | str | None = None) -> dict:
        """What ``method`` costs, measured now on this machine: parameters (trainable, total, millions),
        training time (s, when it was trained), median and first seconds per image and peak memory (MiB,
        ``ovnb.cost.Meter``) over the first ``timing_images`` scored images of ``entry`` (default the first)."""
        from ..cost import Meter

        seed = self.seeds[0] if seed is None else seed
        entry = self.entries[0] if entry is None else (self.entry(entry) if isinstance(entry, str) else entry)
        contender = self.contender(method, seed, entry)
        dataset = self.dataset(entry)
        names = list(semseg.split(entry.split).class_names)
        meter = Meter(self.device or "cpu")
        for i in self.indices(entry)[:self.timing_images]:
            image = dataset[i]["image"][None]
            with meter.call():
                contender.segment(image, names)
        modules = torch.nn.ModuleList(list(contender.modules))
        return {"method": method, "weights": contender.weights, "trainable (M)": contender.trainable / 1e6,
                "parameters (M)": contender.parameters / 1e6, "train (s)": contender.train_s(),
                "s / image": meter.median_s, "first image (s)": meter.first_s,
                "peak memory (MiB)": meter.peak_mib(modules),
                "timed images": len(meter.seconds), "device": str(meter.device)}

    def trains(self, method: str) -> bool:
        """Whether ``method``'s weights differ between training seeds in this profile (a model trained per
        seed here or in its chapter); released weights and the training-free method do not."""
        if method == "PnP-OVSS":
            return False
        if self.toy or self.profile.weights == "random" or method == "Fusioner":
            return True
        return method == "FC-CLIP" and self.chapter("FC-CLIP").retrain_on("coco")

    def scores(self, record: results.RunRecord | None = None) -> "pd.DataFrame":
        """Every (method, entry, seed) evaluated (``evaluate``): one row each, with the weights' key, so that
        a method whose weights do not change with the seed counts once in a spread. Recorded in ``record``
        (``kind="quality"``; seed None where the weights do not depend on it)."""
        import pandas as pd

        rows = []
        for method in self.methods:
            for entry in self.entries:
                for seed in self.seeds:
                    out = self.evaluate(method, entry, seed)
                    trained = self.trains(method)
                    key = self.contender(method, seed, entry).key
                    metrics = {m: out[m] for m in METRICS if m in out}
                    rows.append({"method": method, "entry": entry.name, "seed": seed, "weights": out["weights"],
                                 "key": key, "trained": trained, **metrics})
                    if record is not None and (trained or seed == self.seeds[0]):
                        for m, v in metrics.items():
                            record.metric(f"{method} | {entry.name} | {m}", v, seed=seed if trained else None,
                                          kind="quality", method=method, entry=entry.name, metric=m,
                                          weights=out["weights"])
        return pd.DataFrame(rows)

    def costs(self, record: results.RunRecord | None = None) -> "pd.DataFrame":
        """``cost`` of every method, measured one after the other in this run (recorded as ``kind="cost"``)."""
        import pandas as pd

        rows = [self.cost(m) for m in self.methods]
        if record is not None:
            for row in rows:
                for k in COST_COLUMNS:
                    record.metric(f"{row['method']} | cost | {k}", row[k], kind="cost", method=row["method"],
                                  quantity=k, weights=row["weights"], device=row["device"])
        return pd.DataFrame(rows).set_index("method")

    def paper_numbers(self) -> "pd.DataFrame":
        """Each method's own paper numbers for the benchmark's cells (``PAPER_CELLS``), in its protocol."""
        import pandas as pd

        from .. import papers

        rows = []
        for (method, entry, metric), where in PAPER_CELLS.items():
            cell = papers.cell(*where)
            rows.append({"method": method, "entry": entry, "metric": metric, "paper value": cell.value,
                         "source": f"{papers.TITLES[where[0]]} {where[1]}, row {where[2]!r}, column {where[3]!r}"})
        return pd.DataFrame(rows)

    def paper_value(self, method: str, entry: str, metric: str) -> float:
        """The method's own paper number for a benchmark cell (``PAPER_CELLS``), NaN where it reported none."""
        from .. import papers

        where = PAPER_CELLS.get((method, entry, metric))
        return papers.cell(*where).value if where else math.nan

    def close(self) -> None:
        for runner in self._runners.values():
            if hasattr(runner, "close"):
                runner.close()


def score_predictions(segment, dataset, indices, entry: Entry, progress: bool = False,
                      description: str = "benchmark") -> dict:
    """The benchmark's one metric code: ``segment(image [1, 3, H, W], class_names)`` on every image of
    ``indices`` with ``entry``'s whole class list, the argmax against the mask (255 ignored) in one
    confusion matrix, scored by ``generalized_zero_shot`` (%). A cross-dataset entry reports mIoU and pAcc
    only. Also returns the per-class IoU (%; None where a class is absent from the ground truth)."""
    from tqdm.auto import tqdm

    from ..evaluate import generalized_zero_shot
    from ..metrics import PROTOCOLS
    from .simbaseline import matrix_per_class

    split = semseg.split(entry.split)
    names = list(split.class_names)
    if list(dataset.class_names) != names:
        raise ValueError(f"the test set of {entry.name!r} holds classes {list(dataset.class_names)[:5]}..., "
                         f"not the entry's split {entry.split!r}")
    matrix = PROTOCOLS[entry.protocol].confusion_matrix(len(names))
    for i in tqdm(indices, desc=description, disable=not progress, leave=False):
        sample = dataset[i]
        scores = segment(sample["image"][None], list(names))
        expected = (1, len(names), *sample["mask"].shape)
        if tuple(scores.shape) != expected:
            raise ValueError(f"{description}: segment returned scores of shape {list(scores.shape)}, "
                             f"expected {list(expected)} (one map per class at the image's size)")
        matrix.update(scores[0].argmax(0).cpu(), sample["mask"])
    out = {k: 100 * v for k, v in generalized_zero_shot(matrix, split.seen, split.unseen).items()}
    if not entry.zero_shot:
        out = {k: out[k] for k in ("mIoU", "pAcc")}
    out["per_class"] = matrix_per_class(matrix)
    return out


def summary(frame, metrics=METRICS):
    """``mean ± sd (n)`` per method and entry from ``Runner.scores``' rows; a method's weights count once
    (``n`` = distinct weights: the training-free method and released weights have n = 1)."""
    import pandas as pd

    from ..results import aggregate, format_spread

    rows = []
    for (method, entry), group in frame.groupby(["method", "entry"], sort=False):
        group = group.drop_duplicates("key")
        row = {"method": method, "entry": entry}
        for m in metrics:
            if m in group and group[m].notna().any():
                spread = aggregate(group[m].dropna().tolist())
                row[m] = format_spread(spread.mean, spread.sd, spread.n) if spread.n > 1 else f"{spread.mean:.1f}"
        rows.append(row)
    return pd.DataFrame(rows).set_index(["entry", "method"]).fillna("")


def quality_cost_figure(frame, costs, metric: str = "hIoU", ax=None):
    """Quality against cost: each method's mean ``metric`` over the entries and seeds against its
    seconds per image (log scale); the marker's area grows with the total parameters."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    if metric not in frame or not frame[metric].notna().any():
        metric = "mIoU"  # e.g. no unseen class among a few scored images: hIoU is undefined
    means = frame.drop_duplicates(["method", "entry", "key"]).groupby("method", sort=False)[metric].mean()
    for method, value in means.items():
        c = costs.loc[method]
        if not (math.isfinite(value) and c["s / image"] > 0):
            continue
        ax.scatter(c["s / image"], value, s=40 + 30 * c["parameters (M)"] ** 0.5, alpha=0.7, label=method)
        ax.annotate(method, (c["s / image"], value), textcoords="offset points", xytext=(6, 4), fontsize=9)
    ax.set_xscale("log")
    ax.set_xlabel(f"seconds per image ({costs['device'].iloc[0]}, median)")
    ax.set_ylabel(f"{metric} (%), mean over entries and seeds")
    ax.set_title("quality against cost (marker area: parameters)")
    return ax


def start_notebook(notebook: str, profile: str, seeds=None, data_root: str | Path = "data", progress: bool = False,
                   prepare_data: bool = False) -> tuple[Runner, results.RunRecord]:
    """The setup cell of the benchmark notebook: the ``Runner`` for ``profile`` on the available device and
    the notebook's ``RunRecord``."""
    from .. import env, profiles

    runner = Runner(profiles.load(profile), data_root=data_root, device=env.device(), progress=progress, seeds=seeds,
                    prepare_data=prepare_data)
    return runner, results.RunRecord(notebook, profile, runner.seeds)
