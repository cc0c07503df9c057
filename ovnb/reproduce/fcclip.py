"""FC-CLIP's experiments: one ``Runner`` per profile trains (or loads) FC-CLIP and scores it.

* ``toy``: FC-CLIP on the toy ConvNeXt CLIP, trained on the toy world's ``toy-zero-shot`` split (the
  COCO-panoptic analogue: every scene, the 7 unseen classes' pixels void, as objects of classes
  outside COCO's 133 are in COCO), with LSJ at 64 px; tested at 128 px (larger than training, as
  FC-CLIP tests at 800-1333 px after training at 1024 crops) on the toy world's test scenes (the
  training dataset: COCO's columns) and on the **shifted** world (sizes, palette, textures: ADE20K's
  columns, zero-shot). Each seed trains a new model; the test scenes are fixed.
* ``quick`` / ``paper``: the **released** ConvNeXt-L checkpoint (``fcclip_cocopan.pth``, downloaded by
  the user from the official model zoo, path in the profile key ``fcclip.weights`` or
  ``DATA_ROOT/checkpoints/fcclip_cocopan.pth``; ``fcclip.model`` picks another model of the zoo, e.g.
  ``fcclip-r50`` on the ResNet-50 CLIP, ``fcclip_weights.RELEASED``) on the panoptic test sets (``PANOPTIC``: ADE20K, COCO,
  Cityscapes, Mapillary Vistas) and the semantic benchmarks (``SEMANTIC``) at the official test sizes
  (shortest edge 800, longest at most 1333; street views 1024 / 2560), class names with the official
  synonyms (``ovnb data prepare fcclip-class-lists``). With ``fcclip.retrain: [coco]`` the model is
  **retrained** on COCO panoptic instead (``[coco, ade20k]``: also Table 5's ADE20K-trained model), and
  ``fcclip.checkpoint`` names which of its weights are kept (``CHECKPOINT_POLICIES``).
* ``dryrun``: the same code with the real architecture's random weights on fixture datasets, at
  ``fcclip.test_edge`` (128 px), retrained for one step on 64-px crops: the path, not the numbers.

Scoring (``Scores``): the forward pass of a test set is stored once per model (in-vocabulary logits,
out-of-vocabulary logits and stride-4 mask logits, ``Outputs``); every ensemble setting (Table 8's
grid, the single classifiers) is scored from them without running the network again.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from .. import results
from ..data import panoptic, semseg
from ..methods import fcclip as fc
from ..metrics import ConfusionMatrix, miou
from ..panoptic import PanopticQuality, targets_from_instances
from .fusioner import _resolve

TOY_CLIP = "toy-clip-convnext"
DEFAULT_MODEL = "fcclip-convnext-large"  # the paper's model; ``fcclip.model`` picks another of the official zoo
TOY_SPLIT = "toy-zero-shot"
TOY_TRAIN_IMAGES = 3000  # the same training scenes as SimBaseline (the cross-paper benchmark compares them)
TOY_TEST_IMAGES = 200
TOY_TEST_SIZE = 128
TOY_ITERATIONS = 500
#: the toy schedule: the official optimizer, groups, clipping and milestones, batch 8 at 3e-4 for 500
#: steps on 64-px LSJ crops (scale 0.5-2.0) instead of 16 at 1e-4 for 368,750 on 1024-px crops (0.1-2.0)
TOY_SETTINGS = dict(batch_size=8, lr=3e-4, crop=64, scale=(0.5, 2.0))
#: Table 3's columns -> our splits (semantic benchmarks, read from ``semseg.TEST_SETS``)
SEMANTIC = {"A-847": "ade20k-847", "PC-459": "pascal-context-459", "A-150": "ade20k-150", "PC-59": "pascal-context-59",
            "PAS-21": "voc-21", "PAS-20": "voc-20"}
#: the panoptic test sets (``ovnb.data.panoptic``) and the table columns they fill
PANOPTIC = {"ade20k-panoptic": lambda root: panoptic.ade20k_panoptic(root, "validation"),
            "coco-panoptic": lambda root: panoptic.coco_panoptic(root, "val2017"),
            "cityscapes-panoptic": lambda root: panoptic.cityscapes_panoptic(root, "val"),
            "mapillary-vistas": lambda root: panoptic.mapillary_vistas(root, "validation")}
PANOPTIC_COLUMNS = {"ADE20K": "ade20k-panoptic", "COCO": "coco-panoptic", "Cityscapes": "cityscapes-panoptic",
                    "Mapillary Vistas": "mapillary-vistas"}
#: test sizes (shortest edge, longest-edge cap) of the official configs: detectron2's default, street views larger
TEST_SIZES = {"cityscapes-panoptic": (1024, 2560), "mapillary-vistas": (1024, 2560)}


#: checkpoint-selection policies: the last weights (default), or the maintainers' pick - the kept weights
#: with the best zero-shot PQ on ADE20K panoptic val (toy: on the shifted world), i.e. chosen on the test set
CHECKPOINT_POLICIES = ("last", "best-ade-pq")
KEEP_EVERY = 250  # toy: weights kept at steps 250 and 500 for ``best-ade-pq``


@dataclass(frozen=True)
class Experiment:
    """One trained model: FC-CLIP (``backbone="frozen"``) or Table 6's fine-tuned-trunk variant, trained on
    COCO panoptic (toy: the toy world) or, Table 5, ADE20K panoptic; ``checkpoint``: which weights of the
    run are kept (``CHECKPOINT_POLICIES``)."""

    backbone: str = "frozen"  # frozen | finetuned
    seed: int = 0
    train: str = "coco"  # coco | ade20k
    checkpoint: str = "last"

    def __post_init__(self):
        if self.backbone not in ("frozen", "finetuned"):
            raise ValueError(f"backbone must be 'frozen' or 'finetuned', got {self.backbone!r}")
        if self.train not in ("coco", "ade20k"):
            raise ValueError(f"train must be 'coco' or 'ade20k', got {self.train!r}")
        if self.checkpoint not in CHECKPOINT_POLICIES:
            raise ValueError(f"checkpoint must be one of {CHECKPOINT_POLICIES}, got {self.checkpoint!r}")

    @property
    def run(self) -> "Experiment":
        """The training run these weights come from (every policy picks from the same run)."""
        return replace(self, checkpoint="last")


@dataclass
class Outputs:
    """One model's forward pass over a test set (per image; stride-4 masks as float16)."""

    in_logits: list[torch.Tensor]  # [Q, K + 1]
    out_logits: dict[str, list[torch.Tensor]]  # out-of-vocabulary source -> [Q, K]
    masks: list[torch.Tensor]  # [Q, h, w]
    sizes: list[tuple[int, int]]
    valid: list[torch.Tensor] = field(default_factory=list)  # [Q] bool, models that ensemble on valid masks only


