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
# # Fusioner, Table 2: PASCAL-5i and COCO-20i
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ovnb/ovnb/blob/main/notebooks/01_fusioner_table2.ipynb)
#
# **Real data on Colab:** set `PROFILE = "quick"` and `PREPARE_DATA = True` in the parameters cell and
# the notebook prepares what it misses under `DATA_ROOT` (it prints what it downloads, how large, and
# where), or prepare it first in a cell: `!ovnb data prepare voc2012 coco2014 fewshot-splits --root data`.
#
# Table 2 compares Fusioner (frozen CLIP ViT-L/14 on both sides) with earlier zero-shot segmentation
# methods on the unseen classes of PASCAL-5i and COCO-20i. The other rows (SPNet, ZS3Net, LSeg) are
# other papers' models and stay paper-only here.
#
# In the `toy` profile the PASCAL-5i columns are the toy world's four folds with the toy CLIP. The toy
# world has one kind of scene only, so the COCO-20i columns have no separate toy analogue and stay empty
# in that profile. `quick` / `paper` train on PASCAL-5i and COCO-20i; for COCO the evaluation protocol is
# a named parameter (`COCO_PROTOCOL`).

# %%
# Install cell: runs only on Colab (elsewhere `make setup` has installed everything).
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "ovnb[book] @ git+https://github.com/ovnb/ovnb"], check=True)

# %% tags=["parameters"]
PROFILE = "toy"  # toy | smoke | dryrun | quick | paper
SEEDS: list[int] | None = None  # training seeds; None: the profile's (toy: 3)
DATA_ROOT = "data"  # where the real datasets are prepared (`ovnb data prepare NAME --root data`)
PREPARE_DATA = False  # quick/paper: True downloads missing datasets into DATA_ROOT (says what, how large, where)
CACHE_DIR = "build/cache"  # frozen-feature cache

COCO_PROTOCOL = "hsnet-uniform"  # or "official-first-1000" (the official code's sorted first 1000 pairs)
RESOLUTION = "original"  # "original" | "official-224" | "sliding"

# %%
import matplotlib.pyplot as plt
import pandas as pd
import torch

from ovnb import env, results
from ovnb.reproduce.fusioner import Experiment, paper_vs_ours, record_folds, start_notebook

runner, record = start_notebook("01_fusioner_table2", PROFILE, SEEDS, DATA_ROOT, CACHE_DIR,
                                prepare_data=PREPARE_DATA)
env.report(PROFILE, runner.seeds)
toy = runner.toy
WEIGHTS = runner.weights_source()

# %%
runner.coco_protocol, runner.resolution = COCO_PROTOCOL, RESOLUTION
visual = text = "toy-clip-vit" if toy else "clip-vit-l-14"
datasets = ["pascal"] if toy else ["pascal", "coco"]
rows = []
for dataset in datasets:
    outs = runner.run_all([e for f in runner.folds for e in Experiment(visual, text, fold=f, dataset=dataset).with_seeds(runner.seeds)])
    label = "PASCAL" if dataset == "pascal" else "COCO"
    sup = "5" if dataset == "pascal" else "20"
    cols = [f"{label} {sup}^{f}" for f in range(4)] + [f"{label} mIoU"]
    record_folds(record, outs, "Table 2", "Fusioner ViT-L/14", cols, WEIGHTS, visual=visual, text=text,
                 dataset="toy folds" if toy else dataset, coco_protocol=COCO_PROTOCOL, resolution=RESOLUTION)
    for o in outs:
        rows.append({"dataset": label, "fold": o.experiment.fold, "seed": o.experiment.seed,
                     "mIoU": 100 * o.miou, "FB-IoU": 100 * o.fb_iou})
ours = pd.DataFrame(rows)
ours.pivot_table(index=["dataset", "fold"], columns="seed", values="mIoU").round(1)

# %% [markdown]
# ## Paper and ours
#
# The paper's whole table, with our row filled in where this profile computed it.

# %%
full = results.compare([record.to_dict()], ["fusioner"], profile=PROFILE)
full = full[full["table"] == "Table 2"]
full.pivot(index="row", columns="column", values="paper_value").round(1)

# %%
paper_vs_ours(record, "Table 2", PROFILE).unstack("column").reindex(columns=["paper", "ours ± sd (n)", "delta"], level=0)

# %%
import seaborn as sns

fig, ax = plt.subplots(figsize=(6, 3))
sns.barplot(data=ours, x="fold", y="mIoU", hue="dataset", errorbar="sd", ax=ax)
sns.stripplot(data=ours, x="fold", y="mIoU", hue="dataset", dodge=True, palette="dark:k", size=3, legend=False, ax=ax)
paper = full[(full["row"] == "Fusioner ViT-L/14") & full["column"].str.startswith("PASCAL 5")]
ax.plot(range(4), paper["paper_value"].values, "k_", markersize=20, label="paper (PASCAL-5i)")
ax.set_ylabel("mIoU on unseen classes (%)")
ax.set_title(f"Fusioner per fold ({PROFILE}, {WEIGHTS} weights; mean ± sd over seeds, dots: seeds)", fontsize=8)
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Per-class IoU of the unseen classes
#
# Which unseen classes the model segments well, fold by fold (fold protocol: foreground IoU summed over
# each class's episodes).

# %%
per_class = []
for o in runner.run_all([e for f in runner.folds for e in Experiment(visual, text, fold=f, dataset=datasets[0]).with_seeds(runner.seeds)]):
    names = runner.test_set(o.experiment).class_names
    per_class += [{"fold": o.experiment.fold, "seed": o.experiment.seed, "class": names[c], "IoU": 100 * v}
                  for c, v in o.per_class.items()]
pc = pd.DataFrame(per_class)
order = pc.groupby("class")["IoU"].mean().sort_values().index
fig, ax = plt.subplots(figsize=(6, 0.18 * len(order) + 1))
sns.barplot(data=pc, y="class", x="IoU", order=order, hue="fold", dodge=False, errorbar="sd", palette="tab10", ax=ax)
ax.set_xlabel("IoU (%), mean ± sd over seeds")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## What the `paper` profile costs
#
# The paper's schedule is 510 epochs (10 warm-up + 500 cosine) of the fold's training pairs at batch 32;
# the official loop has no end, so this is the closest bounded reading. The steps per fold follow from
# HSNet's pair counts. Multiply by the seconds per step that `ovnb benchmark fusioner-cache --configs
# clip-l` prints on your GPU (cached column: the frozen CLIP features are computed once and reused,
# which holds when pixel augmentations are off; with them, the uncached column applies). No GPU time
# is stated here; it depends on the GPU.

# %%
from ovnb.reproduce.fusioner import paper_schedule

paper_schedule()

# %%
record.save()
runner.close()  # the training processes, if any
print(f"saved {record.notebook} ({PROFILE}) in {record.wall_time_s:.0f} s")
