"""FC-CLIP's experiments: one ``Runner`` per profile trains (or loads) FC-CLIP and scores it.

* ``toy``: FC-CLIP on the toy ConvNeXt CLIP, trained on the toy world's ``toy-zero-shot`` split (the
  COCO-panoptic analogue: every scene, the 7 unseen classes' pixels void, as objects of classes
  outside COCO's 133 are in COCO), with LSJ at 64 px; tested at 128 px (larger than training, as
  FC-CLIP tests at 800-1333 px after training at 1024 crops) on the toy world's test scenes (the
  training dataset: COCO's columns) and on the **shifted** world (sizes, palette, textures: ADE20K's
  columns, zero-shot). Each seed trains a new model; the test scenes are fixed.
* ``quick`` / ``paper``: the **released** ConvNeXt-L checkpoint (``fcclip_cocopan.pth``, downloaded by
  the user from the official model zoo, path in the profile key ``fcclip.weights`` or
  ``DATA_ROOT/checkpoints/fcclip_cocopan.pth``) on the semantic benchmarks at the official test size
  (shortest edge 800, longest at most 1333), class names with the official synonyms
  (``ovnb data prepare fcclip-class-lists``).
* ``dryrun``: the same code with the real architecture's random weights on fixture datasets, at
  ``fcclip.test_edge`` (128 px): the path, not the numbers.

Scoring (``Scores``): the forward pass of a test set is stored once per model (in-vocabulary logits,
out-of-vocabulary logits and stride-4 mask logits, ``Outputs``); every ensemble setting (Table 8's
grid, the single classifiers) is scored from them without running the network again.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .. import results
from ..data import semseg
from ..methods import fcclip as fc
from ..metrics import ConfusionMatrix, miou
from ..panoptic import PanopticQuality, targets_from_instances
from .fusioner import _resolve

TOY_CLIP = "toy-clip-convnext"
REAL_CLIP = "clip-convnext-large-d-320"
TOY_SPLIT = "toy-zero-shot"
TOY_TRAIN_IMAGES = 2000
TOY_TEST_IMAGES = 200
TOY_TEST_SIZE = 128
TOY_ITERATIONS = 500
#: the toy schedule: the official optimizer, groups, clipping and milestones, batch 8 at 3e-4 for 500
#: steps on 64-px LSJ crops (scale 0.5-2.0) instead of 16 at 1e-4 for 368,750 on 1024-px crops (0.1-2.0)
TOY_SETTINGS = dict(batch_size=8, lr=3e-4, crop=64, scale=(0.5, 2.0))
#: Table 3's columns -> our splits (semantic benchmarks)
SEMANTIC = {"A-847": "ade20k-847", "PC-459": "pascal-context-459", "A-150": "ade20k-150", "PC-59": "pascal-context-59",
            "PAS-21": "voc-21", "PAS-20": "voc-20"}
LOADERS = {
    "ade20k-847": lambda root: semseg.ade20k_full(root, "validation"),
    "pascal-context-459": lambda root: semseg.pascal_context(root, "val", 459),
    "ade20k-150": lambda root: semseg.ade20k(root, "validation"),
    "pascal-context-59": lambda root: semseg.pascal_context(root, "val", 59),
    "voc-21": lambda root: semseg.voc(root, "val", background=True),
    "voc-20": lambda root: semseg.voc(root, "val"),
}


@dataclass(frozen=True)
class Experiment:
    """One trained model: FC-CLIP (``backbone="frozen"``) or Table 6's fine-tuned-trunk variant."""

    backbone: str = "frozen"  # frozen | finetuned
    seed: int = 0

    def __post_init__(self):
        if self.backbone not in ("frozen", "finetuned"):
            raise ValueError(f"backbone must be 'frozen' or 'finetuned', got {self.backbone!r}")


@dataclass
class Outputs:
    """One model's forward pass over a test set (per image; stride-4 masks as float16)."""

    in_logits: list[torch.Tensor]  # [Q, K + 1]
    out_logits: dict[str, list[torch.Tensor]]  # out-of-vocabulary source -> [Q, K]
    masks: list[torch.Tensor]  # [Q, h, w]
    sizes: list[tuple[int, int]]


