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
# # Fusioner, Table 3: robustness on Mosaic-4
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ovnb/ovnb/blob/main/notebooks/01_fusioner_table3.ipynb)
#
# **Real data on Colab:** set `PROFILE = "quick"` and `PREPARE_DATA = True` in the parameters cell and
# the notebook prepares what it misses under `DATA_ROOT` (it prints what it downloads, how large, and
# where), or prepare it first in a cell: `!ovnb data prepare fss1000 fewshot-splits --root data`.
#
# Mosaic-4 (Sec. 4.1, 4.4) tests whether a model segments *what the text asks for* or just the salient
# objects: each test image is a 2×2 mosaic of four FSS-1000 test images of four different classes, and
# all four class names are queried at once (|W| = 4), during training on FSS-1000 and at test. A model
# that ignores the text cannot tell the four objects apart. The paper compares Fusioner with LSeg (a
# late-fusion model) on mIoU and FB-IoU.
#
# `toy`: mosaics of four single toy objects; training mosaics use the seen things of fold 0 and test
# mosaics its unseen things (FSS-1000's test classes are disjoint from its training classes too). The
# LSeg row is another paper's model; we show our late-fusion configuration beside Fusioner as a
# like-for-like LSeg-style baseline, without claiming LSeg's cells.

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


# %%
import matplotlib.pyplot as plt
import pandas as pd
import torch

from ovnb import env, results
from ovnb.reproduce.fusioner import Experiment, paper_vs_ours, record_folds, start_notebook

runner, record = start_notebook("01_fusioner_table3", PROFILE, SEEDS, DATA_ROOT, CACHE_DIR,
                                prepare_data=PREPARE_DATA)
env.report(PROFILE, runner.seeds)
toy = runner.toy
WEIGHTS = runner.weights_source()

# %%
visual = text = "toy-clip-vit" if toy else "clip-vit-l-14"
MODELS = {"early": "Fusioner (early fusion)", "late": "late fusion (LSeg-style, ours)"}
experiments = {f: Experiment(visual, text, fusion=f, fold=0, dataset="fss").with_seeds(runner.seeds) for f in MODELS}
runner.run_all([e for es in experiments.values() for e in es])  # train what is missing, side by side
outcomes = {f: runner.run_all(es) for f, es in experiments.items()}
dataset = "toy mosaics" if toy else "Mosaic-4"
for o in outcomes["early"]:
    for column, value in (("mIoU", o.miou), ("FB-IoU", o.fb_iou)):
        record.add(100 * value, paper="fusioner", table="Table 3", row="Fusioner", column=column, weights=WEIGHTS,
                   seed=o.experiment.seed, visual=visual, text=text, dataset=dataset)
for o in outcomes["late"]:
    record.metric("table3_late_fusion_miou", 100 * o.miou, seed=o.experiment.seed, note="our LSeg-style late fusion, not LSeg")
    record.metric("table3_late_fusion_fb_iou", 100 * o.fb_iou, seed=o.experiment.seed, note="our LSeg-style late fusion, not LSeg")
rows = [{"model": MODELS[f], "seed": o.experiment.seed, "mIoU": 100 * o.miou, "FB-IoU": 100 * o.fb_iou, "train s": o.train_s}
        for f, outs in outcomes.items() for o in outs]
pd.DataFrame(rows).groupby("model")[["mIoU", "FB-IoU"]].agg(lambda v: str(results.aggregate(v)))

# %% [markdown]
# The paper's claim: early fusion segments several queried classes at once far better than late
# fusion (Fusioner against LSeg in the table above). Judged here on the paired seeds (one fold, so
# n = seeds):

# %%
from ovnb.claims import check_order
from ovnb.reproduce.fusioner import unit_values

mosaic_claim = check_order({MODELS[f]: unit_values(outs) for f, outs in outcomes.items()}, units="seeds",
                           unit_label="mIoU points")
record.claim(mosaic_claim, dataset=dataset)
print(mosaic_claim.sentence())

# %%
full = results.compare([record.to_dict()], ["fusioner"], profile=PROFILE)
full = full[full["table"] == "Table 3"].copy()
full["ours ± sd (n)"] = [results.format_spread(m, s, n) for m, s, n in zip(full["ours"], full["ours_sd"], full["n"])]
side = full.pivot(index="row", columns="column", values="paper_value").add_suffix(" (paper)")
side.join(full.pivot(index="row", columns="column", values="ours ± sd (n)").add_suffix(" (ours)")).round(1)

# %% [markdown]
# ## Four queries, four objects
#
# Each colour is one queried class; the ground truth and both models' predictions on a few test mosaics.

# %%
import numpy as np

test = runner.test_set(Experiment(visual, text, fold=0, dataset="fss"))
models = {f: runner.run(Experiment(visual, text, fusion=f, fold=0, dataset="fss", seed=runner.seeds[0]), keep_model=True).model
          for f in MODELS}
colours = np.array([plt.cm.tab10(k)[:3] for k in range(4)] + [(0.1, 0.1, 0.1)])
fig, axes = plt.subplots(4, 4, figsize=(9, 9.5))
for k in range(4):
    s = test[k % len(test)]
    axes[0, k].imshow(s["image"].permute(1, 2, 0))
    axes[0, k].set_title("\n".join(s["class_names"][:2]) + "\n" + "\n".join(s["class_names"][2:]), fontsize=6)
    axes[1, k].imshow(colours[s["mask"].clamp(max=4)])
    for r, fusion in ((2, "early"), (3, "late")):
        m = models[fusion]
        labels = m.predict(m.segment(s["image"][None], s["class_names"]))[0]
        axes[r, k].imshow(colours[(labels - 1) % 5])
for r, label in enumerate(["mosaic", "ground truth", "Fusioner", "late fusion"]):
    axes[r, 0].set_ylabel(label)
for ax in axes.flat:
    ax.set_xticks([]), ax.set_yticks([])
plt.tight_layout()
plt.show()

# %%
record.save()
runner.close()  # the training processes, if any
print(f"saved {record.notebook} ({PROFILE}) in {record.wall_time_s:.0f} s")
