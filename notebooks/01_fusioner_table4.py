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
# # Fusioner, Table 4: ablation of the fusion module and the visual decoder
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ovnb/ovnb/blob/main/notebooks/01_fusioner_table4.ipynb)
#
# **Real data on Colab:** set `PROFILE = "quick"` and `PREPARE_DATA = True` in the parameters cell and
# the notebook prepares what it misses under `DATA_ROOT` (it prints what it downloads, how large, and
# where), or prepare it first in a cell: `!ovnb data prepare voc2012 fewshot-splits --root data`.
#
# Table 4 removes one component at a time from the best model of Table 1 (CLIP-L with CLIP-L): B0 has
# both the fusion module and the visual decoder; B1 drops the decoder (the fused patch tokens are
# upsampled bilinearly); B2 drops the fusion module (frozen tokens go straight into the decoder, text
# embeddings are used as they are); B3 drops both and has no trainable parameter at all. The paper's
# ordering: B0 > B1 > B2 > B3, with the fusion module the most important part.
#
# `toy`: the same four configurations with the toy CLIP on the toy folds.

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
from ovnb.claims import check_order
from ovnb.reproduce.fusioner import Experiment, paper_vs_ours, record_folds, start_notebook, unit_values

runner, record = start_notebook("01_fusioner_table4", PROFILE, SEEDS, DATA_ROOT, CACHE_DIR,
                                prepare_data=PREPARE_DATA)
env.report(PROFILE, runner.seeds)
toy = runner.toy
WEIGHTS = runner.weights_source()

# %%
visual = text = "toy-clip-vit" if toy else "clip-vit-l-14"
ABLATION = {"B0-CLIP-L": ("early", True), "B1-CLIP-L": ("early", False),
            "B2-CLIP-L": ("none", True), "B3-CLIP-L": ("none", False)}
rows, per_unit = [], {}
for row, (fusion, decoder) in ABLATION.items():
    outs = runner.run_all([e for f in runner.folds for e in
                           Experiment(visual, text, fusion=fusion, decoder=decoder, fold=f).with_seeds(runner.seeds)])
    means = record_folds(record, outs, "Table 4", row, ["5^0", "5^1", "5^2", "5^3", "mIoU"], WEIGHTS,
                         visual=visual, text=text, dataset="toy folds" if toy else "PASCAL-5i")
    per_unit[row] = unit_values(outs)
    params = runner.build(Experiment(visual, text, fusion=fusion, decoder=decoder)).trainable_parameters()
    rows.append({"row": row, "fusion": fusion != "none", "decoder": decoder, "trainable params": params,
                 **{f"5^{f} (mean of seeds)": v for f, v in per_unit[row].groupby(level="fold").mean().items()},
                 "mIoU, mean ± sd (n seeds)": str(results.aggregate(means))})
ours = pd.DataFrame(rows).set_index("row")
ours.round(1)

# %% [markdown]
# B3 has no trainable parameter, so it does not depend on the training seed: it is evaluated once and
# its value stands for every seed (its sd is 0).

# %%
table = paper_vs_ours(record, "Table 4", PROFILE)
table.unstack("column").reindex(columns=["paper", "ours ± sd (n)", "delta"], level=0)

# %%
means = table.reset_index()
means = means[means["column"] == "mIoU"].set_index("row")
ax = means[["paper", "ours"]].plot.bar(figsize=(6, 3), rot=0, yerr={"ours": means["sd"].fillna(0)})
ax.set_ylabel("mean mIoU (%)")
ax.set_title(f"Table 4 ablation (ours: {PROFILE}, {WEIGHTS} weights, mean ± sd over seeds)", fontsize=9)
plt.show()

# %% [markdown]
# ## Does the paper's ordering hold?
#
# The paper's ranking of the rows, B0 > B1 > B2 > B3, judged on the paired per-(seed, fold) values
# by `ovnb.claims.check_order` (each adjacent pair must hold, Bonferroni-adjusted intervals). The
# sentence is generated from the result.

# %%
paper_order = means["paper"].sort_values(ascending=False).index.tolist()
ablation = check_order(per_unit, paper_order, units="seed × fold pairs", unit_label="mIoU points")
record.claim(ablation, visual=visual, text=text)
ablation.frame().round(2)

# %%
print(ablation.sentence())

# %%
record.save()
runner.close()  # the training processes, if any
print(f"saved {record.notebook} ({PROFILE}) in {record.wall_time_s:.0f} s")
