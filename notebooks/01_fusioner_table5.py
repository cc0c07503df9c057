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
# # Fusioner, Table 5: transfer from COCO-20i to PASCAL VOC
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ovnb/ovnb/blob/main/notebooks/01_fusioner_table5.ipynb)
#
# Table 5 trains Fusioner on COCO-20i fold i and tests it, zero-shot, on PASCAL VOC after removing the
# classes seen in that training split (the VOC classes among fold i's unseen COCO classes). The other
# rows are few-shot methods (which see 1 or 5 labelled examples) and LSeg; they stay paper-only here.
#
# `toy`: the models trained on the toy folds (the same ones as Table 2) are tested on the **shifted**
# toy world - other object sizes, a shifted palette, rotated shapes, coarser textures - on the fold's
# unseen classes: a cross-dataset shift with the class-split of the training fold.

# %%
# Install cell: runs only on Colab (elsewhere `make setup` has installed everything).
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "ovnb[book] @ git+https://github.com/ovnb/ovnb"], check=True)

# %% tags=["parameters"]
PROFILE = "toy"  # toy | smoke | quick | paper
SEED = 0
DATA_ROOT = "data"  # where data_scripts/ prepare the real datasets
CACHE_DIR = "build/cache"  # frozen-feature cache


# %%
import matplotlib.pyplot as plt
import pandas as pd
import torch

from ovnb import env
from ovnb.reproduce.fusioner import Experiment, paper_vs_ours, record_folds, start_notebook
from ovnb.viz import episode_grid

env.report(PROFILE, SEED)
runner, record = start_notebook("01_fusioner_table5", PROFILE, SEED, DATA_ROOT, CACHE_DIR)
toy = runner.toy
WEIGHTS = runner.weights_source()

# %%
visual = text = "toy-clip-vit" if toy else "clip-vit-l-14"
train_on = "pascal" if toy else "coco"  # toy: the toy folds stand in for COCO-20i's
rows, outs = [], []
for f in range(4):
    e = Experiment(visual, text, fold=f, dataset=train_on)
    same = runner.run(e)
    shifted = runner.run(e, evaluate_on="pascal-transfer")
    outs.append(shifted)
    rows.append({"fold": f, "test on the training domain": 100 * same.miou, "test after the shift": 100 * shifted.miou})
record_folds(record, outs, "Table 5", "Fusioner ViT-L zero-shot", ["20^0", "20^1", "20^2", "20^3", "mIoU"],
             WEIGHTS, visual=visual, text=text, dataset="toy folds -> shifted toy world" if toy else "COCO-20i -> VOC")
ours = pd.DataFrame(rows).set_index("fold")
ours.loc["mean"] = ours.mean()
ours.round(1)

# %%
paper_vs_ours(record, "Table 5", PROFILE).unstack("column").reindex(columns=["paper", "ours", "delta"], level=0)

# %%
ax = ours.drop(index="mean").plot.bar(figsize=(6, 3), rot=0)
ax.set_ylabel("mIoU on unseen classes (%)")
ax.set_title(f"cross-domain transfer ({PROFILE}, {WEIGHTS} weights)")
plt.show()

# %% [markdown]
# ## The shift, and what the model makes of it

# %%
e = Experiment(visual, text, fold=0, dataset=train_on)
model = runner.run(e, evaluate_on="pascal-transfer", keep_model=True).model
test = runner.test_set(e, "pascal-transfer")
episode_grid([test[3 * k % len(test)] for k in range(5)], {"Fusioner": model}, image_label="shifted image");

# %%
record.save()
print(f"saved {record.notebook} ({PROFILE}) in {record.wall_time_s:.0f} s")
