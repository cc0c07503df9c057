"""Prepare ``fewshot-splits`` under ``--root`` (default ``data``): a thin entry point to ``ovnb data prepare fewshot-splits``.

    python data_scripts/fewshot_splits.py --root data

The logic ships with the package (``ovnb/data/prepare/fewshot_splits.py``), so a pip install can run it too.
"""

import sys

from ovnb.data.prepare import main

if __name__ == "__main__":
    sys.exit(main("fewshot-splits"))
