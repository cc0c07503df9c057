"""Prepare ``gpt4o-lists`` under ``--root`` (default ``data``): a thin entry point to ``ovnb data prepare gpt4o-lists``.

    python data_scripts/gpt4o_lists.py --root data

The logic ships with the package (``ovnb/data/prepare/gpt4o_lists.py``), so a pip install can run it too.
"""

import sys

from ovnb.data.prepare import main

if __name__ == "__main__":
    sys.exit(main("gpt4o-lists"))
