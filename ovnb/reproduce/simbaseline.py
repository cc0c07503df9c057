"""SimBaseline's experiments as data: one ``Experiment`` per trained proposal generator, run in any
profile, evaluated with any of Table 7's classifiers (and Table 6's oracle).

``Runner.model(experiment)`` trains the generator (or loads its finished checkpoint from
``build/runs/<profile>/simbaseline/<key>/``, so notebooks that need the same model share one
training); ``Runner.evaluate(experiment, classifier)`` runs the generalized zero-shot protocol (one
confusion matrix over all of the split's classes) and keeps the scores beside the checkpoint, so a
warm rebuild neither trains nor evaluates again.

Data per profile: ``toy`` / ``smoke`` the toy world's analogues of the benchmark splits
(``toy-zero-shot`` for COCO-Stuff 156/15, ``toy-voc`` for VOC 15/5) at 64 x 64; ``quick`` / ``paper``
the prepared datasets under ``DATA_ROOT``; ``dryrun`` the same loaders on fixture datasets with the
real architectures' random weights.

**Seeds.** ``Experiment.seed`` is the training seed (initialisation and batch order); the test images
never change with it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from .. import results
from ..data import semseg
from ..data.augment import TrainAugment
from ..evaluate import generalized_zero_shot
from ..methods import simbaseline as sb
from ..methods.classical_proposals import MAX_PROPOSALS as MAX_CLASSICAL_PROPOSALS
from .fusioner import _resolve

TOY_TRAIN_IMAGES = 3000
TOY_TEST_IMAGES = 200
TOY_SPLITS = {"coco-stuff-171": "toy-zero-shot", "voc-20": "toy-voc"}
CLASSIFIERS = sb.CLASSIFIERS + ("oracle",)
# Table 1's cross-dataset test sets (the model trained on COCO-Stuff's seen classes, every class of
# the target named); the toy profile's analogue is the shifted toy world (sizes, palette, textures)
CROSS_DATASETS = ("cityscapes-19", "pascal-context-59", "ade20k-150", "ade20k-847")  # Table 1, in its order
# shortest edge at test: zsseg's cross-dataset configs (512); Cityscapes has none there, MaskFormer's 1024
CROSS_TEST_SIZE = {"ade20k-150": 512, "cityscapes-19": 1024, "pascal-context-59": 512, "ade20k-847": 512}
TOY_CROSS_DATASETS = ("toy-shifted",)
PROMPTS = ("manual", "learned")


@dataclass(frozen=True)
class Experiment:
    """One trained model: ``head`` ``maskformer`` (SimBaseline's proposal generator) or ``fcn`` (Sec. 5's
    per-pixel baseline); ``vocabulary`` ``seen`` (zero-shot training) or ``all`` ("Sup" of Tables
    9-10); ``self_training``: retrained on the pseudo-labels of the same configuration without it
    ("+ST" of Tables 2-3, ``Runner.pseudo_labels``); ``prompt``: how both branches name the classes,
    with the configuration's hand-made templates (``manual``) or with the learned prompts of Sec. 4.2
    (``learned``: ``Runner.prompts(e)``, trained before the generator and frozen; what the paper's main
    tables and zsseg's zero-shot configs use)."""

    split: str = "coco-stuff-171"  # the benchmark (toy profiles use its toy analogue, TOY_SPLITS)
    vocabulary: str = "seen"
    head: str = "maskformer"
    self_training: bool = False
    seed: int = 0
    clip: str | None = None  # Table 4: the vision-language model (class head + region classifier); None: the default
    prompt: str = "manual"

    def __post_init__(self):
        if self.split not in TOY_SPLITS:
            raise ValueError(f"split must be one of {list(TOY_SPLITS)}, got {self.split!r}")
        if self.vocabulary not in ("seen", "all"):
            raise ValueError(f"vocabulary must be 'seen' or 'all', got {self.vocabulary!r}")
        if self.head not in sb.HEADS:
            raise ValueError(f"head must be one of {sb.HEADS}, got {self.head!r}")
        if self.prompt not in PROMPTS:
            raise ValueError(f"prompt must be one of {PROMPTS}, got {self.prompt!r}")
        if self.self_training and self.vocabulary != "seen":
            raise ValueError("self-training starts from a model trained on the seen classes (vocabulary='seen')")

    @property
    def teacher(self) -> "Experiment":
        """The model whose pseudo-labels a self-training experiment learns from."""
        return replace(self, self_training=False)

    def key(self, extra: dict) -> str:
        defaults = {"clip": None, "prompt": "manual"}  # fields added later: older keys stay valid
        fields = {k: v for k, v in asdict(self).items() if not (k in defaults and v == defaults[k])}
        text = json.dumps({**fields, **extra}, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    def with_seeds(self, seeds) -> list["Experiment"]:
        return [replace(self, seed=int(s)) for s in seeds]


@dataclass(frozen=True)
class Evaluation:
    """One ``Runner.evaluate`` call as data (hashable: ``Runner.train_all`` schedules it on its worker
    processes once the model it needs is trained). The fields are ``evaluate``'s arguments."""

    experiment: Experiment
    classifier: str = "ensemble"
    region_clip: str | None = None
    target: str | None = None
    proposals: str | None = None
    prompts: str | None = None

    def arguments(self) -> dict:
        return {f: getattr(self, f) for f in ("classifier", "region_clip", "target", "proposals", "prompts")}


class Runner:
    """Trains and evaluates SimBaseline generators for one profile. From the profile:
    ``simbaseline.train_images`` (toy world: images drawn for training), ``simbaseline.iterations`` (else ``train_iterations``; neither: the official schedule of the split; the number is COCO's, VOC runs the official fraction of it, ``sb.scaled_iterations``)
    and ``simbaseline.batch_size`` (else the profile's ``batch_size`` with a profile schedule), ``eval_images`` (test images evaluated; ``paper`` sets none: the whole set) and
    ``seeds``."""

    def __init__(self, profile, data_root: str | Path = "data", device=None, progress: bool = False, seeds=None,
                 prepare_data: bool = False, convention: str = "detectron2-0.6", pseudo_threshold: float = 0.0,
                 workers: int | None = None):
        from ..data.fixtures import data_root as fixture_root

        self.profile = profile
        self.toy = profile.data == "toy"
        self.data_root = _resolve(fixture_root(profile, data_root))
        self.device, self.progress, self.prepare_data = device, progress, prepare_data
        self.convention = convention
        self.pseudo_threshold = pseudo_threshold
        self.seeds = tuple(int(s) for s in (profile.seeds if seeds is None else seeds))
        if not self.seeds:
            raise ValueError("SEEDS is empty: give at least one training seed, e.g. [0]")
        # None: the official schedule of the split (COCO 60k x 32, VOC 20k x 16)
        self.iterations = profile.get("simbaseline.iterations", profile.train_iterations)
        # how the main experiments name classes (Experiment.prompt): the paper's learned prompts, unless
        # the profile says otherwise (toy: the manual prompt, for the CPU budget)
        self.prompt = profile.get("simbaseline.prompt", "learned")
        if self.prompt not in PROMPTS:
            raise ValueError(f"simbaseline.prompt must be one of {PROMPTS}, got {self.prompt!r}")
        self.batch_size = profile.get("simbaseline.batch_size")
        self.eval_images = profile.eval_images
        # test images per generator forward: the toy world's scenes share one size; real images go one at a time
        self.eval_batch = 16 if self.toy else 1
        self.workers = min(profile.workers if workers is None else int(workers), os.cpu_count() or 1)
        self.encoders: dict = {}
        self.datasets: dict = {}
        self.models: dict = {}
        self._prompts: dict = {}
        self._pool = None

    # -- data ------------------------------------------------------------------------------------
    def split(self, e: Experiment) -> semseg.Split:
        return semseg.split(TOY_SPLITS[e.split] if self.toy else e.split)

    def _load(self, make):
        """``make()``, preparing a missing real dataset first when ``prepare_data`` is set."""
        from ..data.prepare import load_or_prepare

        return load_or_prepare(make, self.data_root, self.prepare_data)

    def train_set(self, e: Experiment):
        """The training images; the unseen-pixel rule applies unless the vocabulary is ``all``."""
        key = ("train", e.split, e.vocabulary)
        if key not in self.datasets:
            training = e.vocabulary == "seen"
            if self.toy:
                images = int(self.profile.get("simbaseline.train_images", TOY_TRAIN_IMAGES))
                ds = semseg.toy(TOY_SPLITS[e.split], "train", images, training=training)
            elif e.split == "coco-stuff-171":
                ds = self._load(lambda: semseg.coco_stuff(self.data_root, "train2017", training=training))
            else:
                ds = self._load(lambda: semseg.voc(self.data_root, "train", training=training))
            self.datasets[key] = ds
        return self.datasets[key]

    def test_set(self, e: Experiment):
        key = ("test", e.split)
        if key not in self.datasets:
            if self.toy:
                ds = semseg.toy(TOY_SPLITS[e.split], "test", TOY_TEST_IMAGES)
            elif e.split == "coco-stuff-171":
                ds = self._load(lambda: semseg.coco_stuff(self.data_root, "val2017"))
            else:
                ds = self._load(lambda: semseg.voc(self.data_root, "val"))
            self.datasets[key] = ds
        return self.datasets[key]

    def target_set(self, e: Experiment, target: str | None):
        """The test images of ``e`` (``target`` None) or of a cross-dataset target (Table 1:
        ``CROSS_DATASETS``; the toy profile's ``toy-shifted``)."""
        if target is None:
            return self.test_set(e)
        allowed = TOY_CROSS_DATASETS if self.toy else CROSS_DATASETS
        if target not in allowed:
            raise ValueError(f"cross-dataset target {target!r} is not one of {allowed} (profile {self.profile.name})")
        key = ("cross", e.split, target)
        if key not in self.datasets:
            if target == "toy-shifted":
                self.datasets[key] = semseg.toy(TOY_SPLITS[e.split], "test", TOY_TEST_IMAGES, shifted=True)
            else:
                self.datasets[key] = self._load(lambda: semseg.test_set(target, self.data_root))
        return self.datasets[key]

    def test_indices(self, e: Experiment, target: str | None = None) -> list[int]:
        """The evaluated test images: all, or ``eval_images`` of them spread evenly over the set."""
        n = len(self.target_set(e, target))
        if self.eval_images is None or self.eval_images >= n:
            return list(range(n))
        return sorted({round(i * (n - 1) / max(self.eval_images - 1, 1)) for i in range(self.eval_images)})

    def test_size(self, e: Experiment, target: str | None = None) -> int | None:
        """The test resize (shortest edge) of ``e``'s test set or of ``target``: ``test_edge``."""
        return self.test_edge(target if target is not None else e.split)

    def test_edge(self, dataset: str) -> int | None:
        """The official test resize (shortest edge) of images of ``dataset``: COCO-Stuff 640, VOC 512, a
        cross-dataset target its own (``CROSS_TEST_SIZE``), any other dataset 512 (zsseg's cross-dataset
        configs); the toy world's 64 px as drawn (None). A profile's ``simbaseline.test_edge_cap``
        (``dryrun``) caps it."""
        if self.toy:
            return None
        edge = CROSS_TEST_SIZE.get(dataset, 640 if dataset == "coco-stuff-171" else 512)
        cap = self.profile.get("simbaseline.test_edge_cap")  # the dry run: the same path at a CPU-sized edge
        return min(edge, int(cap)) if cap else edge

    # -- models ----------------------------------------------------------------------------------
    def config(self, e: Experiment) -> sb.SimBaselineConfig:
        dataset = "coco-stuff-171" if e.split == "coco-stuff-171" else "voc-20"
        clip = {"clip": e.clip} if e.clip else {}
        config = (sb.SimBaselineConfig.toy if self.toy else sb.SimBaselineConfig.for_dataset)(dataset, head=e.head, **clip)
        queries = self.profile.get("simbaseline.num_queries")  # the dry run: fewer proposals, each the same path
        return replace(config, num_queries=int(queries)) if queries else config

    def augment(self, e: Experiment) -> TrainAugment:
        if self.toy:  # the toy world's class names are colours: no hue or saturation jitter
            return TrainAugment.scaled(sb.TOY_IMAGE_SIZE, photometric="brightness-contrast")
        return TrainAugment() if e.split == "coco-stuff-171" else TrainAugment(crop=512, max_size=2048)

    def settings(self, e: Experiment) -> sb.TrainSettings:
        if self.toy:
            base = sb.TrainSettings.toy(e.split)
        else:
            base = sb.TrainSettings() if e.split == "coco-stuff-171" else sb.TrainSettings(iterations=20_000, batch_size=16)
        iterations = sb.scaled_iterations(int(self.iterations), e.split) if self.iterations else base.iterations
        return replace(base, iterations=iterations,
                       batch_size=int(self.batch_size or (self.profile.batch_size if self.iterations else base.batch_size)))

    def build(self, e: Experiment) -> sb.SimBaseline:
        split = self.split(e)
        seen = split.class_names if (e.vocabulary == "all" or e.self_training) else split.names(split.seen)
        config = self.config(e)
        pool = {name: self.encoder(name) for name in (config.clip, config.backbone_init) if name}
        return sb.build(pretrained=self.profile.pretrained, config=config, seen_names=seen, device=self.device,
                        encoders=pool, seed=e.seed)

    def encoder(self, name: str):
        """A frozen registry encoder, built once per runner (shared by every model it builds)."""
        if name not in self.encoders:
            from .. import encoders as registry

            self.encoders[name] = registry.build(name, pretrained=self.profile.pretrained, device=self.device)
        return self.encoders[name]

    def run_dir(self, e: Experiment) -> Path:
        """``build/runs/<profile>/simbaseline/<key>``: the key covers the experiment, the schedule, the
        configuration and fingerprints of the frozen CLIP and of the CLIP that initialises the backbone
        (regenerated toy weights never reuse old runs); no model is built to compute it."""
        from ..cache import weights_fingerprint

        config = self.config(e)
        frozen = [config.clip] + ([config.backbone_init] if config.backbone_init else [])
        extra = {"profile": self.profile.name, "settings": asdict(self.settings(e)), "config": config.to_dict(),
                 "weights": {name: weights_fingerprint(self.encoder(name)) for name in frozen}}
        if e.prompt == "learned":  # the prompt vectors the class head was trained against
            extra["prompts"] = self.prompt_dir(e).name
        return results.build_dir() / "runs" / self.profile.name / "simbaseline" / e.key(extra)

    def model(self, e: Experiment) -> sb.SimBaseline:
        """The trained generator of ``e`` (trained now, or loaded from its finished checkpoint)."""
        if e in self.models:
            return self.models[e]
        model = self.build(e)
        model.use_prompts(self.own_prompts(e))
        run_dir = self.run_dir(e)
        split = self.split(e)
        everything = e.vocabulary == "all" or e.self_training
        ids = range(len(split.class_names)) if everything else split.seen
        train_set = self.pseudo_labelled(e) if e.self_training else self.train_set(e)
        t0 = time.perf_counter()
        result = sb.train(model, train_set, ids, self.settings(e), self.augment(e), run_dir, seed=e.seed,
                          progress=self.progress)
        if result.steps_run:
            for stale in run_dir.glob("evaluation-*.json"):
                stale.unlink()
            results.write_json_atomic(run_dir / "training.json", {"train_s": time.perf_counter() - t0,
                                                                  "steps": result.steps_run,
                                                                  "experiment": asdict(e)})
        model.eval()
        self.models[e] = model
        return model

    def own_prompts(self, e: Experiment) -> "sb.LearnedPrompts | None":
        """The prompts ``e``'s model names classes with: ``prompts(e)`` for ``prompt="learned"``, else
        None (the configuration's templates)."""
        return self.prompts(e) if e.prompt == "learned" else None

    def is_trained(self, e: Experiment) -> bool:
        from ..train import is_finished

        return is_finished(self.run_dir(e), self.settings(e).iterations)

    def train_all(self, experiments=(), prompts: bool = False, evaluations=()) -> None:
        """Train the experiments that are not trained yet, and run the ``evaluations`` (``Evaluation``)
        whose scores are not kept yet (their models are trained first where needed), side by side in
        ``self.workers`` processes when that is more than one (the toy profile). A job starts once what
        it needs is done: the learned prompts of a ``prompt="learned"`` experiment, the teacher whose
        pseudo-labels a self-training experiment learns from, the model an evaluation scores
        (``WorkerPool.run``'s ``needs``). ``prompts`` also learns every experiment's prompt vectors.
        Results land on disk; ``model``, ``prompts`` and ``evaluate`` load them.

        Jobs are handed out longest chain first, so that no process idles at the end: prompts, the
        teachers, the self-training students (pseudo-labelling, then training), the other models, then
        the evaluations."""
        evaluations = list(dict.fromkeys(evaluations))
        experiments = list(dict.fromkeys([*experiments, *(r.experiment for r in evaluations)]))
        teachers = list(dict.fromkeys(x.teacher for x in experiments if x.self_training))
        students = [x for x in experiments if x.self_training]
        models = list(dict.fromkeys([*teachers, *students, *experiments]))
        wanted = [x for x in models if x.prompt == "learned"] + (experiments if prompts else []) + \
            [r.experiment for r in evaluations if self._learned_prompts(r)]
        by_dir: dict = {}
        for x in wanted:  # one job per prompt run (they depend on the split, CLIP and seed only)
            by_dir.setdefault(self.prompt_dir(x), ("prompts", x))
        jobs = list(by_dir.values()) + [("model", x) for x in models] + [("evaluate", r) for r in evaluations]
        pending = [job for job in jobs if not self.is_done(*job)]
        if self.workers < 2 or len(pending) < 2:
            for job in pending:  # already in an order where every job's needs come before it
                self.job(*job)
            return
        if self._pool is None:
            from functools import partial

            from .pool import WorkerPool

            factory = partial(Runner, self.profile, data_root=self.data_root, device=self.device, seeds=self.seeds,
                              prepare_data=self.prepare_data, convention=self.convention,
                              pseudo_threshold=self.pseudo_threshold, workers=1)
            self._pool = WorkerPool(factory, self.workers)

        def needs(job):
            kind, x = job
            if kind == "prompts":
                return []
            if kind == "evaluate":
                return [("model", x.experiment)] + \
                    ([by_dir[self.prompt_dir(x.experiment)]] if self._learned_prompts(x) else [])
            return ([by_dir[self.prompt_dir(x)]] if x.prompt == "learned" else []) + \
                ([("model", x.teacher)] if x.self_training else [])

        trainings = sum(kind != "evaluate" for kind, _ in pending)
        self._pool.run("job", pending, description=f"{trainings} SimBaseline trainings, "
                                                   f"{len(pending) - trainings} evaluations", needs=needs)

    def evaluate_all(self, evaluations) -> list[dict]:
        """``evaluate`` for each of ``evaluations`` (``Evaluation``), in order: those not kept yet run
        side by side on the worker processes (``train_all``, which also trains any model still missing)."""
        evaluations = list(evaluations)
        self.train_all(evaluations=evaluations)
        return [self.evaluate(r.experiment, **r.arguments()) for r in evaluations]

    def _learned_prompts(self, r: "Evaluation") -> bool:
        """Whether evaluation ``r`` names classes with the learned prompts of its experiment."""
        return (r.prompts or r.experiment.prompt) == "learned"

    def job(self, kind: str, item) -> None:
        """One unit of ``train_all``: train (or load) an experiment's generator (``model``) or its
        prompts (``prompts``), or run an ``Evaluation`` (``evaluate``)."""
        if kind not in ("model", "prompts", "evaluate"):
            raise ValueError(f"job kind must be 'model', 'prompts' or 'evaluate', got {kind!r}")
        if kind == "evaluate":
            self.evaluate(item.experiment, **item.arguments())
        else:
            self.model(item) if kind == "model" else self.prompts(item)

    def is_done(self, kind: str, item) -> bool:
        from ..train import is_finished

        if kind == "model":
            return self.is_trained(item)
        if kind == "evaluate":
            folder, spec, _ = self._evaluation(item)
            return self._scores_path(folder, self._scores_spec(item.experiment, item.classifier, **spec)).is_file()
        return is_finished(self.prompt_dir(item), self.prompt_settings(item)["iterations"])

    def close(self) -> None:
        """Stop the worker processes (they also stop when the notebook's kernel ends)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    # -- self-training (Tables 2-3, "+ST") -------------------------------------------------------
    def pseudo_labelled(self, e: Experiment) -> "PseudoLabelled":
        """The training images of ``e`` with the pseudo-labels of its teacher (``e.teacher``): the
        teacher segments each image with all class names, only unseen classes may be predicted, pixels
        whose best unseen probability is at most ``pseudo_threshold`` are rejected, and every pixel
        whose (training) ground truth is a seen class keeps it (official ``pseudo_sem_seg_evaluation``,
        ``sb.pseudo_labels``). One round; the first ``simbaseline.pseudo_images`` training images (all
        where the profile sets none). The labels are written once beside the teacher's checkpoint."""
        teacher = self.model(e.teacher)
        base = self.train_set(e)
        count = min(len(base), int(self.profile.get("simbaseline.pseudo_images") or len(base)))
        spec = {"images": count, "threshold": self.pseudo_threshold, "short_edge": self.test_size(e)}
        folder = self.run_dir(e.teacher) / ("pseudo-" + hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12])
        done = folder / "done.json"
        if not done.is_file():
            from tqdm.auto import tqdm

            folder.mkdir(parents=True, exist_ok=True)
            names = list(base.class_names)
            seen = self.split(e).seen_flags
            batch, device = self.eval_batch, next(teacher.generator.parameters()).device
            for start in tqdm(range(0, count, batch), desc=f"pseudo-labels ({batch} a batch)", disable=not self.progress,
                              leave=False):
                samples = [base[i] for i in range(start, min(start + batch, count))]  # toy: one size; else one image
                images = resize_shortest_edge(torch.stack([s["image"] for s in samples]).to(device), self.test_size(e))
                scores = [to_size(x, s["mask"].shape) for x, s in zip(teacher.segment(images, names), samples)]
                for i, (sample, score) in enumerate(zip(samples, scores), start):
                    label = sb.pseudo_labels(score, sample["mask"], seen, self.pseudo_threshold)
                    torch.save(label.to(torch.uint8).clone(), folder / f"{i}.pt")
            results.write_json_atomic(done, spec)
        return PseudoLabelled(base, folder, count)

    def pseudo_label_audit(self, e: Experiment) -> dict:
        """Where ``e``'s pseudo-labels land, in pixels of the labelled training images, against the
        ground truth before the unseen-pixel rule: ``unseen`` (pixels of unseen classes), ``correct``
        (of those, labelled with their own class), ``labelled`` (pixels given an unseen label) and
        ``on_ignored`` (of those, pixels the ground truth leaves unlabeled or ignores, e.g. VOC's
        background)."""
        labelled = self.pseudo_labelled(e)
        base = self.train_set(e)
        unseen = torch.tensor(self.split(e).unseen)
        out = dict(unseen=0, correct=0, labelled=0, on_ignored=0)
        for i in range(len(labelled)):
            truth = base.read(base.keys[i])[1]
            label = labelled[i]["mask"]
            given, is_unseen = torch.isin(label, unseen), torch.isin(truth, unseen)
            out["unseen"] += int(is_unseen.sum())
            out["correct"] += int((is_unseen & (label == truth)).sum())
            out["labelled"] += int(given.sum())
            out["on_ignored"] += int((given & (truth == semseg.IGNORE_INDEX)).sum())
        return out

    # -- learned prompts (Sec. 4.2) -----------------------------------------------------------------
    def prompt_settings(self, e: Experiment) -> dict:
        """The prompt-training schedule: official COCO 16k iterations of 32 crops (32 samples per class),
        VOC 3.2k of 16 (128 per class); ``simbaseline.prompt_iterations`` in the profile shortens both."""
        coco = e.split == "coco-stuff-171"
        official = dict(iterations=16_000 if coco else 3_200, batch_size=32 if coco else 16, per_class=32 if coco else 128)
        short = self.profile.get("simbaseline.prompt_iterations")
        return {**official, "iterations": int(short)} if short else official

    def prompt_dir(self, e: Experiment) -> Path:
        """``build/runs/<profile>/simbaseline/prompts-<key>``: the key covers the split, the CLIP and its
        weights' fingerprint, the seed and the schedule."""
        from ..cache import weights_fingerprint

        config = self.config(e)
        spec = {"split": e.split, "clip": config.clip, "seed": e.seed, "settings": self.prompt_settings(e),
                "weights": weights_fingerprint(self.encoder(config.clip)), "profile": self.profile.name}
        key = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
        return results.build_dir() / "runs" / self.profile.name / "simbaseline" / f"prompts-{key}"

    def prompts(self, e: Experiment) -> sb.LearnedPrompts:
        """16 prompt vectors for ``e``'s CLIP, learned on the seen classes' ground-truth crops of its
        training images (``sb.train_prompts``, seed ``e.seed``), or loaded from their finished run in
        ``prompt_dir(e)``. They depend on the split, the CLIP, the seed and the schedule, not on the
        generator. Kept in memory once loaded."""
        run_dir = self.prompt_dir(e)
        if run_dir in self._prompts:
            return self._prompts[run_dir]
        clip = self.encoder(self.config(e).clip)
        settings = self.prompt_settings(e)
        torch.manual_seed(e.seed)
        prompts = sb.LearnedPrompts(clip).to(clip.device)
        sb.train_prompts(prompts, self.train_set(e), self.split(e).seen, settings["iterations"],
                         batch_size=settings["batch_size"], per_class=settings["per_class"], run_dir=run_dir,
                         seed=e.seed, progress=self.progress)
        self._prompts[run_dir] = prompts.eval()
        return prompts

    # -- evaluation ------------------------------------------------------------------------------
    def evaluate(self, e: Experiment, classifier: str = "ensemble", region_clip: str | None = None,
                 target: str | None = None, proposals: str | None = None, prompts: str | None = None) -> dict:
        """Generalized zero-shot scores (%) of ``e``'s model with ``classifier`` (Table 7's
        ``ensemble`` / ``generator`` / ``clip``, or Table 6's ``oracle``) on the test images; kept
        beside the checkpoint. ``region_clip``: another registry CLIP classifies the crops (Table 8);
        ``target``: a cross-dataset test set (Table 1, ``target_set``); ``proposals``: Table 5's
        classical proposals (``classical_proposals.PROPOSAL_METHODS``) replace the generator's, classified
        by CLIP alone (``classifier`` must be ``clip``); ``prompts`` (``PROMPTS``): CLIP names the crops
        with the manual templates or the learned prompts of ``prompts(e)`` instead of the experiment's own
        (``classifier`` must be ``clip``: the generator's class head was trained against its own)."""
        folder, spec, model = self._evaluation(Evaluation(e, classifier, region_clip, target, proposals, prompts))
        try:
            return self._kept_scores(folder, model, e, classifier, **spec)
        finally:
            if e in self.models:
                self.models[e].region_clip = None
                self.models[e].use_prompts(self.own_prompts(e))

    def _evaluation(self, r: Evaluation) -> tuple:
        """``evaluate``'s arguments checked: the folder its scores are kept in, the spec that names them
        (beside the classifier) and the function that sets the model up for them."""
        from ..methods.classical_proposals import PROPOSAL_METHODS

        e, classifier, region_clip, proposals, prompts = r.experiment, r.classifier, r.region_clip, r.proposals, r.prompts
        if classifier not in CLASSIFIERS:
            raise ValueError(f"classifier must be one of {CLASSIFIERS}, got {classifier!r}")
        if e.head == "fcn" and classifier != "generator":
            raise ValueError(f"an FCN has no proposals to classify: evaluate it with classifier='generator', not {classifier!r}")
        if proposals is not None and (proposals not in PROPOSAL_METHODS or classifier != "clip"):
            raise ValueError(f"proposals must be one of {PROPOSAL_METHODS} with classifier='clip' "
                             f"(got {proposals!r}, {classifier!r})")
        if prompts is not None and (prompts not in PROMPTS or classifier != "clip" or region_clip):
            raise ValueError(f"prompts must be one of {PROMPTS}, with classifier='clip' and the model's own CLIP "
                             f"(got {prompts!r}, {classifier!r}, region_clip={region_clip!r})")
        other = prompts if prompts not in (None, e.prompt) else None  # a text side other than the experiment's own
        spec = {k: v for k, v in (("region_clip", region_clip), ("target", r.target), ("proposals", proposals),
                                  ("prompts", other)) if v}

        def model():
            m = self.model(e)
            m.region_clip = self.encoder(region_clip) if region_clip else None
            m.use_prompts(self.prompts(e) if (other or e.prompt) == "learned" else None)
            return m

        return self.run_dir(e), spec, model

    def class_accuracy(self, e: Experiment, images: int | None = None) -> dict:
        """The generator's own class head on ``e``'s test images, apart from assembly and CLIP: the share of
        ground-truth segments of the classes it was trained on whose Hungarian-matched query names them
        (``sb.matched_class_accuracy``; vocabulary: those classes, no-object left out), with chance and the
        most frequent class as references. ``images``: the first that many test images (default: all
        evaluated). Kept beside the checkpoint."""
        if e.head != "maskformer":
            raise ValueError(f"an FCN has no queries to match: class_accuracy needs head='maskformer', not {e.head!r}")
        indices = self.test_indices(e)[:images] if images else self.test_indices(e)
        spec = {"measure": "matched-class-accuracy", "images": indices}

        def compute():
            model = self.model(e)
            dataset = self.test_set(e)
            classes = [dataset.class_names.index(n) for n in model.seen_names]
            table = torch.full((256,), sb.IGNORE_INDEX, dtype=torch.long)
            table[torch.tensor(classes)] = torch.arange(len(classes))
            matcher = model.criterion(len(classes)).matcher
            named = segments = 0
            counts = torch.zeros(len(classes))
            batch = self.eval_batch
            for start in range(0, len(indices), batch):
                samples = [dataset[i] for i in indices[start:start + batch]]
                images_ = resize_shortest_edge(torch.stack([s["image"] for s in samples]).to(self.device),
                                               self.test_size(e)).float().round().clamp(0, 255)
                masks = table[torch.stack([s["mask"] for s in samples]).long().clamp(0, 255)]
                targets = [sb.semantic_targets(m) for m in masks]
                with torch.no_grad():
                    class_logits, mask_logits, _ = model.proposals(images_, model.seen_names)
                    mask_logits = torch.nn.functional.interpolate(mask_logits, size=masks.shape[-2:], mode="bilinear",
                                                                  align_corners=False)
                    n, k = sb.matched_class_accuracy(class_logits.cpu(), mask_logits.cpu(), [t[0] for t in targets],
                                                     [t[1] for t in targets], matcher)
                named, segments = named + n, segments + k
                for t in targets:
                    counts += torch.bincount(t[1], minlength=len(classes)).float()
            return {"accuracy": 100 * named / max(segments, 1), "segments": segments,
                    "chance": 100 / len(classes), "most_frequent": 100 * float(counts.max()) / max(segments, 1)}

        return results.kept(self.run_dir(e) / f"class-accuracy-{results.digest(spec)}.json", compute)

    def _kept_scores(self, folder: Path, model, e: Experiment, classifier: str, **spec) -> dict:
        """The scores of ``model()`` (built only when they are not kept yet) on ``e``'s test images (or
        ``spec["target"]``'s), kept in ``folder`` under a name covering the classifier, the images, the
        convention and the test size (and ``spec``)."""
        target = spec.get("target")
        spec = self._scores_spec(e, classifier, **spec)

        def compute():
            t0 = time.perf_counter()
            dataset = self.target_set(e, target)
            matrix = confusion_matrix(model(), dataset, spec["images"], classifier, progress=self.progress,
                                      short_edge=spec["short_edge"], proposals=spec.get("proposals"),
                                      max_proposals=spec.get("max_proposals", MAX_CLASSICAL_PROPOSALS),
                                      overrides=sb.ENSEMBLE_WEIGHTS.get(target, {}),  # a target's official lambda
                                      batch_size=self.eval_batch)
            split = dataset.split  # a cross-dataset target: its own classes (ADE20K-150 has no seen/unseen split)
            out = {k: 100 * v for k, v in generalized_zero_shot(matrix, split.seen, split.unseen, self.convention).items()}
            out.update(per_class=matrix_per_class(matrix), eval_s=time.perf_counter() - t0, images=len(spec["images"]))
            return out

        return results.kept(self._scores_path(folder, spec), compute)

    def _scores_spec(self, e: Experiment, classifier: str, **spec) -> dict:
        """What names kept scores: the classifier, the evaluated images, the convention, the test size and
        ``spec`` (the evaluation's other arguments)."""
        target = spec.get("target")
        spec = {"classifier": classifier, "images": self.test_indices(e, target), "convention": self.convention,
                "short_edge": self.test_size(e, target), **spec}
        # Table 5: at most as many classical regions as the generator has queries (the paper's 100 are
        # MaskFormer's; the toy generator has 20, the dry run's 8)
        cap = self.config(e).num_queries
        if spec.get("proposals") and cap != MAX_CLASSICAL_PROPOSALS:
            spec["max_proposals"] = cap
        return spec

    @staticmethod
    def _scores_path(folder: Path, spec: dict) -> Path:
        """Where ``_kept_scores`` keeps the scores a full ``_scores_spec`` names."""
        return folder / f"evaluation-{results.digest(spec)}.json"

    def predict(self, e: Experiment, indices, classifier: str = "ensemble", target: str | None = None) -> list:
        """The label maps ``e``'s model predicts for the test images ``indices`` (of ``target``'s set
        when given), exactly as ``evaluate`` scores them: for figures of the masks."""
        dataset = self.target_set(e, target)
        return [label for _, label in predictions(self.model(e), dataset, list(indices), classifier,
                                                  short_edge=self.test_size(e, target), batch_size=self.eval_batch,
                                                  overrides=sb.ENSEMBLE_WEIGHTS.get(target, {}))]

    def masks_figure(self, configs: dict, seed: int | None = None):
        """Every model of ``configs`` (label -> experiment, FCNs with their own classifier, the others
        with the ensemble) on the first evaluated test image that holds an unseen class (or the first
        evaluated one, where none does): the image, its
        ground truth and each model's label map (``viz.segmentation_row``), for training seed ``seed``
        (the first seed by default)."""
        from ..viz import segmentation_row

        seed = self.seeds[0] if seed is None else seed
        first = next(iter(configs.values()))
        test, unseen = self.test_set(first), set(self.split(first).unseen)
        evaluated = self.test_indices(first)
        index = next((i for i in evaluated if set(test[i]["mask"].unique().tolist()) & unseen), evaluated[0])
        masks = {label: self.predict(replace(e, seed=seed), [index], "generator" if e.head == "fcn" else "ensemble")[0]
                 for label, e in configs.items()}
        return segmentation_row(test[index]["image"], test[index]["mask"], masks, len(test.class_names),
                                title=f"{test.split.name}, test image {index}, seed {seed} ({self.weights_source()} weights)")

    # -- the released checkpoints -------------------------------------------------------------------
    def released(self, name: str = "zsseg-coco156-zero-shot") -> sb.SimBaseline:
        """zsseg's released model ``name`` (``simbaseline_weights.RELEASED``), downloaded into
        ``build/released/`` and converted strictly onto SimBaseline (paper architecture, its own CLIP)."""
        from ..methods import simbaseline_weights as sw

        if name not in self.models:
            info = sw.RELEASED[name]
            config = sb.SimBaselineConfig.for_dataset("coco-stuff-171", templates=info["templates"] or "sculpture")
            split = semseg.split("coco-stuff-171")
            model = sb.build(pretrained=self.profile.pretrained, config=config, seen_names=split.names(split.seen),
                             device=self.device)  # a CLIP of its own: the file's CLIP weights are loaded into it
            sw.load_released(model, sw.download(name, results.build_dir() / "released"))
            self.models[name] = model.eval()
        return self.models[name]

    def evaluate_released(self, name: str = "zsseg-coco156-zero-shot", classifier: str = "ensemble",
                          target: str | None = None) -> dict:
        """``evaluate`` for a released checkpoint on COCO-Stuff-171 val or a cross-dataset ``target``
        (weights source ``released``)."""
        folder = results.build_dir() / "runs" / self.profile.name / "simbaseline" / name
        spec = {"target": target} if target else {}
        return self._kept_scores(folder, lambda: self.released(name), Experiment("coco-stuff-171"), classifier,
                                 released=name, **spec)

    def weights_source(self) -> str:
        return {"toy": "toy", "random": "random"}.get(self.profile.weights, "retrained")


def matrix_per_class(matrix) -> list[float | None]:
    """Per-class IoU (%) of a confusion matrix; ``None`` for a class absent from ground truth."""
    from ..metrics import _as_matrix, per_class_iou

    m = _as_matrix(matrix)
    present = m.sum(dim=1) > 0
    return [100 * float(v) if p else None for v, p in zip(per_class_iou(m), present)]


def resize_shortest_edge(image: torch.Tensor, edge: int | None, max_size: int | None = None) -> torch.Tensor:
    """detectron2's test-time ``ResizeShortestEdge``: ``[B, 3, H, W]`` resized (bilinear) so that the
    shortest edge is ``edge`` and the longest at most ``max_size`` (default 4 x ``edge``: COCO's 640 /
    2560 and VOC's 512 / 2048); ``None`` leaves it as it is."""
    if edge is None:
        return image
    max_size = max_size or 4 * edge
    H, W = image.shape[-2:]
    scale = min(edge / min(H, W), max_size / max(H, W))
    size = (max(1, round(H * scale)), max(1, round(W * scale)))
    if size == (H, W):
        return image
    return torch.nn.functional.interpolate(image.float(), size=size, mode="bilinear", align_corners=False)


@torch.no_grad()
def segment_at(model: sb.SimBaseline, image: torch.Tensor, names, short_edge: int | None, size) -> torch.Tensor:
    """Eq. (2) scores ``[C, *size]`` of one image ``[3, H, W]``, segmented at the test resize."""
    x = resize_shortest_edge(image[None].to(next(model.generator.parameters()).device), short_edge)
    return to_size(model.segment(x, list(names))[0], size)


def to_size(scores: torch.Tensor, size) -> torch.Tensor:
    """Eq. (2) scores ``[C, h, w]`` resized (bilinear) to a mask's ``size`` (detectron2's
    ``sem_seg_postprocess``); unchanged when they have it already."""
    if tuple(scores.shape[-2:]) == tuple(size):
        return scores
    return torch.nn.functional.interpolate(scores[None], size=tuple(size), mode="bilinear", align_corners=False)[0]


class PseudoLabelled(torch.utils.data.Dataset):
    """The first ``count`` images of a training set with the pseudo-labels stored in ``folder``."""

    def __init__(self, base, folder: Path, count: int):
        self.base, self.folder, self.count = base, Path(folder), count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict:
        sample = dict(self.base[index])
        sample["mask"] = torch.load(self.folder / f"{index}.pt").long()
        return sample

    @property
    def class_names(self):
        return self.base.class_names


@torch.no_grad()
def predictions(model: sb.SimBaseline, dataset, indices, classifier: str = "ensemble", progress: bool = False,
                short_edge: int | None = None, proposals: str | None = None, overrides: dict | None = None,
                max_proposals: int = MAX_CLASSICAL_PROPOSALS, batch_size: int = 1):
    """``(index, label map)`` of ``model`` with ``classifier`` for each image of ``indices``: the image
    resized to ``short_edge`` (the official test size: COCO 640, VOC 512; the proposals' crops are cut
    from the resized image), segmented with every class name of ``dataset`` (generalized zero-shot), the
    Eq. (2) scores resized back to the image (``to_size``) and the prediction their argmax.
    ``proposals``: Table 5's classical proposals of each resized image, classified by CLIP alone
    (``SimBaseline.classify_masks``), replace the generator's (at most ``max_proposals`` of them).
    ``overrides``: configuration fields for these predictions only (a cross-dataset target's official λ
    and mask threshold). ``batch_size``: images the generator sees in one forward where they share a size
    after the resize (the toy world's; each image's proposals are still classified on their own)."""
    from tqdm.auto import tqdm

    from ..methods.classical_proposals import proposals as classical

    names = list(dataset.class_names)
    device = next(model.generator.parameters()).device
    original = model.config
    chosen = {} if classifier == "oracle" else {"classifier": classifier}
    model.config = replace(original, **chosen, **(overrides or {}))
    indices = list(indices)
    bar = tqdm(total=len(indices), desc=f"SimBaseline ({classifier})", disable=not progress, leave=False)
    try:
        for start in range(0, len(indices), max(1, int(batch_size))):
            chunk = indices[start:start + max(1, int(batch_size))]
            samples = [dataset[i] for i in chunk]
            images = [resize_shortest_edge(sample["image"][None].to(device), short_edge) for sample in samples]
            if classifier == "oracle":
                scores = []
                for image, sample in zip(images, samples):
                    _, masks, _ = model.proposals(image, names)
                    gt = sample["mask"].to(device)
                    gt = torch.nn.functional.interpolate(gt[None, None].float(), size=masks.shape[-2:], mode="nearest")[0, 0]
                    binary = sb.binarize(masks[0], model.config.mask_threshold)
                    scores.append(sb.semantic_map(sb.oracle_probabilities(binary, gt.long(), len(names)), masks[0]))
            elif proposals is not None:
                scores = [model.classify_masks(image[0], classical(proposals, image[0], max_proposals=max_proposals), names)
                          for image in images]
            elif len({tuple(image.shape) for image in images}) == 1:
                scores = list(model.segment(torch.cat(images), names))
            else:
                scores = [model.segment(image, names)[0] for image in images]
            for i, sample, score in zip(chunk, samples, scores):
                yield i, to_size(score, sample["mask"].shape).argmax(0).cpu()
            bar.update(len(chunk))
    finally:
        bar.close()
        model.config = original


def confusion_matrix(model: sb.SimBaseline, dataset, indices, classifier: str = "ensemble", progress: bool = False,
                     short_edge: int | None = None, proposals: str | None = None, overrides: dict | None = None,
                     max_proposals: int = MAX_CLASSICAL_PROPOSALS, batch_size: int = 1):
    """The confusion matrix over all of ``dataset``'s classes of ``predictions(...)`` against the masks."""
    from ..metrics import ConfusionMatrix

    matrix = ConfusionMatrix(len(dataset.class_names))
    for i, predicted in predictions(model, dataset, indices, classifier, progress, short_edge, proposals, overrides,
                                    max_proposals, batch_size):
        matrix.update(predicted, dataset[i]["mask"])
    return matrix


def start_notebook(notebook: str, profile: str, seeds=None, data_root: str | Path = "data", progress: bool = False,
                   prepare_data: bool = False) -> tuple[Runner, results.RunRecord]:
    """The setup cell of a SimBaseline notebook: the ``Runner`` for ``profile`` on the available device
    and the notebook's ``RunRecord``."""
    from .. import env, profiles

    runner = Runner(profiles.load(profile), data_root=data_root, device=env.device(), progress=progress, seeds=seeds,
                    prepare_data=prepare_data)
    return runner, results.RunRecord(notebook, profile, runner.seeds)
