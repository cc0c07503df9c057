# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Fusioner, step by step
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ovnb/ovnb/blob/main/notebooks/01_fusioner_method.ipynb)
#
# **Real data on Colab:** set `PROFILE = "quick"` and `PREPARE_DATA = True` in the parameters cell and
# the notebook prepares what it misses under `DATA_ROOT` (it prints what it downloads, how large, and
# where), or prepare it first in a cell: `!ovnb data prepare voc2012 fewshot-splits --root data`.
#
# *Open-vocabulary Semantic Segmentation with Frozen Vision-Language Models* (Ma et al., BMVC 2022),
# Sec. 3. This notebook builds Fusioner from the registry's frozen encoders, trains it on three folds,
# segments the unseen classes of the fourth, looks at what the fusion layers attend to, and checks that
# the zero-shot transfer really comes from language (a control with random class embeddings). It ends
# with an interactive demo. The paper's tables are reproduced in the next notebooks.

# %%
# Install cell: runs only on Colab (elsewhere `make setup` has installed everything).
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "ovnb[book] @ git+https://github.com/ovnb/ovnb"], check=True)

# %% tags=["parameters"]
PROFILE = "toy"  # toy | smoke | dryrun | quick | paper
SEEDS: list[int] | None = None  # training seeds; None: the profile's (toy: 3, so every claim carries its spread)
DATA_ROOT = "data"  # where the real datasets are prepared (`ovnb data prepare NAME --root data`)
PREPARE_DATA = False  # quick/paper: True downloads missing datasets into DATA_ROOT (says what, how large, where)
CACHE_DIR = "build/cache"  # frozen-feature cache
VISUAL: str | None = None  # None: toy-clip-vit in the toy profiles, clip-vit-l-14 otherwise
TEXT: str | None = None

# %%
import inspect

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from ovnb import env
from ovnb.claims import check_order
from ovnb.data import ToyWorld, fewshot
from ovnb.methods import fusioner
from ovnb.reproduce.fusioner import Experiment, start_notebook, unit_values
from ovnb.viz import episode_grid

runner, record = start_notebook("01_fusioner_method", PROFILE, SEEDS, DATA_ROOT, CACHE_DIR, progress=True,
                                prepare_data=PREPARE_DATA)
env.report(PROFILE, runner.seeds)
toy = runner.toy
VISUAL = VISUAL or ("toy-clip-vit" if toy else "clip-vit-l-14")
TEXT = TEXT or VISUAL
WEIGHTS = runner.weights_source()

# %% [markdown]
# ## 1. The task: segment a class you were never trained on
#
# Fusioner is trained and tested on the few-shot fold benchmarks. An **episode** is an image and one
# class name; the target is the binary mask of that class. Training uses the classes of three folds;
# testing asks for the classes of the fourth, which never appeared as a query. In the toy profile the
# folds are the toy world's: twelve "colour shape" things per fold, so every unseen class is a new
# combination of a colour word and a shape word that training did use.

# %%
train_set = runner.train_set(Experiment(VISUAL, TEXT, fold=0))
test_set = runner.test_set(Experiment(VISUAL, TEXT, fold=0))
print(f"fold 0: {len(train_set)} training episodes over {len({p.class_id for p in train_set.pairs})} seen classes; "
      f"{len(test_set)} test episodes over {len(test_set.classes())} unseen classes")

episode_grid([train_set[k * 7 % len(train_set)] for k in range(3)]
             + [test_set[k * 7 % len(test_set)] for k in range(3, 6)], {},
             "training episodes, seen classes (left three); test episodes, unseen classes (right three)");

# %% [markdown]
# ## 2. Frozen features (Eq. 1 and 2)
#
# The visual encoder gives last-layer patch tokens. For CLIP they pass through `ln_post` and the
# projection `proj` into the joint image-text space, and are L2-normalised (as the official code). The
# text encoder embeds every class name in each of the paper's 32 prompt templates; the normalised
# embeddings are averaged and re-normalised. Both encoders stay frozen.

