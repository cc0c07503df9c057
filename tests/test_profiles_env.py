"""Profiles, environment report and device choice."""

import io

import pytest
import torch

from ovnb import env, profiles


def test_all_profiles_load():
    assert profiles.names() == ["smoke", "toy", "quick", "paper"]
    for name in profiles.names():
        p = profiles.load(name)
        assert p.name == name
    assert profiles.load("toy").weights == "toy" and profiles.load("paper").weights == "released"
    assert profiles.load("smoke").offline and not profiles.load("quick").offline


def test_unknown_profile_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown profile 'fast'.*smoke, toy, quick, paper"):
        profiles.load("fast")


def test_malformed_profile_names_the_field(tmp_path, monkeypatch):
    (tmp_path / "odd.yaml").write_text("name: odd\ndescription: x\nweights: imagenet\ndata: toy\noffline: true\n"
                                       "train_iterations: 1\neval_images: 1\nbatch_size: 1\n")
    (tmp_path / "extra.yaml").write_text("name: extra\ncolour: red\n")
    monkeypatch.setattr(profiles, "PROFILE_DIR", tmp_path)
    with pytest.raises(ValueError, match="weights must be 'toy' or 'released'"):
        profiles.load("odd")
    with pytest.raises(ValueError, match="unknown field.*colour"):
        profiles.load("extra")


def test_device_order_and_explicit_requests(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert env.device().type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert env.device().type == "mps"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert env.device() == torch.device("cpu")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        env.device("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        env.device("xla")


def test_offline_flags(monkeypatch):
    for flag in env.OFFLINE_FLAGS:
        monkeypatch.delenv(flag, raising=False)
    env.set_offline(True)
    assert env.is_offline()
    env.set_offline(False)
    assert not any(__import__("os").environ.get(f) for f in env.OFFLINE_FLAGS)
    env.set_offline(True)


def test_report_prints_versions_device_profile_and_seed():
    out = io.StringIO()
    info = env.report("smoke", 7, file=out)
    text = out.getvalue()
    for key in ("python", "torch", "open_clip_torch", "timm", "transformers", "ovnb", "device", "git sha"):
        assert key in text
    assert "smoke" in text and "7" in text
    assert info["profile"] == "smoke" and info["seed"] == 7 and info["packages"]["torch"]


@pytest.mark.parametrize("field,value,match", [("seeds", [], "non-empty"), ("seeds", [0, 0], "repeat"),
                                               ("seeds", ["a"], "integers"), ("workers", 0, "workers")])
def test_bad_seeds_and_workers_are_refused(field, value, match):
    import dataclasses

    toy = profiles.load("toy")
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(toy, **{field: tuple(value) if field == "seeds" else value})


def test_toy_runs_three_seeds_and_smoke_one():
    assert len(profiles.load("toy").seeds) >= 3
    assert profiles.load("smoke").seeds == (0,)
