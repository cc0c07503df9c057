"""Prepare ``cityscapes-19`` under ``--root`` (default ``data``): a thin entry point to ``ovnb data prepare cityscapes-19``.

    python data_scripts/cityscapes.py --root data

The logic ships with the package (``ovnb/data/prepare/cityscapes.py``), so a pip install can run it too.
"""

import sys

from ovnb.data.prepare import main

if __name__ == "__main__":
    sys.exit(main("cityscapes-19"))