# %%
from torchvision.transforms.v2.functional import resize

model = runner.build(Experiment(VISUAL, TEXT, fold=0))
shown = [test_set[i % len(test_set)] for i in range(4)]
# real images differ in size: each is resized to the encoder's input before they are stacked
sample = torch.stack([resize(s["image"], [model.image_size] * 2, antialias=True) for s in shown])
visual = model.visual_tokens(sample)
names = [s["class_name"] for s in shown]
text = model.text_embeddings(names)
print(f"visual tokens {tuple(visual.tokens.shape)} on a {visual.grid[0]}x{visual.grid[1]} grid; "
      f"text embeddings {tuple(text.shape)}")

# %% [markdown]
# Before any training, the frozen CLIP tokens already carry some meaning: their cosine similarity with
# the class-name embedding is a coarse segmentation (this is Table 4's row B3, no trainable parameter).

# %%
fig, axes = plt.subplots(2, 4, figsize=(10, 5))
for k in range(4):
    sim = (visual.tokens[k] @ text[k]).view(*visual.grid)
    axes[0, k].imshow(sample[k].permute(1, 2, 0))
    axes[0, k].set_title(f'"{names[k]}"', fontsize=8)
    axes[1, k].imshow(sim, cmap="magma")
    axes[1, k].set_title("cosine(token, text)", fontsize=8)
for ax in axes.flat:
    ax.set_xticks([]), ax.set_yticks([])
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 3. The fusion module and the visual decoder (Eq. 3 and 4)
#
# Each modality gets one projection (visual `LN → Linear → LN`, text `LN → Linear` plus a learned type
# embedding). The projected visual tokens and class tokens are concatenated into one sequence and
# updated *together* by a pre-norm transformer: every class token attends to every patch and back. That
# is the paper's **early fusion**. Then the patch tokens go through the visual decoder (conv3×3,
# InstanceNorm, ReLU, ×2 upsampling) and every pixel is compared with every fused class token:

# %%
print(inspect.getsource(fusioner.FusionHead.fuse))
print(inspect.getsource(fusioner.FusionHead.forward))

# %% [markdown]
# With CLIP ViT-L/14 on both sides (768-d tokens and text), the paper's module (12 layers, 8 heads,
# width 512, 4 decoder convs of 512 channels) has the official architecture's 48.8 M trainable
# parameters. The toy world uses a smaller module of the same shape (`FusionerConfig.toy()`).

# %%
paper_head = fusioner.FusionHead(768, 768, fusioner.FusionerConfig())
count = lambda m: sum(p.numel() for p in m.parameters())
sizes = pd.DataFrame([
    {"module": "fusion (projections + transformer + output projections)",
     "paper, CLIP-L/14": count(paper_head) - count(paper_head.decoder), "this run": count(model.head) - count(model.head.decoder)},
    {"module": "visual decoder", "paper, CLIP-L/14": count(paper_head.decoder), "this run": count(model.head.decoder)},
    {"module": "total trainable", "paper, CLIP-L/14": count(paper_head), "this run": model.trainable_parameters()},
]).set_index("module")
del paper_head
(sizes / 1e6).round(2).rename(columns=lambda c: c + " (M)")

# %% [markdown]
# ## 4. Training (Sec. 3.4, 4.1)
#
# Each training sample is one episode (K = 1 class); the loss is a per-class sigmoid with binary
# cross-entropy over the non-void pixels; AdamW with a linear warm-up (10 of 510 epochs in the paper)
# and a cosine decay. The frozen visual tokens come from a cache (`ovnb.cache`): the toy profile uses no
# pixel augmentation, so every epoch after the first reads them instead of running the encoder.

