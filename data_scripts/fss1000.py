"""Prepare ``fss1000`` under ``--root`` (default ``data``): a thin entry point to ``ovnb data prepare fss1000``.

    python data_scripts/fss1000.py --root data

The logic ships with the package (``ovnb/data/prepare/fss1000.py``), so a pip install can run it too.
"""

import sys

from ovnb.data.prepare import main

if __name__ == "__main__":
    sys.exit(main("fss1000"))
