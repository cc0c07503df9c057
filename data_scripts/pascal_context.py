"""Prepare ``pascal-context`` under ``--root`` (default ``data``): a thin entry point to ``ovnb data prepare pascal-context``.

    python data_scripts/pascal_context.py --root data

The logic ships with the package (``ovnb/data/prepare/pascal_context.py``), so a pip install can run it too.
"""

import sys

from ovnb.data.prepare import main

if __name__ == "__main__":
    sys.exit(main("pascal-context"))
