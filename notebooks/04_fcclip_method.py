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
# # FC-CLIP, step by step
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ovnb/ovnb/blob/main/notebooks/04_fcclip_method.ipynb)
#
# **Real data on Colab:** set `PROFILE = "quick"` and `PREPARE_DATA = True` in the parameters cell and
# the notebook prepares what it misses under `DATA_ROOT` (it prints what it downloads, how large, and
# where), or prepare it first in a cell: `!ovnb data prepare ade20k-150 fcclip-class-lists --root data`.
# The real profiles evaluate the **released** ConvNeXt-L model: download `fcclip_cocopan.pth` from the
# official model zoo (the link is printed if it is missing) into `DATA_ROOT/checkpoints/`; the frozen
# CLIP (`laion/CLIP-convnext_large_d_320.laion2B-s29B-b131K-ft-soup`, about 1.4 GB) comes from the hub.
#
# *Convolutions Die Hard: Open-Vocabulary Segmentation with Single Frozen Convolutional CLIP* (Yu et
# al., NeurIPS 2023), Sec. 3. FC-CLIP is one network around **one frozen convolutional CLIP**. The CLIP
# image encoder's four stages feed a Mask2Former (pixel decoder + masked-attention decoder) that
# proposes masks; an **in-vocabulary** classifier learns, on COCO panoptic, to name each mask from
# mask-pooled decoder features; an **out-of-vocabulary** classifier names it from the frozen CLIP's own
# features pooled in the mask. A **geometric ensemble** leans on the first for classes seen in training
# and on the second for the rest. This notebook runs each step on one image; the chapter's table
# notebooks score it.
#
# **Toy profile:** the same architecture, narrower (24 queries, 64 channels), on the toy ConvNeXt CLIP,
# trained for 500 steps on toy scenes whose 7 unseen classes are void (as COCO leaves classes outside its
# 133 unlabelled), then tested at 128 px, twice the training size.

# %%
# Install cell: runs only on Colab (elsewhere `make setup` has installed everything).
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "ovnb[book] @ git+https://github.com/ovnb/ovnb"], check=True)

# %% tags=["parameters"]
PROFILE = "toy"  # toy | smoke | dryrun | quick | paper
SEED = 0  # the toy model's training seed (and which test image is shown)
DATA_ROOT = "data"  # where the real datasets are prepared (`ovnb data prepare NAME --root data`)
PREPARE_DATA = False  # quick/paper: True downloads missing datasets into DATA_ROOT (says what, how large, where)
CACHE_DIR = "build/cache"  # unused: the trained toy model lives in its run directory under build/runs
DATASET = "ade20k-150"  # real profiles: the image shown (A-150, the paper's main zero-shot benchmark)

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import display

from ovnb import env
from ovnb.methods import fcclip as fc
from ovnb.reproduce.fcclip import Experiment, start_notebook
from ovnb.viz import label_image

runner, record = start_notebook("04_fcclip_method", PROFILE, [SEED], DATA_ROOT, progress=True,
                                prepare_data=PREPARE_DATA)
env.report(PROFILE, [SEED])
WEIGHTS = runner.weights_source()
model = runner.model(Experiment("frozen", SEED))
name = "toy-shifted" if runner.toy else DATASET
data = runner.dataset(name)
sample = data[SEED % len(data)]
image = runner.image(sample)
names = runner.class_names(name)
print(f"FC-CLIP on {model.config.clip} ({WEIGHTS} weights); {len(names)} classes; image {tuple(image.shape[-2:])}")

# %% [markdown]
# ## One frozen backbone, three modules
#
# The CLIP trunk runs once. Its four stage outputs (strides 4 to 32) are the mask generator's input;
# the last one, after the trunk's `norm_pre`, is also what the out-of-vocabulary classifier pools.
# Nothing in the CLIP is trained: the parameter counts below are those of Table 1's "frozen" and
# "trainable" columns for this configuration (the paper counts 238 M frozen and 21 M trainable for
# ConvNeXt-L; the frozen count includes CLIP's text tower).