class Runner:
    """Profile keys: ``fcclip.iterations`` (toy training steps, default 500), ``fcclip.test_images``
    (toy test scenes, default 200), ``fcclip.test_size`` (toy test size, default 128),
    ``fcclip.test_edge`` (real data: shortest edge, default 800), ``fcclip.weights`` (the released
    checkpoint's path), ``fcclip.model`` (which model of the official zoo: ``fcclip_weights.RELEASED``,
    default ``fcclip-convnext-large``; its CLIP is the real profiles' backbone), ``fcclip.templates`` (default the 14 ViLD templates; the dry run uses one:
    each sentence costs the real text tower ~65 ms on a CPU), ``eval_images``; retraining on real data:
    ``fcclip.retrain`` (a list of ``coco`` / ``ade20k``; default none: the released weights),
    ``fcclip.checkpoint`` (``last`` or ``best-ade-pq``), ``fcclip.keep_every`` (steps between kept
    weights for ``best-ade-pq``, default 5000), ``fcclip.crop`` (LSJ crop, default 1024), ``fcclip.batch_size`` (default 16); notebooks:
    ``fcclip.panoptic.columns``, ``fcclip.table3.columns``, ``fcclip.table9.sizes`` / ``.columns``."""

    def __init__(self, profile, data_root: str | Path = "data", device=None, progress: bool = False,
                 prepare_data: bool = False, workers: int | None = None, model: str | None = None):
        from ..data.fixtures import data_root as fixture_root

        self.profile = profile
        self.toy = profile.data == "toy"
        self.data_root = _resolve(fixture_root(profile, data_root))
        self.device, self.progress, self.prepare_data = device, progress, prepare_data
        self.iterations = int(profile.get("fcclip.iterations", TOY_ITERATIONS if self.toy else profile.train_iterations))
        self.test_images = int(profile.get("fcclip.test_images", TOY_TEST_IMAGES))
        self.test_size = int(profile.get("fcclip.test_size", TOY_TEST_SIZE))
        self.test_edge = int(profile.get("fcclip.test_edge", 800))
        self.templates = profile.get("fcclip.templates", "vild")
        from ..methods.fcclip_weights import released

        self.model_name = model or profile.get("fcclip.model", DEFAULT_MODEL)
        self.zoo = released(self.model_name)
        self.eval_images = profile.eval_images
        self.workers = int(profile.workers if workers is None else workers)
        self.models: dict = {}
        self._data: dict = {}
        self._outputs: dict = {}
        self._clip = None
        self._encoders: dict = {}
        self._texts: dict = {}
        self._scratch: dict = {}
        self._pool = None

    # -- vocabulary --------------------------------------------------------------------------------
    def split(self) -> semseg.Split:
        return semseg.split(TOY_SPLIT)

    def train_names(self, train: str = "coco") -> list[str]:
        """The training vocabulary: the toy split's seen classes, or COCO panoptic's 133 (ADE20K panoptic's
        150 for Table 5), with the official synonyms."""
        if self.toy:
            s = self.split()
            return s.names(s.seen)
        from ..data.class_lists import fcclip_synonyms

        return fcclip_synonyms(self.data_root, "coco-panoptic-133" if train == "coco" else "ade20k-150")

    def retrain_on(self, train: str) -> bool:
        """Whether this profile retrains FC-CLIP on ``train`` (profile key ``fcclip.retrain``, a list of
        ``coco`` / ``ade20k``) instead of loading the released weights (COCO) or skipping (ADE20K)."""
        return not self.toy and train in (self.profile.get("fcclip.retrain") or [])

    def thing(self, name: str | None = None) -> list[bool]:
        """Thing flags of test set ``name``'s classes (toy: the toy world's; a semantic benchmark: none)."""
        if self.toy:
            from ..data.toy_world import vocabulary

            voc = vocabulary()
            return [voc.is_thing(i) for i in range(len(voc.names))]
        if name in PANOPTIC:
            return self.dataset(name).thing
        return [False] * len(self.class_names(name))

    def class_names(self, name: str) -> list[str]:
        """The text queries for dataset ``name`` (toy: the 62 names; real: the official synonym strings)."""
        if self.toy:
            return list(self.split().class_names)
        from ..data.class_lists import fcclip_synonyms

        return fcclip_synonyms(self.data_root, self.dataset(name).categories.split if name in PANOPTIC else name)

    def weights_source(self) -> str:
        return {"toy": "toy", "random": "random"}.get(self.profile.weights,
                                                      "retrained" if self.retrain_on("coco") else "released")

    def context(self, name: str) -> dict:
        """What a run record says about test set ``name``: its name, ``images`` when a profile scores a
        subset of it, and ``model`` when it is not the paper's ConvNeXt-L model (``fcclip.model``)."""
        subset = self.eval_images and not self.toy
        model = {"model": self.model_name} if self.model_name != DEFAULT_MODEL and not self.toy else {}
        return {"dataset": name, **({"images": len(self.indices(self.dataset(name)))} if subset else {}), **model}

    def row(self, label: str = "FC-CLIP") -> str:
        """A table row's label in the run records: ``label``, or ``label [model]`` for a model of the zoo other
        than the paper's (its numbers are then not set beside the paper's ConvNeXt-L values)."""
        return label if self.toy or self.model_name == DEFAULT_MODEL else f"{label} [{self.model_name}]"

    @property
    def clip_name(self) -> str:
        """The frozen CLIP: the toy ConvNeXt CLIP, or the CLIP of the zoo model ``fcclip.model``."""
        return TOY_CLIP if self.toy else self.zoo["clip"]

    # -- models ------------------------------------------------------------------------------------
    def clip(self):
        if self._clip is None:
            from .. import encoders

            if not self.profile.pretrained:  # random weights: the same in every process (and its cached texts)
                torch.manual_seed(0)
            self._clip = encoders.build(self.clip_name, pretrained=self.profile.pretrained,
                                        device=self.device)
        return self._clip

    def settings(self) -> fc.TrainSettings:
        """Toy: ``TOY_SETTINGS``; paper: the official schedule; quick / dryrun: the official one scaled to
        ``train_iterations``, with the profile keys ``fcclip.crop`` / ``fcclip.batch_size`` where set (the
        dry run: 64-px crops, one image)."""
        if self.toy:
            return fc.TrainSettings.scaled(self.iterations, **TOY_SETTINGS)
        if self.profile.name == "paper":
            return fc.TrainSettings()
        extra = {k: int(self.profile.get(f"fcclip.{k}")) for k in ("crop", "batch_size") if self.profile.get(f"fcclip.{k}")}
        return fc.TrainSettings.scaled(self.iterations, **extra)

    @property
    def checkpoint_policy(self) -> str:
        """The profile's policy for retrained real models (``fcclip.checkpoint``, default ``last``)."""
        policy = self.profile.get("fcclip.checkpoint", "last")
        if policy not in CHECKPOINT_POLICIES:
            raise ValueError(f"fcclip.checkpoint must be one of {CHECKPOINT_POLICIES}, got {policy!r}")
        return policy

    def build(self, e: Experiment) -> fc.FCCLIP:
        clip = self.clip()  # built (drawing from the global RNG) before the seed: the same initial weights
        torch.manual_seed(e.seed)  # whether or not this process has built the CLIP already
        config = dict(fc.TOY) if self.toy else {}
        config.update(clip=self.clip_name, train_classes=tuple(self.train_names(e.train)),
                      finetune_backbone=e.backbone == "finetuned", templates=self.templates)
        model = fc.FCCLIP(fc.FCCLIPConfig(**config), clip=clip, text=self.shared_text())
        return model.to(self.device) if self.device is not None else model

    def shared_text(self) -> fc.TextClassifier | None:
        """Real profiles: one text classifier for every model of this runner (the real text tower costs
        ~65 ms a sentence on a CPU; on a GPU, no matter). Toy: none - each model computes its texts where
        it trains, so its weights do not depend on the process (CPU results differ in the last bits with
        the number of threads)."""
        if self.toy:
            return None
        if self.clip_name not in self._texts:
            self._texts[self.clip_name] = fc.TextClassifier(self.clip(), self.templates, store=self.text_store)
        return self._texts[self.clip_name]

    @property
    def text_store(self) -> Path | None:
        """Real profiles keep text classifiers on disk (``build/cache/fcclip-text``): every notebook and
        every process of a profile computes a vocabulary's texts once."""
        return None if self.toy else results.build_dir() / "cache" / "fcclip-text"

    def run_dir(self, e: Experiment) -> Path:
        from ..cache import weights_fingerprint

        extra = {"profile": self.profile.name, "settings": asdict(self.settings()),
                 "clip": weights_fingerprint(self.clip()), "train_images": TOY_TRAIN_IMAGES, "keep_every": self.keep_every}
        train = "" if e.train == "coco" else f"{e.train}-"
        key = train + e.backbone + "-" + str(e.seed) + "-" + hashlib.sha1(json.dumps(extra, sort_keys=True).encode()).hexdigest()[:10]
        return results.build_dir() / "runs" / self.profile.name / "fcclip" / key

    def released_weights(self) -> Path:
        """The released checkpoint of ``fcclip.model``: the profile key ``fcclip.weights`` or
        ``DATA_ROOT/checkpoints/<file>`` (``fcclip_cocopan.pth`` for the paper's ConvNeXt-L model)."""
        path = _resolve(self.profile.get("fcclip.weights") or (self.data_root / "checkpoints" / self.zoo["file"]))
        if not path.is_file():
            raise FileNotFoundError(
                f"the released FC-CLIP checkpoint {self.model_name} ({self.zoo['clip']}, COCO panoptic) is not at "
                f"{path}. Download it from {self.zoo['url']} (the official model zoo) and save it there, or set the "
                f"profile key fcclip.weights to its path")
        return path

    @property
    def keep_every(self) -> int | None:
        """Steps between kept weights: toy ``KEEP_EVERY``; real retraining: ``fcclip.keep_every`` (default
        5000, the official evaluation period) when the policy needs them."""
        if self.toy:
            return KEEP_EVERY
        if self.checkpoint_policy == "last":
            return None
        return min(int(self.profile.get("fcclip.keep_every", 5000)), self.settings().iterations)

    def model(self, e: Experiment = Experiment()) -> fc.FCCLIP:
        """The model of ``e``: toy - trained now or loaded from its finished run; real - retrained when the
        profile says so (``fcclip.retrain``), else the released weights (``quick``/``paper``) or random
        weights (``dryrun``). ``e.checkpoint`` picks the weights of the run (``select``)."""
        if e in self.models:
            return self.models[e]
        picked = e
        if not self.toy and self.retrain_on(e.train) and e.checkpoint == "last":
            picked = replace(e, checkpoint=self.checkpoint_policy)  # real retraining: the profile's policy
        if picked.checkpoint != "last":  # the run's weights at the step the policy picks
            model = self._snapshot_model(picked, self.select(picked))
        else:
            model = self.build(e)
            if self.toy or self.retrain_on(e.train):
                self._train(model, e)
            elif e.train != "coco":
                raise ValueError(f"no released FC-CLIP is trained on {e.train}: retrain it (profile key "
                                 f"fcclip.retrain: [{e.train}])")
            elif self.profile.weights != "random":
                fc.load_weights(model, self.released_weights())
        self.models[e] = model.eval()
        return self.models[e]

    def training_data(self, train: str):
        """The training set: toy scenes (unseen classes void), COCO panoptic train2017 or ADE20K panoptic training."""
        if self.toy:
            from ..data.toy_world import ToyWorld

            return _VoidUnseen(ToyWorld("train", TOY_TRAIN_IMAGES, seed=0), self.split().unseen)
        from ..data.prepare import load_or_prepare

        def load():
            if train == "coco":
                return panoptic.coco_panoptic(self.data_root, "train2017")
            return panoptic.ade20k_panoptic(self.data_root, "training")

        return load_or_prepare(load, self.data_root, self.prepare_data)

    def _train(self, model: fc.FCCLIP, e: Experiment) -> None:
        run_dir = self.run_dir(e)
        data = self.training_data(e.train)
        classes = self.split().seen if self.toy else list(range(len(data.class_names)))
        thing = self.thing() if self.toy else data.thing
        t0 = time.perf_counter()
        threads = torch.get_num_threads()
        if self.toy:
            torch.set_num_threads(1)  # as in the worker pool: the same weights whichever process trains it
        try:
            result = fc.train(model, data, classes, thing, self.settings(), run_dir=run_dir, seed=e.seed,
                              progress=self.progress, checkpoint_every=250 if self.toy else 1000,
                              keep_every=self.keep_every, amp=True)
        finally:
            torch.set_num_threads(threads)
        if result.steps_run:
            results.write_json_atomic(run_dir / "training.json", {"train_s": time.perf_counter() - t0,
                                                                  "steps": result.steps_run, "experiment": asdict(e),
                                                                  "final_loss": result.final_loss})

    def is_trained(self, e: Experiment) -> bool:
        from ..train import is_finished

        return is_finished(self.run_dir(e.run), self.settings().iterations)

    def snapshots(self, e: Experiment) -> dict[int, Path]:
        from ..train import snapshots

        return snapshots(self.run_dir(e.run))

    def selection_set(self, e: Experiment) -> str:
        """Where ``best-ade-pq`` looks: ADE20K panoptic val (toy: the shifted world, ADE20K's analogue)."""
        return "toy-shifted" if self.toy else "ade20k-panoptic"

    def snapshot_scores(self, e: Experiment) -> dict[int, float]:
        """Zero-shot PQ (fraction) of every kept weights of ``e``'s run on ``selection_set`` - the numbers
        the maintainers' policy picks from; stored in the run directory."""
        run_dir = self.run_dir(e.run)
        name = self.selection_set(e)
        path = run_dir / f"selection-{name}-{self.test_images if self.toy else self.eval_images}.json"
        if path.is_file():
            return {int(k): v for k, v in json.loads(path.read_text()).items()}
        if not self.is_trained(e):  # train the run (not through model(): that asks this policy again)
            self._train(self.build(e.run), e.run)
        snaps = self.snapshots(e)
        if not snaps:
            raise FileNotFoundError(f"{run_dir} keeps no weights to select from; train it with keep_every set")
        scores = {}
        for step, snap in snaps.items():
            if step == max(snaps) and self.toy:  # the final weights: the run's own stored forward pass
                out = self.outputs(e.run, name)
            else:
                out = self._forward(self._snapshot_model(e, step), name, self._step_path(e, name, step))
            scores[step] = self.score(out, name, train=e.train)["pq"]
        results.write_json_atomic(path, {str(k): v for k, v in scores.items()})
        return scores

    def _snapshot_model(self, e: Experiment, step: int) -> fc.FCCLIP:
        """``e``'s run with the weights kept at ``step``: one model per run, its weights swapped (the text
        classifier computed once)."""
        if e.run not in self._scratch:
            self._scratch[e.run] = self.build(e.run).eval()
        model = self._scratch[e.run]
        state = torch.load(self.snapshots(e)[step], map_location="cpu", weights_only=False)["module"]
        fc._Trainable(model).load_state_dict(state)
        return model

    def _step_path(self, e: Experiment, name: str, step: int) -> Path | None:
        return self.run_dir(e.run) / f"outputs-{name}-step{step}-{self.test_images}.pt" if self.toy else None

    def select(self, e: Experiment) -> int:
        """The step whose weights ``e.checkpoint`` keeps: the last, or the best by ``snapshot_scores``."""
        if e.checkpoint == "last":
            return max(self.snapshots(e) or {self.settings().iterations: None})
        scores = self.snapshot_scores(e)
        return max(scores, key=lambda k: (scores[k], k))

    def train_all(self, experiments) -> None:
        """Train the toy experiments not trained yet, in ``workers`` processes side by side."""
        experiments = [e.run for e in experiments]
        pending = [e for e in dict.fromkeys(experiments) if self.toy and not self.is_trained(e)]
        if self.workers < 2 or len(pending) < 2:
            for e in pending:
                self.model(e)
            return
        if self._pool is None:
            from functools import partial

            from .pool import WorkerPool

            self._pool = WorkerPool(partial(Runner, self.profile, data_root=self.data_root, device=self.device,
                                            workers=1), self.workers)
        self._pool.run("model", [(e,) for e in pending], description=f"{len(pending)} FC-CLIP trainings")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    # -- data --------------------------------------------------------------------------------------
    def dataset(self, name: str = "toy"):
        """Test set ``name``: ``toy`` / ``toy-shifted`` (toy world test scenes at ``test_size``), a
        panoptic set of ``PANOPTIC`` or a semantic benchmark of ``SEMANTIC`` (prepared under the data root)."""
        if name not in self._data:
            if name in ("toy", "toy-shifted"):
                from ..data.toy_world import ToyWorld

                self._data[name] = ToyWorld("test", self.test_images, seed=0, image_size=self.test_size,
                                            shifted=name == "toy-shifted")
            elif name in SEMANTIC.values() or name in PANOPTIC:
                from ..data.prepare import load_or_prepare

                load = PANOPTIC.get(name) or (lambda root: semseg.test_set(name, root))
                self._data[name] = load_or_prepare(lambda: load(self.data_root), self.data_root, self.prepare_data)
            else:
                raise ValueError(f"unknown FC-CLIP test set {name!r}; valid: toy, toy-shifted, "
                                 f"{', '.join([*PANOPTIC, *SEMANTIC.values()])}")
        return self._data[name]

    def indices(self, dataset) -> list[int]:
        n = len(dataset) if self.eval_images is None else min(self.eval_images, len(dataset))
        return list(range(n)) if not self.toy else list(range(len(dataset)))

    def image(self, sample, name: str = "") -> torch.Tensor:
        """A test image at the protocol's size: toy scenes as drawn (at ``test_size``), real data resized."""
        return sample["image"] if self.toy else self.resize(sample["image"], name)

    def resize(self, image: torch.Tensor, name: str = "") -> torch.Tensor:
        """uint8 ``[3, H, W]`` resized as the official test mapper does (detectron2's ResizeShortestEdge,
        bilinear): shortest edge 800, longest at most 1333 (Cityscapes and Mapillary Vistas: 1024 and
        2560), both scaled by ``test_edge`` / 800; toy: shortest edge ``test_size``."""
        from .simbaseline import resize_shortest_edge

        if self.toy:
            edge, cap = self.test_size, round(1333 * self.test_size / 800)
        else:
            short, long = TEST_SIZES.get(name, (800, 1333))
            edge, cap = round(short * self.test_edge / 800), round(long * self.test_edge / 800)
        resized = resize_shortest_edge(image[None], edge, cap)[0]
        return resized.float().round().clamp(0, 255).byte()

    # -- the forward pass, once per (model, test set) --------------------------------------------------
    def outputs(self, e: Experiment, name: str, sources=("frozen",)) -> Outputs:
        """``Outputs`` of ``e``'s model on test set ``name`` (kept in memory and, toy, on disk)."""
        key = (e, name, tuple(sources))
        if key in self._outputs:
            return self._outputs[key]
        if e.checkpoint == "last":
            path = self.run_dir(e) / f"outputs-{name}-{'-'.join(sources)}-{self.test_images}.pt" if self.toy else None
        else:  # the forward pass of the picked weights, shared with the selection's
            step = self.select(e)
            if self.toy and step == max(self.snapshots(e)):
                self._outputs[key] = self.outputs(e.run, name, sources)
                return self._outputs[key]
            path = self._step_path(e, name, step) if tuple(sources) == ("frozen",) else None
        if path is not None and path.is_file():
            self._outputs[key] = Outputs(**torch.load(path, weights_only=False))
            return self._outputs[key]
        self._outputs[key] = self._forward(self.model(e), name, path, sources)
        return self._outputs[key]

    def _forward(self, model: fc.FCCLIP, name: str, path=None, sources=("frozen",)) -> Outputs:
        """``model``'s forward pass over test set ``name`` (stored at ``path`` when given)."""
        if path and Path(path).is_file():
            return Outputs(**torch.load(path, weights_only=False))
        data = self.dataset(name)
        names = self.class_names(name)
        out = Outputs([], {s: [] for s in sources}, [], [])
        from tqdm.auto import tqdm

        for i in tqdm(self.indices(data), desc=f"FC-CLIP on {name}", disable=not self.progress, leave=False):
            sample = data[i]
            image = self.image(sample, name)
            with torch.no_grad():
                o = model(image[None].to(model.logit_scale.device), names)
                masks = model.upsample_masks(o)  # logits at the resized input
                small = F.interpolate(masks, scale_factor=0.25, mode="bilinear", align_corners=False)
                out.in_logits.append(o.in_logits[0].float().cpu())
                for s in sources:
                    dense = o.clip_dense if s == model.config.out_vocab_source else model.dense(image[None], s)
                    out.out_logits[s].append(model.out_vocabulary_logits(dense, o.mask_logits, names, s)[0].float().cpu())
                out.masks.append(small[0].half().cpu())
                out.sizes.append(tuple(sample["mask"].shape[-2:]))
                if model.valid_mask_ensemble:  # ResNet CLIPs: empty masks skip the out-of-vocabulary classifier
                    out.valid.append(model.valid_masks(o)[0].cpu())
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            torch.save(asdict(out), path)
        return out

    def clip_classifier(self, e: Experiment, name: str, clip_name: str, size: int, limit: int | None = None) -> Outputs:
        """Table 9: the proposals of ``e``'s model on ``name`` classified by the CLIP ``clip_name`` alone
        (mask pooling of its dense projected features at input ``size`` x ``size``, cosine x its own
        temperature; ViT position embeddings resized); ``out_logits["clip"]``. No ensemble: score it
        with ``kind="out"``, so the classes come from this CLIP only. ``limit``: the first test images only."""
        from .. import encoders

        key = (e, name, clip_name, size, limit)
        if key in self._outputs:
            return self._outputs[key]
        base = self.outputs(e, name)
        if clip_name == self.clip_name:  # the model's own frozen CLIP (and its text cache)
            self._encoders[clip_name] = self.clip()
        elif clip_name not in self._encoders:
            if not self.profile.pretrained:
                torch.manual_seed(1)
            self._encoders[clip_name] = encoders.build(clip_name, pretrained=self.profile.pretrained, device=self.device)
        clip = self._encoders[clip_name]
        data = self.dataset(name)
        names = self.class_names(name)
        if clip_name not in self._texts:
            self._texts[clip_name] = fc.TextClassifier(clip, self.templates, store=self.text_store)
        text, counts = self._texts[clip_name](names)
        scale = clip.model.logit_scale
        logits = []
        indices = self.indices(data)[:limit]
        batch = 25 if self.toy else 1  # toy test scenes share one size
        for start in range(0, len(indices), batch):
            chunk = indices[start:start + batch]
            images = torch.stack([self.image(data[i], name) for i in chunk])
            masks = torch.stack([base.masks[j].float() for j in range(start, start + len(chunk))])
            with torch.no_grad():
                if clip.is_vit:  # projected patch tokens (pooling commutes with the linear projection)
                    pooled = fc.mask_pool(clip.dense(images, projected=True, size=size).last, masks)
                else:  # FC-CLIP's path: pool norm_pre(res5), then the CLIP's head
                    visual = clip.model.visual
                    dense = visual.trunk.norm_pre(clip.dense(images, projected=False, size=size).last)
                    pooled = fc.clip_mask_embeddings(visual, dense, masks)
                logits.extend(fc.max_over_synonyms(fc.classification_logits(pooled, text, scale), counts).cpu())
        n = len(logits)
        out = Outputs(base.in_logits[:n], {"clip": logits}, base.masks[:n], base.sizes[:n])
        self._outputs[key] = out
        return out

    # -- scoring -----------------------------------------------------------------------------------------
    def score(self, out: Outputs, name: str, kind: str = "geometric", alpha: float = 0.4, beta: float = 0.8,
              source: str = "frozen", panoptic: bool = True, instances: bool = False, grounding: bool = False,
              train: str = "coco") -> dict:
        """PQ / SQ / RQ (toy: things and stuff from the instance maps; real panoptic sets: their segments), mIoU (ground-truth-present classes;
        ``miou_d2_06``: detectron2 0.6's denominator) and optionally mask AP, over all, seen and unseen
        classes (fractions; seen = an exact synonym match with the training vocabulary). ``grounding``
        (Table 7): each image's vocabulary is only its ground-truth classes. ``train``: the model's training
        set, which decides the seen classes. Nothing runs the network again."""
        data = self.dataset(name)
        names = self.class_names(name)
        seen = fc.seen_mask(names, self.train_names(train))
        seen_ids = [i for i in range(len(names)) if seen[i]]
        unseen_ids = [i for i in range(len(names)) if not seen[i]]
        has_segments = self.toy or name in PANOPTIC
        thing = self.thing(name)
        cm = ConfusionMatrix(len(names))
        pq = PanopticQuality(len(names), thing) if panoptic and has_segments else None
        ap = None
        if instances and has_segments:
            from ..instance_ap import MaskAP

            ap = MaskAP([i for i in range(len(names)) if thing[i]])
        for j, i in enumerate(self.indices(data)[:len(out.in_logits)]):
            sample = data[i]
            in_logits, out_logits = out.in_logits[j], out.out_logits[source][j]
            if grounding:  # only the classes in the ground truth can be named
                present = torch.zeros(len(names), dtype=torch.bool)
                labels = sample["mask"].unique()
                present[labels[labels != 255]] = True
                if not present.any():
                    continue
                in_logits = in_logits.masked_fill(torch.cat([~present, torch.tensor([False])]), float("-inf"))
                out_logits = out_logits.masked_fill(~present, float("-inf"))
            log_probs = fc.ensemble(in_logits, out_logits, seen, alpha, beta, kind,
                                    valid=out.valid[j] if out.valid else None)
            masks = F.interpolate(out.masks[j][None].float(), size=out.sizes[j], mode="bilinear",
                                  align_corners=False)[0]
            sem = fc.semantic_inference(log_probs[None], masks[None])[0].max(0).indices
            cm.update(sem, sample["mask"])
            if pq is not None or ap is not None:  # real panoptic data: its own segments, crowds included
                gs, gi = ((sample["segments"], sample["segments_info"]) if "segments" in sample
                          else targets_from_instances(sample["mask"], sample["instances"], thing))
            if pq is not None:
                c = fc.FCCLIPConfig
                p = fc.panoptic_inference(log_probs, masks, thing, c.object_mask_threshold, c.overlap_threshold)
                pq.update(p["segments"], p["info"], gs, gi)
            if ap is not None:
                inst = fc.instance_inference(log_probs, masks, thing, fc.FCCLIPConfig.instance_topk)
                things = [s for s in gi if thing[s["category_id"]]]  # crowds: ignore regions, as in COCO's instance files
                gt_masks = torch.stack([gs == s["id"] for s in things]) if things else torch.zeros(0, *gs.shape, dtype=torch.bool)
                ap.update(gt_masks, [s["category_id"] for s in things], inst["masks"], inst["labels"], inst["scores"],
                          gt_crowd=[s.get("iscrowd", 0) for s in things])
        matrix = cm.matrix
        row = {"miou": miou(matrix), "miou_d2_06": miou(matrix, convention="detectron2-0.6"), "miou_seen": miou(matrix, seen_ids) if seen_ids else math.nan,
               "miou_unseen": miou(matrix, unseen_ids) if unseen_ids else math.nan}
        if pq is not None:
            for prefix, ids in (("", None), ("seen_", seen_ids), ("unseen_", unseen_ids)):
                s = pq.summary(ids)
                row.update({f"{prefix}pq": s["pq"], f"{prefix}sq": s["sq"], f"{prefix}rq": s["rq"]})
        if ap is not None:
            row.update({"ap": ap.summary()["ap"]})
        return row


