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
# # About this book
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ovnb/ovnb/blob/main/notebooks/00_about_this_book.ipynb)
#
# This notebook shows the conventions every chapter follows, the registry of the four papers' tables,
# and the data behind the [reproduction status](../_generated/status) page. It reproduces no paper
# number itself.
#
# **Every notebook opens the same way**:
# 1. a title naming the paper and the tables it reproduces, with a Colab badge;
# 2. an install cell that does something only on Colab;
# 3. a `parameters` cell that papermill overrides (`PROFILE`, `SEEDS` or `SEED`, `DATA_ROOT`, `CACHE_DIR`, ...);
# 4. imports and `ovnb.env.report()`, so an executed copy always says what produced its numbers.

# %%
# Install cell: runs only on Colab (elsewhere `make setup` has installed everything).
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "ovnb[book] @ git+https://github.com/ovnb/ovnb"], check=True)

# %% tags=["parameters"]
PROFILE = "toy"  # toy | smoke | dryrun | quick | paper
SEED = 0
DATA_ROOT = "data"  # where the real datasets are prepared (`ovnb data prepare NAME --root data`)
CACHE_DIR = "build/cache"  # frozen-feature cache

# %%
import matplotlib.pyplot as plt
import pandas as pd

import ovnb
from ovnb import env, papers, profiles, results

profile = profiles.load(PROFILE)
env.report(PROFILE, SEED);

# %% [markdown]
# ## Profiles
#
# A profile fixes the size of a run: which weights the frozen encoders load (`toy` checkpoints embedded
# in the package, `released` public weights, or `random` ones for the real architectures in the dry
# run), which data (the toy world, the real benchmarks, or fixture datasets in their layouts), and how
# long trained methods train. The same notebook code runs in every profile: a notebook asks "toy world
# or real data?", never which profile it is in, so `dryrun` executes exactly what `quick` and `paper` do.

# %%
pd.DataFrame([vars(profiles.load(n)) for n in profiles.names()]).set_index("name").drop(columns="extra")

# %% [markdown]
# ## The papers' tables, as data
#
# Every numeric table of the four papers is transcribed once into `ovnb/papers/<paper>.yaml`: the table
# id as the paper names it, row and column labels, the value, its unit, and the protocol knobs the
# number depends on (dataset, fold or split, backbone, resolution, metric convention). The test suite
# re-reads every row against the papers' text. `papers.load(name)` returns one record per cell.

# %%
registry = pd.DataFrame([
    {"paper": papers.TITLES[c.paper], "table": c.table, "has value": c.value is not None}
    for c in papers.load_all()
])
counts = registry.groupby(["paper", "table"], sort=False)["has value"].agg(cells="size", values="sum")
counts

# %%
per_paper = registry.groupby("paper", sort=False)["has value"].sum()
per_paper.rename("cells with a value")

# %% [markdown]
# One cell carries everything needed to reproduce it. Here is Fusioner's ablation (Table 4), rebuilt from
# the registry, and the knobs of its headline cell:

# %%
fusioner_t4 = pd.DataFrame([vars(c) for c in papers.load("fusioner") if c.table == "Table 4"])
fusioner_t4.pivot(index="row", columns="column", values="value")[["5^0", "5^1", "5^2", "5^3", "mIoU"]]

# %%
papers.cell("fusioner", "Table 4", "B0-CLIP-L", "mIoU").knobs

# %% [markdown]
# ## Run records and the status page
#
# A chapter notebook records each number it reproduces with `ovnb.results.RunRecord`, naming the paper
# cell, the profile and the weights source (`released`, `retrained`, `toy` or `random`). `results.compare()` joins
# all records with the registry; the status page is drawn from that frame. Cells nobody has reproduced
# yet show as `not yet`. A cell computed over several training seeds (three in `toy`) keeps every
# seed's value; `compare()` gives their mean, sd and n, and the page shows `mean ± sd (n)`. A paper's
# ordering claim ("early > late") is judged by `ovnb.claims.check_order` against that noise and
# recorded with its verdict: `holds`, `reversed` or `within noise`.

# %%
status = results.compare()
results.status_summary(status)

# %%
ax = results.plot_status(status)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## This notebook's own record
#
# Even this notebook writes a run record: it reproduces no paper cell, but it records how many cells the
# registry holds, so the environment page can show its wall time like any other notebook's.

# %%
record = results.RunRecord("00_about_this_book", profile=PROFILE, seeds=SEED)
record.metric("paper_cells_with_value", int(registry["has value"].sum()))
record.save()