# %%
# every fold and training seed at once (section 7 uses them all); below, fold 0 with the first seed
runner.run_all([Experiment(VISUAL, TEXT, fold=f, seed=s) for f in runner.folds for s in runner.seeds])
outcome = runner.run(Experiment(VISUAL, TEXT, fold=0, seed=runner.seeds[0]), keep_model=True)
model = outcome.model
hist = pd.DataFrame(outcome.history)
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(hist["step"], hist["loss"], lw=1)
ax.set_xlabel("step")
ax.set_ylabel("BCE loss")
ax.set_title(f"fold 0 training ({outcome.iterations} steps, batch {runner.batch_size})")
plt.show()
print(f"fold 0, unseen classes: mIoU {100 * outcome.miou:.1f}, FB-IoU {100 * outcome.fb_iou:.1f} "
      f"(train {outcome.train_s:.0f} s{'' if outcome.trained_now else ', loaded from an earlier run'})")

# %% [markdown]
# ## 5. Predictions on seen and unseen classes
#
# The prediction is an argmax over a constant background score of 0.5 and the sigmoid of every queried
# class (official `get_preds`). Below, one query per image: three seen classes, three unseen.

# %%
seen_test = fewshot.Episodes(train_set.pairs[:50], train_set.load, train_set.class_names, "seen")
episode_grid([seen_test[i % len(seen_test)] for i in (0, 11, 23)] + [test_set[i % len(test_set)] for i in (1, 5, 9)],
             {"Fusioner": model}, "seen (left three) and unseen (right three) classes");

# %% [markdown]
# ## 6. What the fusion layers attend to
#
# In the last fusion layer, the attention of the class token over the visual tokens shows where the
# text looks in the image. The same test scene is queried with the name of each thing in it. Attention is
# not segmentation: the mask comes from the decoded patches and the cosine head, so the class token may
# well attend broadly (at toy scale it often does).

# %%
world = ToyWorld("test", 200, seed=runner.data_seed)  # toy scenes (also offered by the demo of section 8)
scene_index = next(i for i in range(len(world)) if sum(c < 48 for c in world.raw(i)["classes"]) >= 2)
if toy:  # a toy test scene with at least two things, queried with the name of each
    scene = world[scene_index]
    queries = [world.class_names[c] for c in scene["classes"] if c < 48][:3]
    vocab_names = world.class_names[:48]
else:  # a test image, queried with its class and two other unseen classes of the fold
    scene = test_set[0]
    others = [test_set.class_names[c] for c in fewshot.fold_classes("pascal", 0)
              if test_set.class_names[c] != scene["class_name"]]
    queries = [scene["class_name"], *others[:2]]
    vocab_names = test_set.class_names[1:]
if model.config.fusion == "early":
    model.head.keep_attention(True)
    fig, axes = plt.subplots(1, 1 + len(queries), figsize=(3 * (1 + len(queries)), 3))
    axes[0].imshow(scene["image"].permute(1, 2, 0))
    axes[0].set_title("image", fontsize=8)
    grid = model.visual_tokens(scene["image"][None]).grid
    n = grid[0] * grid[1]
    for k, q in enumerate(queries):
        model.segment(scene["image"][None], [q])
        attn = model.head.attention_maps()[-1][0].mean(0)  # heads averaged, [N + K, N + K]
        axes[k + 1].imshow(attn[n, :n].view(*grid), cmap="viridis")
        axes[k + 1].set_title(f'class token "{q}" → patches', fontsize=8)
    model.head.keep_attention(False)
    for ax in axes:
        ax.set_xticks([]), ax.set_yticks([])
    plt.tight_layout()
    plt.show()

# %% [markdown]
# ## 7. Is the zero-shot transfer real? A language control
#
# If Fusioner only learned to segment "the salient object", it would not need the class name. The
# control below trains and tests the same model on the same folds, but every class name is replaced by
# a fixed random unit vector: the model can still learn the seen classes (each has its own vector), but
# an unseen class's vector tells it nothing. The gap between the two is what language contributes.
#
# Each configuration is trained once per fold and training seed (the profile's seeds: three in `toy`);
# the seeds change the initialisation, the order of the training batches and the control's random
# vectors, never the test episodes. The verdict comes from `ovnb.claims.check_order`: a paired t
# interval on the per-(seed, fold) differences, `holds` only when it lies above zero.