class _VoidUnseen(torch.utils.data.Dataset):
    """A toy world whose unseen classes are void in training (pixels 255, no instance), like the
    classes outside COCO's 133 in COCO panoptic."""

    def __init__(self, world, unseen):
        self.world, self.unseen = world, sorted(unseen)
        self.class_names = world.class_names

    def __len__(self) -> int:
        return len(self.world)

    def __getitem__(self, index: int) -> dict:
        s = self.world[index]
        mask = semseg.training_mask(s["mask"], self.unseen)  # the book's unseen-pixel rule
        return {**s, "mask": mask, "instances": s["instances"].masked_fill(mask == 255, 0)}


def start_notebook(notebook: str, profile: str, seeds=None, data_root: str | Path = "data", progress: bool = False,
                   prepare_data: bool = False, model: str | None = None) -> tuple[Runner, results.RunRecord]:
    """The setup cell of an FC-CLIP notebook: the ``Runner`` and the notebook's ``RunRecord``. ``model``: the
    model of the official zoo that real profiles evaluate (default: the profile's ``fcclip.model``, else the
    paper's ConvNeXt-L)."""
    from .. import env, profiles

    prof = profiles.load(profile)
    runner = Runner(prof, data_root=data_root, device=env.device(), progress=progress, prepare_data=prepare_data,
                    model=model)
    return runner, results.RunRecord(notebook, profile, tuple(prof.seeds if seeds is None else seeds))