# %%
x, _ = model._pad(image[None].to(model.logit_scale.device))
maps, dense = model.backbone(x)
display(pd.DataFrame({"tap": ["res2", "res3", "res4", "res5", "norm_pre(res5)"],
                      "shape": [tuple(m.shape[1:]) for m in maps] + [tuple(dense.shape[1:])],
                      "stride": [4, 8, 16, 32, 32]}))
frozen = sum(p.numel() for p in model.clip.parameters())
trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
print(f"frozen {frozen / 1e6:.1f} M, trainable {trainable / 1e6:.1f} M")
record.metric("params frozen (M)", frozen / 1e6, seed=SEED)
record.metric("params trainable (M)", trainable / 1e6, seed=SEED)
if not runner.toy:  # the real architecture: the counts are the paper's Table 1 cells (weights do not matter)
    record.add(frozen / 1e6, paper="fc_clip", table="Table 1", row="FC-CLIP", column="params frozen (M)",
               weights=WEIGHTS, seed=SEED)
    record.add(trainable / 1e6, paper="fc_clip", table="Table 1", row="FC-CLIP", column="params trainable (M)",
               weights=WEIGHTS, seed=SEED)

# %% [markdown]
# ## Mask proposals
#
# The masked-attention decoder refines its queries over 9 layers; each of the 10 prediction points
# (the learnable queries, then every layer) gives one mask per query. Below: the final masks of the
# queries the in-vocabulary classifier trusts most (highest non-void probability).

# %%
with torch.no_grad():
    out = model(image[None].to(model.logit_scale.device), names)
masks = model.upsample_masks(out)[0].cpu()
p_in = out.in_logits[0].softmax(-1).cpu()
order = (1 - p_in[:, -1]).argsort(descending=True)[:6]
fig, axes = plt.subplots(1, 7, figsize=(15, 2.6))
axes[0].imshow(image.permute(1, 2, 0).numpy())
axes[0].set_title("image")
for ax, q in zip(axes[1:], order.tolist()):
    ax.imshow(masks[q].sigmoid().numpy(), vmin=0, vmax=1, cmap="magma")
    ax.set_title(f"query {q}\n1 - p(void) = {1 - p_in[q, -1]:.2f}", fontsize=8)
for ax in axes:
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Two classifiers and the geometric ensemble (Eq. 7)
#
# For each of those queries: the class the in-vocabulary classifier picks, the one the frozen CLIP picks
# from the pooled `norm_pre(res5)` features, and the ensemble's: `p_in^(1-a) p_out^a` with a = 0.4 for
# classes seen in training, b = 0.8 for the others, rescaled by `1 - p(void)`. A class is *seen* when
# one of its synonyms equals a training synonym exactly (the official rule).

# %%
seen = fc.seen_mask(names, model.config.train_classes)
with torch.no_grad():
    p_out = model.out_vocabulary_logits(out.clip_dense, out.mask_logits, names)[0].softmax(-1).cpu()
    fused = fc.ensemble(out.in_logits[0].cpu(), torch.log(p_out), seen).exp()
rows = []
for q in order.tolist():
    for label, probs in (("in-vocabulary", p_in[q, :-1]), ("out-of-vocabulary", p_out[q]), ("ensemble", fused[q, :-1])):
        k = int(probs.argmax())
        rows.append({"query": q, "classifier": label, "class": names[k].split(",")[0], "seen": bool(seen[k]),
                     "probability": float(probs[k])})
display(pd.DataFrame(rows).pivot_table(index="query", columns="classifier", values=["class", "probability"],
                                        aggfunc="first"))
print(f"{int(seen.sum())} of {len(names)} test classes count as seen")

# %% [markdown]
# ## Panoptic and semantic outputs
#
# Semantic inference sums `p(class | query) * sigmoid(mask)` over queries; panoptic inference gives each
# pixel to the most confident query's mask, drops a segment that keeps less than 80% of its own mask,
# and merges stuff segments of one class (Mask2Former's rules with FC-CLIP's object threshold 0).

# %%
with torch.no_grad():
    semantic = model.segment(image[None], names)[0].argmax(0).cpu()
    panoptic = model.panoptic(image[None], names, thing=runner.thing() if runner.toy else None)[0]