# %%
experiments = [Experiment(VISUAL, TEXT, fold=f, text_control=control, seed=s)
               for control in (False, True) for f in runner.folds for s in runner.seeds]
outcomes = runner.run_all(experiments)
METRICS = {"text encoder": "zero_shot_unseen_miou", "random vectors (control)": "zero_shot_unseen_miou_random_text"}
per_unit = {names: unit_values([o for o in outcomes if o.experiment.text_control == ("control" in names)])
            for names in METRICS}
for names, values in per_unit.items():
    for seed, value in values.groupby(level="seed").mean().items():
        record.metric(METRICS[names], value, seed=seed, weights=WEIGHTS, visual=VISUAL, text=TEXT,
                      note=f"class names from: {names}; mean over folds {list(runner.folds)} of mIoU (%) on the unseen classes")
language = check_order(per_unit, units="seed × fold pairs", unit_label="mIoU points")
record.claim(language, visual=VISUAL, text=TEXT)
zs = pd.concat(per_unit, names=["class names"]).rename("mIoU").reset_index()
pd.DataFrame({f"mIoU of folds {list(runner.folds)}, mean ± sd (n seeds)": {n: str(record.spread(m)) for n, m in METRICS.items()}})

# %%
print(language.sentence())

# %%
import seaborn as sns