class Runner:
    """Profile keys: ``fcclip.iterations`` (toy training steps, default 500), ``fcclip.test_images``
    (toy test scenes, default 200), ``fcclip.test_size`` (toy test size, default 128),
    ``fcclip.test_edge`` (real data: shortest edge, default 800), ``fcclip.weights`` (the released
    checkpoint's path), ``fcclip.templates`` (default the 14 ViLD templates; the dry run uses one:
    each sentence costs the real text tower ~65 ms on a CPU), ``eval_images``."""

    def __init__(self, profile, data_root: str | Path = "data", device=None, progress: bool = False,
                 prepare_data: bool = False, workers: int | None = None):
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
        self.eval_images = profile.eval_images
        self.workers = int(profile.workers if workers is None else workers)
        self.models: dict = {}
        self._data: dict = {}
        self._outputs: dict = {}
        self._clip = None
        self._encoders: dict = {}
        self._pool = None

    # -- vocabulary --------------------------------------------------------------------------------
    def split(self) -> semseg.Split:
        return semseg.split(TOY_SPLIT)

    def train_names(self) -> list[str]:
        """The training vocabulary: the toy split's seen classes, or COCO panoptic's 133 (official synonyms)."""
        if self.toy:
            s = self.split()
            return s.names(s.seen)
        from ..data.class_lists import fcclip_synonyms

        return fcclip_synonyms(self.data_root, "coco-panoptic-133")

    def thing(self) -> list[bool]:
        from ..data.toy_world import vocabulary

        voc = vocabulary()
        return [voc.is_thing(i) for i in range(len(voc.names))]

    def class_names(self, name: str) -> list[str]:
        """The text queries for dataset ``name`` (toy: the 62 names; real: the official synonym strings)."""
        if self.toy:
            return list(self.split().class_names)
        from ..data.class_lists import fcclip_synonyms

        return fcclip_synonyms(self.data_root, name)

    def weights_source(self) -> str:
        return {"toy": "toy", "random": "random"}.get(self.profile.weights, "released")

    # -- models ------------------------------------------------------------------------------------
    def clip(self):
        if self._clip is None:
            from .. import encoders

            self._clip = encoders.build(TOY_CLIP if self.toy else REAL_CLIP, pretrained=self.profile.pretrained,
                                        device=self.device)
        return self._clip

    def settings(self) -> fc.TrainSettings:
        if self.toy:
            return fc.TrainSettings.scaled(self.iterations, **TOY_SETTINGS)
        return fc.TrainSettings() if self.profile.name == "paper" else fc.TrainSettings.scaled(self.iterations)

    def build(self, e: Experiment) -> fc.FCCLIP:
        torch.manual_seed(e.seed)
        config = dict(fc.TOY) if self.toy else {}
        config.update(clip=TOY_CLIP if self.toy else REAL_CLIP, train_classes=tuple(self.train_names()),
                      finetune_backbone=e.backbone == "finetuned", templates=self.templates)
        model = fc.FCCLIP(fc.FCCLIPConfig(**config), clip=self.clip())
        return model.to(self.device) if self.device is not None else model

    def run_dir(self, e: Experiment) -> Path:
        from ..cache import weights_fingerprint

        extra = {"profile": self.profile.name, "settings": asdict(self.settings()),
                 "clip": weights_fingerprint(self.clip()), "train_images": TOY_TRAIN_IMAGES}
        key = e.backbone + "-" + str(e.seed) + "-" + hashlib.sha1(json.dumps(extra, sort_keys=True).encode()).hexdigest()[:10]
        return results.build_dir() / "runs" / self.profile.name / "fcclip" / key

    def released_weights(self) -> Path:
        path = self.profile.get("fcclip.weights") or (self.data_root / "checkpoints" / "fcclip_cocopan.pth")
        path = _resolve(path)
        if not path.is_file():
            from ..methods.fcclip_weights import RELEASED

            raise FileNotFoundError(
                f"the released FC-CLIP checkpoint is not at {path}. Download fcclip_cocopan.pth (ConvNeXt-L, "
                f"COCO panoptic) from {RELEASED['fcclip-convnext-large']['url']} (the official model zoo) and put "
                f"it there, or set the profile key fcclip.weights to its path")
        return path

    def model(self, e: Experiment = Experiment()) -> fc.FCCLIP:
        """The model of ``e``: toy - trained now or loaded from its finished run; released weights in
        ``quick``/``paper``; random weights in ``dryrun``."""
        if e in self.models:
            return self.models[e]
        model = self.build(e)
        if self.toy:
            self._train(model, e)
        elif self.profile.weights != "random":
            fc.load_weights(model, self.released_weights())
        model.eval()
        self.models[e] = model
        return model

    def _train(self, model: fc.FCCLIP, e: Experiment) -> None:
        from ..data.toy_world import ToyWorld

        run_dir = self.run_dir(e)
        world = ToyWorld("train", TOY_TRAIN_IMAGES, seed=0)
        data = _VoidUnseen(world, self.split().unseen)
        t0 = time.perf_counter()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as in the worker pool: the same weights whichever process trains it
        try:
            result = fc.train(model, data, self.split().seen, self.thing(), self.settings(), run_dir=run_dir,
                              seed=e.seed, progress=self.progress, checkpoint_every=250)
        finally:
            torch.set_num_threads(threads)
        if result.steps_run:
            results.write_json_atomic(run_dir / "training.json", {"train_s": time.perf_counter() - t0,
                                                                  "steps": result.steps_run, "experiment": asdict(e),
                                                                  "final_loss": result.final_loss})

    def is_trained(self, e: Experiment) -> bool:
        from ..train import is_finished

        return is_finished(self.run_dir(e), self.settings().iterations)

    def train_all(self, experiments) -> None:
        """Train the toy experiments not trained yet, in ``workers`` processes side by side."""
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
        """Test set ``name``: ``toy`` / ``toy-shifted`` (toy world test scenes at ``test_size``) or a
        semantic benchmark of ``LOADERS`` (prepared under the data root)."""
        if name not in self._data:
            if name in ("toy", "toy-shifted"):
                from ..data.toy_world import ToyWorld

                self._data[name] = ToyWorld("test", self.test_images, seed=0, image_size=self.test_size,
                                            shifted=name == "toy-shifted")
            elif name in LOADERS:
                from ..data.prepare import load_or_prepare

                self._data[name] = load_or_prepare(lambda: LOADERS[name](self.data_root), self.data_root,
                                                   self.prepare_data)
            else:
                raise ValueError(f"unknown FC-CLIP test set {name!r}; valid: toy, toy-shifted, {', '.join(LOADERS)}")
        return self._data[name]

    def indices(self, dataset) -> list[int]:
        n = len(dataset) if self.eval_images is None else min(self.eval_images, len(dataset))
        return list(range(n)) if not self.toy else list(range(len(dataset)))

    def image(self, sample) -> torch.Tensor:
        """A test image at the protocol's size: toy scenes as drawn (at ``test_size``), real data resized."""
        return sample["image"] if self.toy else self.resize(sample["image"])

    def resize(self, image: torch.Tensor) -> torch.Tensor:
        """uint8 ``[3, H, W]`` resized as the official test mapper does (detectron2's ResizeShortestEdge,
        bilinear): shortest edge ``test_edge`` (800), longest at most 1333 (scaled with the edge); toy:
        shortest edge ``test_size``."""
        from .simbaseline import resize_shortest_edge

        edge = self.test_size if self.toy else self.test_edge
        resized = resize_shortest_edge(image[None], edge, round(1333 * edge / 800))[0]
        return resized.float().round().clamp(0, 255).byte()

    # -- the forward pass, once per (model, test set) --------------------------------------------------
    def outputs(self, e: Experiment, name: str, sources=("frozen",)) -> Outputs:
        """``Outputs`` of ``e``'s model on test set ``name`` (kept in memory and, toy, on disk)."""
        key = (e, name, tuple(sources))
        if key in self._outputs:
            return self._outputs[key]
        path = self.run_dir(e) / f"outputs-{name}-{'-'.join(sources)}-{self.test_images}.pt" if self.toy else None
        if path is not None and path.is_file():
            self._outputs[key] = Outputs(**torch.load(path, weights_only=False))
            return self._outputs[key]
        model = self.model(e)
        data = self.dataset(name)
        names = self.class_names(name)
        out = Outputs([], {s: [] for s in sources}, [], [])
        from tqdm.auto import tqdm

        for i in tqdm(self.indices(data), desc=f"FC-CLIP on {name}", disable=not self.progress, leave=False):
            sample = data[i]
            image = self.image(sample)
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
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(asdict(out), path)
        self._outputs[key] = out
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
        if clip_name not in self._encoders:
            self._encoders[clip_name] = encoders.build(clip_name, pretrained=self.profile.pretrained, device=self.device)
        clip = self._encoders[clip_name]
        data = self.dataset(name)
        names = self.class_names(name)
        text, counts = fc.TextClassifier(clip, self.templates)(names)
        scale = clip.model.logit_scale
        logits = []
        indices = self.indices(data)[:limit]
        batch = 25 if self.toy else 1  # toy test scenes share one size
        for start in range(0, len(indices), batch):
            chunk = indices[start:start + batch]
            images = torch.stack([self.image(data[i]) for i in chunk])
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
              source: str = "frozen", panoptic: bool = True, instances: bool = False, grounding: bool = False) -> dict:
        """PQ / SQ / RQ (toy: things and stuff from the instance maps), mIoU (ground-truth-present classes;
        ``miou_d2_06``: detectron2 0.6's denominator) and optionally mask AP, over all, seen and unseen
        classes (fractions; seen = an exact synonym match with the training vocabulary). ``grounding``
        (Table 7): each image's vocabulary is only its ground-truth classes. Nothing runs the network again."""
        data = self.dataset(name)
        names = self.class_names(name)
        seen = fc.seen_mask(names, self.train_names())
        seen_ids = [i for i in range(len(names)) if seen[i]]
        unseen_ids = [i for i in range(len(names)) if not seen[i]]
        thing = self.thing() if self.toy else [False] * len(names)
        cm = ConfusionMatrix(len(names))
        pq = PanopticQuality(len(names), thing) if panoptic and self.toy else None
        ap = None
        if instances and self.toy:
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
            log_probs = fc.ensemble(in_logits, out_logits, seen, alpha, beta, kind)
            masks = F.interpolate(out.masks[j][None].float(), size=out.sizes[j], mode="bilinear",
                                  align_corners=False)[0]
            sem = fc.semantic_inference(log_probs[None], masks[None])[0].max(0).indices
            cm.update(sem, sample["mask"])
            if pq is not None or ap is not None:
                gs, gi = targets_from_instances(sample["mask"], sample["instances"], thing)
            if pq is not None:
                c = fc.FCCLIPConfig
                p = fc.panoptic_inference(log_probs, masks, thing, c.object_mask_threshold, c.overlap_threshold)
                pq.update(p["segments"], p["info"], gs, gi)
            if ap is not None:
                inst = fc.instance_inference(log_probs, masks, thing, fc.FCCLIPConfig.instance_topk)
                things = [s for s in gi if thing[s["category_id"]]]
                gt_masks = torch.stack([gs == s["id"] for s in things]) if things else torch.zeros(0, *gs.shape, dtype=torch.bool)
                ap.update(gt_masks, [s["category_id"] for s in things], inst["masks"], inst["labels"], inst["scores"])
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
                   prepare_data: bool = False) -> tuple[Runner, results.RunRecord]:
    """The setup cell of an FC-CLIP notebook: the ``Runner`` and the notebook's ``RunRecord``."""
    from .. import env, profiles

    prof = profiles.load(profile)
    runner = Runner(prof, data_root=data_root, device=env.device(), progress=progress, prepare_data=prepare_data)
    return runner, results.RunRecord(notebook, profile, tuple(prof.seeds if seeds is None else seeds))
