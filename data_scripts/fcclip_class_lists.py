"""Prepare ``fcclip-class-lists`` under ``--root`` (default ``data``): a thin entry point to ``ovnb data prepare fcclip-class-lists``.

    python data_scripts/fcclip_class_lists.py --root data

The logic ships with the package (``ovnb/data/prepare/fcclip_class_lists.py``), so a pip install can run it too.
"""

import sys

from ovnb.data.prepare import main

if __name__ == "__main__":
    sys.exit(main("fcclip-class-lists"))