fig, axes = plt.subplots(1, 4, figsize=(13, 3.4))
axes[0].imshow(image.permute(1, 2, 0).numpy())
axes[0].set_title("image")
axes[1].imshow(label_image(sample["mask"], len(names)))
axes[1].set_title("ground truth")
axes[2].imshow(label_image(semantic, len(names)))
axes[2].set_title("semantic")
segments = panoptic["segments"].cpu()
rng = np.random.default_rng(0)
palette = rng.integers(40, 255, size=(int(segments.max()) + 1, 3))
palette[0] = 0
axes[3].imshow(palette[segments.numpy()])
axes[3].set_title(f"panoptic: {len(panoptic['info'])} segments")
for ax in axes:
    ax.axis("off")
plt.show()
display(pd.DataFrame([{"segment": i["id"], "class": names[i["category_id"]].split(",")[0], "thing": i["isthing"],
                       "score": round(i["score"], 2)} for i in panoptic["info"]]))

# %% [markdown]
# ## Any vocabulary, at call time
#
# The vocabulary is an argument: a list of class names, each optionally with synonyms (`"sky, blue
# sky"`). Its text classifier is computed once and cached. Here the image is segmented with only the
# classes in its ground truth, then with those classes plus synonyms.

# %%
present = [int(c) for c in sample["mask"].unique() if int(c) != 255][:6]
short = [names[c].split(",")[0] for c in present]
with_synonyms = [f"{n}, a {n}" for n in short]
with torch.no_grad():
    a = model.segment(image[None], short)[0].argmax(0).cpu()
    b = model.segment(image[None], with_synonyms)[0].argmax(0).cpu()
print("vocabulary:", short)
print(f"pixels labelled the same with and without the synonyms: {(a == b).float().mean():.1%}")

# %% [markdown]
# ## Other CLIPs of the official model zoo
#
# The maintainers also released FC-CLIPs on OpenAI's ResNet CLIPs (RN50 to RN50x64), trained with the same
# recipe. The method is the same with two differences: the dense map for the out-of-vocabulary classifier
# is res5 itself, pooled in each mask by the CLIP's own **attention pooling** (the image-mean query may
# attend only to the positions inside the mask, `fc.attention_mask_pool`) instead of an average followed
# by the head; and a query whose mask has no pixel left on the CLIP's stride-32 grid skips that
# classifier (`ENSEMBLE_ON_VALID_MASK`: its weights a and b are set to 0). `fc.build(clip="clip-rn50")`
# builds one; the real profiles evaluate one with the zero-shot notebook's `MODEL` parameter.

# %%
from ovnb.methods.fcclip_weights import RELEASED

display(pd.DataFrame([{"model": k, "CLIP": v["clip"], "checkpoint file": v["file"]} for k, v in RELEASED.items()])
        .set_index("model"))

# %% [markdown]
# ## Deviations from the official code
#
# * Mask generator: transformers' `Mask2FormerPixelDecoder` and `Mask2FormerTransformerModule` (pure-PyTorch
#   deformable attention, no CUDA build), which the official weights load into (`ovnb.methods.fcclip_weights`);
#   the official pixel decoder runs in fp32 under AMP, this one in the ambient precision.
# * ResNet CLIPs: a query with an empty mask attends to every position in the attention pooling (a finite
#   embedding, then discarded by `ENSEMBLE_ON_VALID_MASK`) where the official call gives NaN (then
#   discarded the same way, as `NaN ** 0 = 1`); with that rule off (`ensemble_on_valid_mask=False`) the
#   official code would spread NaN, this one uses the global pooling.
# * Toy profile: 24 queries, 64 channels, 2 deformable layers and 3 decoder layers (+1 prediction) instead of
#   250, 256, 6 and 9; 500 steps of batch 8 at 3e-4 on 64-px LSJ crops (scale 0.5-2.0) instead of 368,750
#   steps of batch 16 at 1e-4 on 1024-px crops (0.1-2.0).

# %%
record.save()
runner.close()  # the training processes, if any
print(f"saved {record.notebook} ({PROFILE}) in {record.wall_time_s:.0f} s")
