import os

import pytest

# Tests never reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def build_dir(tmp_path, monkeypatch):
    """Run records, executed notebooks and caches go to a temporary build folder."""
    path = tmp_path / "build"
    monkeypatch.setenv("OVNB_BUILD_DIR", str(path))
    return path