fig, ax = plt.subplots(figsize=(6, 3))
sns.barplot(data=zs, x="fold", y="mIoU", hue="class names", errorbar="sd", ax=ax)
sns.stripplot(data=zs, x="fold", y="mIoU", hue="class names", dodge=True, palette="dark:k", size=3, legend=False, ax=ax)
ax.set_ylabel("mIoU on unseen classes (%)")
ax.legend(title="class names", fontsize=7, title_fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
ax.set_title(f"language control ({PROFILE} profile, {WEIGHTS} weights; bars: mean ± sd over "
             f"{len(runner.seeds)} seeds, dots: seeds)", fontsize=8)
plt.show()

# %% [markdown]
# ## 8. Try it: any image, any class names
#
# Pick a toy scene, the bundled photo (matplotlib's sample image of Grace Hopper) or upload your own, and
# type class names separated by commas. (The demo's model is fold 0's: it was trained on things only, so
# stuff names such as "sky" were never queried in training.) In the toy profile the model only knows the toy world's words
# ("red star", "sky", ...); with `PROFILE="quick"` on Colab it uses CLIP ViT-L/14 and any English name.
# The static figure below is what the demo shows for its default input: the scene of section 6, its things,
# and one thing that is not there.

# %%
import ipywidgets as widgets
from matplotlib import cbook
from PIL import Image

palette = plt.get_cmap("tab10")


def photo() -> torch.Tensor:
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        return torch.from_numpy(np.asarray(Image.open(f).convert("RGB")).copy()).permute(2, 0, 1)


def segment_figure(image: torch.Tensor, class_names: list[str]):
    with torch.no_grad():
        labels = model.predict(model.segment(image[None], class_names))[0]
    overlay = np.zeros((*labels.shape, 4))
    for k in range(len(class_names)):
        overlay[labels.numpy() == k + 1] = (*palette(k)[:3], 0.6)
    fig, axes = plt.subplots(1, 2, figsize=(7, 3.6))
    axes[0].imshow(image.permute(1, 2, 0))
    axes[1].imshow(image.permute(1, 2, 0))
    axes[1].imshow(overlay)
    handles = [plt.Rectangle((0, 0), 1, 1, color=palette(k)) for k in range(len(class_names))]
    axes[1].legend(handles, class_names, fontsize=7, loc="lower right")
    for ax in axes:
        ax.set_xticks([]), ax.set_yticks([])
    plt.tight_layout()
    plt.show()


# the default input: the scene above, queried with the names of the things in it and one thing absent
absent = next(n for n in vocab_names if n not in queries)
default_names = queries + [absent]
source = widgets.Dropdown(options=["toy scene", "bundled photo", "upload"], value="toy scene" if toy else "bundled photo",
                          description="image")
index = widgets.IntSlider(value=scene_index, min=0, max=len(world) - 1, description="toy scene #")
upload = widgets.FileUpload(accept="image/*", multiple=False)
names_box = widgets.Text(value=", ".join(default_names), description="classes")
output = widgets.Output()


def current_image() -> torch.Tensor:
    if source.value == "bundled photo":
        return photo()
    if source.value == "upload" and upload.value:
        import io

        item = upload.value[0] if isinstance(upload.value, (list, tuple)) else next(iter(upload.value.values()))
        data = item["content"]
        return torch.from_numpy(np.asarray(Image.open(io.BytesIO(bytes(data))).convert("RGB")).copy()).permute(2, 0, 1)
    return world[index.value]["image"]


def refresh(*_):
    with output:
        output.clear_output(wait=True)
        names = [n.strip() for n in names_box.value.split(",") if n.strip()]
        if names:
            segment_figure(current_image(), names)


for w in (source, index, upload, names_box):
    w.observe(refresh, names="value")
display(widgets.VBox([widgets.HBox([source, index]), upload, names_box, output]))
segment_figure(scene["image"], default_names)

# %% [markdown]
# When an absent class that shares its colour with a present object takes that object, that is a limit of
# the toy ViT rather than of the method: its tokens carry colour much better than shape (in `00_toy_world`
# its zero-shot accuracy on things is far below the toy ConvNeXt's).
#
# ## Where this implementation differs, and the named options
#
# * **Normalisation** (`FusionerConfig.normalisation`): the official code normalises with PASCAL / COCO
#   dataset statistics (std ≈ 0.12, about half of CLIP's), so the frozen CLIP sees twice its usual input
#   range; the paper names no statistics. Default: the encoder's own (`"encoder"`); the official ones are
#   `"official-pascal"` / `"official-coco"`.
# * **Optimiser** (`fusioner.train(optimizer=...)`): the paper's one AdamW with warm-up and cosine
#   (`"paper"`, default) or the official split, with a constant-rate decoder and a weight decay rising
#   from 0.01 to 0.4 (`"official"`).
# * **Evaluation resolution** (`ovnb.evaluate.FOLD_RESOLUTIONS`): logits upsampled to each mask's own
#   resolution (default), the official default's 224 × 224 comparison, or the official README's
#   sliding window.
# * **Schedule**: the official loop never stops; the `paper` profile trains 510 epochs (10 warm-up + 500
#   cosine, the paper's schedule) and evaluates once at the end (the official code evaluates on the test
#   fold three times per epoch, which amounts to picking checkpoints on the test set).
# * **Toy profile**: a smaller fusion module (4 layers, width 128; a 3-conv decoder that ends at half the
#   input resolution as the paper's does), 120 steps of 8 episodes, no pixel augmentation; unseen
#   classes may appear in training images as negatives, as in the official data code. Every
#   configuration is trained with 3 seeds, in two processes side by side (`Profile.workers`).
# * **Cosine at the output size** (`fusioner.upsampled_cosine`): the upsampled pixel features and
#   their cosine with each class are computed without materialising the `[B, C, H, W]` upsampled
#   features. It is the same function (checked against `F.interpolate` + cosine in the tests), only
#   cheaper.
# * **Late fusion** (Table 1): six MLP layers per modality after the projections, each pre-normed and
#   residual (`x + GELU(Linear(LN(x)))`); the paper gives no more detail and no code exists. (A plain
#   stack of six Linear + GELU layers did not train at all on the toy folds: its mIoU stayed below 1.)

# %%
record.save()
runner.close()  # the training processes, if any
print(f"saved {record.notebook} ({PROFILE}) in {record.wall_time_s:.0f} s")
