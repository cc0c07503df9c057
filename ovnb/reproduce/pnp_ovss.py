"""PnP-OVSS's experiments: one ``Runner`` per profile builds the VLM once, reads the test sets and
scores configurations of the method (``PnPConfig`` fields) in both protocols.

Nothing is trained: the ``toy`` profile runs the committed toy BLIP on toy test scenes (every class
counts as unseen), ``quick`` / ``paper`` the released BLIP (``Salesforce/blip-itm-large-flickr``) on
the prepared datasets, ``dryrun`` the same code with the real architectures' random weights on
fixture datasets (at ``pnp_ovss.image_size``: the path, not the numbers).

Datasets, in the paper's protocol (background as class 0, ``ovnb.data.semseg``) and the standard one:

| paper column | split (paper protocol) | standard split | background rule |
|---|---|---|---|
| Pascal VOC-20 | ``voc-21`` (boundaries as background) | ``voc-20`` | always |
| Pascal Context-59 | ``pascal-context-60`` | ``pascal-context-59`` | fewer than 3 classes |
| COCO Stuff-171 | ``coco-stuff-172`` | ``coco-stuff-171`` | fewer than 3 classes |
| ADE 20K-150 | ``ade20k-151`` | ``ade20k-150`` | fewer than 3 classes |
| COCO Object-80 | ``coco-object-81`` (masks painted from the instances) | the 80 things, background ignored | always |

Class lists per image (``candidates``): ``"oracle"`` the ground-truth labels, ``"gpt4o"`` the official
GPT-4o lists (``ovnb.data.class_lists``; real data only: ``ovnb data prepare gpt4o-lists``), ``"clip"``
the reward CLIP's zero-shot multi-label choice (the toy world's stand-in for GPT-4o, which it lacks:
every class whose softmax probability over the vocabulary reaches 0.1, at most 25, at least the most
likely one), ``"all"`` the whole vocabulary.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .. import results
from ..data import semseg
from ..methods import pnp_ovss as pnp
from .fusioner import _resolve

TOY_VLM = "toy-blip"
REAL_VLM = "blip-itm-large-flickr"
TOY_TEST_IMAGES = 200
#: the test sets of the paper's tables (``semseg.TEST_SETS``): background as a class, and the standard splits
DATASETS = ("voc-21", "voc-20", "pascal-context-60", "pascal-context-59", "coco-stuff-172", "coco-stuff-171",
            "ade20k-151", "ade20k-150", "coco-object-81")
STANDARD = {"voc-21": "voc-20", "pascal-context-60": "pascal-context-59", "coco-stuff-172": "coco-stuff-171",
            "ade20k-151": "ade20k-150"}
PAPER_PROTOCOL = {"voc-21": "pnp-ovss-background-as-class", "pascal-context-60": "standard",
                  "coco-stuff-172": "standard", "ade20k-151": "standard", "coco-object-81": "standard"}
CANDIDATES = ("oracle", "gpt4o", "clip", "all")
CLIP_CHOICE = dict(min_probability=0.1, limit=25)  # the toy stand-in for GPT-4o (its prompt: at most 25 classes)


class Runner:
    """Builds PnP-OVSS for one profile and evaluates it. Profile keys: ``pnp_ovss.image_size`` (the
    VLM's input; default the paper's 336, the toy BLIP's 64), ``pnp_ovss.test_images`` (toy test
    scenes; default 200) and ``eval_images`` (test images scored)."""

    def __init__(self, profile, data_root: str | Path = "data", device=None, progress: bool = False,
                 prepare_data: bool = False, encoders: dict | None = None):
        from ..data.fixtures import data_root as fixture_root

        self.profile = profile
        self.toy = profile.data == "toy"
        self.data_root = _resolve(fixture_root(profile, data_root))
        self.device, self.progress, self.prepare_data = device, progress, prepare_data
        self.image_size = profile.get("pnp_ovss.image_size")
        self.test_images = int(profile.get("pnp_ovss.test_images", TOY_TEST_IMAGES))
        self.eval_images = profile.eval_images
        self._models: dict = {}
        self._data: dict = {}
        self.encoders = {} if encoders is None else encoders  # frozen registry encoders, shareable with others

    @property
    def vlm(self) -> str:
        return TOY_VLM if self.toy else REAL_VLM

    def weights_source(self) -> str:
        return {"toy": "toy", "random": "random"}.get(self.profile.weights, "released")

    # -- model -----------------------------------------------------------------------------------
    def model(self, vlm: str | None = None, **config) -> pnp.PnPOVSS:
        """PnP-OVSS on ``vlm`` (default the profile's) with ``config`` changes; the VLM is built once."""
        vlm = vlm or self.vlm
        if vlm not in self._models:
            model = pnp.build(vlm, pretrained=self.profile.weights != "random", device=self.device)
            if self.image_size is not None:  # the profile's size, as a whole number of the model's patches
                patch = model.vlm.patch
                model = model.configure(image_size=max(1, round(int(self.image_size) / patch)) * patch)
            self._models[vlm] = model
        base = self._models[vlm]
        return base.configure(**config) if config else base

    def clip(self):
        """The reward's CLIP: ViT-L/14 (the paper's reward model at 336 px), the toy CLIP in the toy world;
        built once, or taken from the ``encoders`` the runner was given."""
        name = "toy-clip-vit" if self.toy else "clip-vit-l-14"
        if name not in self.encoders:
            from .. import encoders

            self.encoders[name] = encoders.build(name, pretrained=self.profile.weights != "random", device=self.device)
        return self.encoders[name]

    # -- data ------------------------------------------------------------------------------------
    def dataset(self, name: str = "voc-21", seed: int = 0) -> semseg.SemSegImages:
        """The test set of ``name`` (toy profiles: the toy world's test scenes drawn with ``seed``,
        whatever the name - each seed is a new set of scenes; real data has one test set)."""
        key = ("toy", seed) if self.toy else name
        if key not in self._data:
            if self.toy:
                self._data[key] = semseg.toy("toy-zero-shot", "test", images=self.test_images, seed=seed)
            else:
                if name not in DATASETS:
                    raise ValueError(f"unknown PnP-OVSS dataset {name!r}; valid: {list(DATASETS)}")
                try:
                    self._data[key] = semseg.test_set(name, self.data_root)
                except FileNotFoundError:
                    if not self.prepare_data:
                        raise
                    from ..data import prepare

                    for family in semseg.NEEDS[name]:
                        prepare.prepare(family, self.data_root)
                    self._data[key] = semseg.test_set(name, self.data_root)
        return self._data[key]

    def background_rule(self, name: str) -> str:
        return "never" if self.toy else pnp.BACKGROUND_RULES.get(name, "never")

    def indices(self, dataset) -> list[int]:
        n = len(dataset) if self.eval_images is None else min(self.eval_images, len(dataset))
        return list(range(n))

    def gpt4o(self, sample, dataset, name: str) -> list[int]:
        """The official GPT-4o list of an image, as class indices of ``name``'s split (> 70 %, fallbacks)."""
        from ..data import class_lists

        key = ("gpt4o", name)
        if key not in self._data:
            try:
                self._data[key] = class_lists.load(self.data_root, name)
            except FileNotFoundError:
                if not self.prepare_data:
                    raise
                from ..data import prepare

                prepare.prepare("gpt4o-lists", self.data_root)
                self._data[key] = class_lists.load(self.data_root, name)
        if name.startswith("coco"):  # COCO category ids; the stuffthingmaps store id - 1
            table = semseg.label_map(name)

            def to_index(i):
                c = int(table[i - 1]) if 1 <= i <= len(table) else semseg.IGNORE_INDEX
                return None if c == semseg.IGNORE_INDEX else c
        else:  # VOC, PASCAL-Context, ADE20K: 1-based class numbers = indices of the background-first split
            def to_index(i):
                return i if 1 <= i < len(dataset.class_names) else None
        return class_lists.candidates(self._data[key], name, sample["id"], to_index)

    def clip_choice(self, sample, dataset, min_probability: float = CLIP_CHOICE["min_probability"],
                    limit: int = CLIP_CHOICE["limit"]) -> list[int]:
        """The CLIP's multi-label choice for one image (``clip_choice``), background excluded."""
        return clip_choice(self.clip(), sample["image"], list(dataset.class_names), min_probability, limit)

    def candidates(self, sample, dataset, kind: str, name: str | None = None) -> list[int] | None:
        """One image's candidate classes of ``kind`` (``CANDIDATES``; ``"all"``: None)."""
        if kind == "all":
            return None
        if kind == "gpt4o":
            return self.gpt4o(sample, dataset, name)
        if kind == "clip":
            return self.clip_choice(sample, dataset)
        return self.oracle(sample, dataset) or [0]

    def oracle(self, sample, dataset) -> list[int]:
        """The ground-truth classes of an image (without the background class)."""
        present = sorted(int(c) for c in sample["mask"].unique().tolist() if c != semseg.IGNORE_INDEX)
        names = dataset.class_names
        return [c for c in present if names[c] != "background"]

    # -- evaluation ------------------------------------------------------------------------------
    def candidate_kind(self, requested: str | None) -> str:
        """``requested``, or the default: the paper's GPT-4o lists on real data, the CLIP's choice in the toy
        world (its stand-in), ground truth on fixtures (which have no lists)."""
        kind = requested or ("clip" if self.toy else "oracle" if getattr(self.profile, "fixtures", False) else "gpt4o")
        if kind not in CANDIDATES:
            raise ValueError(f"candidates must be one of {CANDIDATES}, got {kind!r}")
        if kind == "gpt4o" and self.toy:
            raise ValueError("the GPT-4o lists exist for the real datasets only; the toy world uses 'oracle'")
        return kind

    def predict(self, model: pnp.PnPOVSS, dataset, indices, candidates: str = "oracle", batch: int = 8,
                name: str | None = None) -> list:
        """Label maps ``[H, W]`` of ``indices`` (images of one size are batched); ``candidates``:
        ``CANDIDATES`` (``"gpt4o"`` needs the split ``name``)."""
        if candidates not in CANDIDATES:
            raise ValueError(f"candidates must be one of {CANDIDATES}, got {candidates!r}")
        return self._kept("predict", dict(model=self._model_spec(model), candidates=candidates, name=name),
                          dataset, indices, lambda: self._predict(model, dataset, indices, candidates, batch, name))

    def _predict(self, model, dataset, indices, candidates, batch, name) -> list:
        from tqdm.auto import tqdm

        names = list(dataset.class_names)
        out = []
        chunks = [indices[i:i + batch] for i in range(0, len(indices), batch)]
        for chunk in tqdm(chunks, desc="PnP-OVSS", disable=not self.progress, leave=False):
            samples = [dataset[i] for i in chunk]
            groups: dict = {}
            for j, s in enumerate(samples):
                groups.setdefault(tuple(s["image"].shape), []).append(j)
            labels = [None] * len(samples)
            for js in groups.values():
                images = torch.stack([samples[j]["image"] for j in js])
                cands = None if candidates == "all" else [self.candidates(samples[j], dataset, candidates, name)
                                                          for j in js]
                scores = model.segment(images, names, cands)
                for j, lab in zip(js, scores.argmax(1)):
                    labels[j] = lab
            out += labels
        return out

    def predict_rows(self, rows: dict, dataset, indices, background: str = "never", batch: int = 8) -> dict:
        """Label maps for each row of an ablation (``rows``: label -> ``PnPConfig`` changes), with one
        ``maps`` call per image for all rows that share ``gradcam`` (the rows' fewer passes are
        prefixes of the longest: ``PnPOVSS.scores(passes=...)``)."""
        base = self.model(background=background)
        spec = dict(model=self._model_spec(base), rows=rows)
        return self._kept("rows", spec, dataset, indices, lambda: self._predict_rows(rows, dataset, indices, background,
                                                                                     batch))

    def _predict_rows(self, rows: dict, dataset, indices, background: str, batch: int) -> dict:
        from tqdm.auto import tqdm

        names = list(dataset.class_names)
        base = self.model(background=background)
        models = {label: base.configure(**changes) for label, changes in rows.items()}
        groups: dict = {}
        for label, m in models.items():
            groups.setdefault(m.config.gradcam, []).append(label)
        out = {label: [] for label in rows}
        chunks = [indices[i:i + batch] for i in range(0, len(indices), batch)]
        for chunk in tqdm(chunks, desc="PnP-OVSS rows", disable=not self.progress, leave=False):
            samples = [dataset[i] for i in chunk]
            for gradcam, labels in groups.items():
                runner_model = base.configure(gradcam=gradcam, passes=max(models[l].config.passes for l in labels))
                for s in samples:
                    cands = self.oracle(s, dataset) or [0]
                    passes = runner_model.maps(s["image"][None], names, [cands])["passes"][0]
                    for label in labels:
                        m = models[label]
                        out[label].append(m.scores(passes, s["image"], cands, names, m.config.passes).argmax(0))
        return out

    def reward(self, dataset, indices, stage: str = "gradcam", background: str = "never", **config) -> int:
        """The CLIP reward (Eq. 6, ``ovnb.methods.pnp_reward``) summed over ``indices`` for the method with
        ``config``; ``stage="gradcam"``: the first search stage's masks (one pass, ``probe``),
        ``"segmentation"``: the pre-CRF segmentation (the blur stage)."""
        if stage == "gradcam":
            return self.probe(dataset, indices, background, **config)["reward"]
        if stage != "segmentation":
            raise ValueError(f"stage must be 'gradcam' or 'segmentation', got {stage!r}")
        model = self.model(background=background, **config)
        return self._kept("reward", dict(model=self._model_spec(model), stage=stage), dataset, indices,
                          lambda: self._segmentation_reward(model, dataset, indices))

    def _segmentation_reward(self, model, dataset, indices) -> int:
        from ..methods import pnp_reward as R

        names = list(dataset.class_names)
        total = 0
        for i in indices:
            s = dataset[i]
            masks, cands = R.segmentation_masks(model, s["image"][None], names, [self.oracle(s, dataset) or [0]])
            total += int(R.clip_reward(self.clip(), s["image"][None], cands, masks, names).sum())
        return total

    def probe(self, dataset, indices, background: str = "never", **config) -> dict:
        """One GradCAM pass per image (the official search ran with ``drop_iter=1``) serves two measures:
        ``reward``, the CLIP reward of its first-stage masks summed over ``indices``, and the pointing
        game - for every (image, ground-truth class), whether the most salient patch of the class's map
        falls on that class's pixels (``hits``), against ``chance`` (the class's share of the image),
        as fractions."""
        model = self.model(background=background, **{**config, "passes": 1})
        return self._kept("probe", dict(model=self._model_spec(model)), dataset, indices,
                          lambda: self._probe(model, dataset, indices))

    def _probe(self, model, dataset, indices) -> dict:
        from ..methods import pnp_reward as R

        names = list(dataset.class_names)
        reward, hits, chance, total = 0, 0.0, 0.0, 0
        for i in indices:
            s = dataset[i]
            truth = self.oracle(s, dataset)
            cands = truth or [0]
            passes = model.maps(s["image"][None], names, [cands])["passes"][0]
            masks = [R.masks_from_maps(model, passes)]
            reward += int(R.clip_reward(self.clip(), s["image"][None], [cands], masks, names).sum())
            g = passes[0].shape[-1]
            mask = s["mask"]
            h, w = mask.shape
            for k, c in enumerate(truth):
                r, col = divmod(int(passes[0][k].flatten().argmax()), g)
                y, x = min(int((r + 0.5) * h / g), h - 1), min(int((col + 0.5) * w / g), w - 1)
                hits += float(mask[y, x] == c)
                chance += float((mask == c).float().mean())
                total += 1
        return {"reward": reward, "hits": hits / max(total, 1), "chance": chance / max(total, 1)}

    # -- kept results -------------------------------------------------------------------------------
    def _model_spec(self, model: pnp.PnPOVSS) -> dict:
        from dataclasses import asdict

        from ..cache import weights_fingerprint

        return {"vlm": model.encoder.info.name, "weights": weights_fingerprint(model.encoder),
                "config": asdict(model.config), "background_class": model.background_class}

    def _kept(self, kind: str, spec: dict, dataset, indices, compute):
        """``compute()``'s result (label maps, a reward, a probe), kept in
        ``build/runs/<profile>/pnp_ovss/`` under a name covering ``spec`` (the VLM, its weights and the
        method's configuration), the test set (which of the runner's sets, and the images) and the
        reward CLIP's weights (candidates and rewards depend on it): nothing is trained here, so a
        rebuild of the book reads every evaluation it has made. A set the runner did not load is not kept.
        Like the other chapters' kept evaluations, the name does not cover the code: delete the folder
        after changing the method."""
        import hashlib

        from ..cache import weights_fingerprint

        key = next((k for k, v in self._data.items() if v is dataset), None)
        if key is None:
            return compute()
        indices = [int(i) for i in indices]
        content = hashlib.sha1()  # the first and last image's pixels: a regenerated set never reads old results
        for i in sorted({indices[0], indices[-1]}) if indices else ():
            content.update(dataset[i]["image"].numpy().tobytes())
        spec = {**spec, "kind": kind, "profile": self.profile.name, "set": [key, dataset.name, len(dataset)],
                "images": indices, "content": content.hexdigest(), "clip": weights_fingerprint(self.clip())}
        folder = results.build_dir() / "runs" / self.profile.name / "pnp_ovss"
        return results.kept(folder / f"{kind}-{results.digest(spec, 16)}.pt", compute)

    def score(self, labels, dataset, indices, protocol: str = "standard", permute=None):
        """The confusion matrix of ``labels`` against the masks; ``permute(index, labels)`` may
        rewrite a label map first (the scrambled control)."""
        from ..metrics import PROTOCOLS

        matrix = PROTOCOLS[protocol].confusion_matrix(len(dataset.class_names))
        for i, lab in zip(indices, labels):
            mask = dataset[i]["mask"]
            matrix.update(permute(i, lab) if permute else lab, mask)
        return matrix


    def miou(self, labels, dataset, indices, name: str) -> dict:
        """mIoU (%) of the same label maps in the paper's protocol and the standard one (and, in the
        standard protocol, over the classes unseen by SimBaseline-style training, Table 4). The paper's
        splits hold background as class 0; the standard protocol ignores the background pixels of the
        ground truth and counts a pixel predicted as background as a miss (an extra "no class"
        column). Toy scenes have no background: both protocols are the same there."""
        from ..metrics import ConfusionMatrix, PROTOCOLS, miou

        if self.toy:
            matrix = self.score(labels, dataset, indices)
            value = 100 * miou(matrix)
            return {"paper": value, "standard": value, "unseen": 100 * miou(matrix, list(dataset.split.unseen))}
        if name not in PAPER_PROTOCOL:
            raise ValueError(f"no paper protocol for {name!r}; valid: {list(PAPER_PROTOCOL)}")
        c = len(dataset.class_names)
        paper = PROTOCOLS[PAPER_PROTOCOL[name]]
        pm, sm = paper.confusion_matrix(c), ConfusionMatrix(c, ignore_index=semseg.IGNORE_INDEX)
        for i, lab in zip(indices, labels):
            mask = dataset[i]["mask"]
            pm.update(lab, mask)
            gt = torch.where((mask == 0) | (mask == semseg.IGNORE_INDEX), semseg.IGNORE_INDEX, mask - 1)
            sm.update(torch.where(lab == 0, c - 1, lab - 1), gt)
        unseen = [u for u in semseg.split(STANDARD[name]).unseen if u < c - 1] if name in STANDARD else []
        return {"paper": 100 * paper.miou(pm), "standard": 100 * miou(sm, list(range(c - 1))),
                "unseen": 100 * miou(sm, unseen) if unseen else float("nan")}


@torch.no_grad()
def clip_choice(clip, image: torch.Tensor, names, min_probability: float = CLIP_CHOICE["min_probability"],
                limit: int = CLIP_CHOICE["limit"]) -> list[int]:
    """The candidate classes of one image ``[3, H, W]`` chosen by a CLIP from the vocabulary ``names``
    alone (the module docstring's ``"clip"`` lists): every class whose softmax probability over the
    vocabulary ("a photo of a {}.") reaches ``min_probability``, at most ``limit``, at least the most
    likely one; a class named ``background`` is never chosen."""
    keep = [i for i, n in enumerate(names) if n != "background"]
    text = clip.embed_text([names[i] for i in keep], "photo")
    picture = clip.embed_image(image[None])
    p = torch.softmax(clip.logit_scale() * picture.float() @ text.float().T, dim=-1)[0].cpu()
    order = torch.argsort(p, descending=True, stable=True).tolist()[:limit]
    chosen = [keep[j] for j in order if p[j] >= min_probability]
    return chosen or [keep[order[0]]]


def scramble(labels: torch.Tensor, classes: list[int], shift: int = 1) -> torch.Tensor:
    """The label map with each candidate class's pixels given to the next candidate (cyclically): the
    pipeline unchanged, only which class each map belongs to is wrong (the control of the toy claims)."""
    out = labels.clone()
    if len(classes) < 2:
        return out
    for a, b in zip(classes, classes[shift:] + classes[:shift]):
        out[labels == a] = b
    return out


def start_notebook(notebook: str, profile: str, seeds=None, data_root: str | Path = "data", progress: bool = False,
                   prepare_data: bool = False) -> tuple[Runner, results.RunRecord]:
    """The setup cell of a PnP-OVSS notebook: the ``Runner`` for ``profile`` on the available device
    and the notebook's ``RunRecord`` (seeds pick test images; nothing is trained)."""
    from .. import env, profiles

    prof = profiles.load(profile)
    runner = Runner(prof, data_root=data_root, device=env.device(), progress=progress, prepare_data=prepare_data)
    return runner, results.RunRecord(notebook, profile, tuple(prof.seeds if seeds is None else seeds))
