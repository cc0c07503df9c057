"""Profiles, environment report and device choice."""

import io

import pytest
import torch

from ovnb import env, profiles


def test_all_profiles_load():
    assert profiles.names() == ["smoke", "dryrun", "toy", "quick", "paper"]
    for name in profiles.names():
        p = profiles.load(name)
        assert p.name == name
    assert profiles.load("toy").weights == "toy" and profiles.load("paper").weights == "released"
    assert profiles.load("smoke").offline and not profiles.load("quick").offline


def test_unknown_profile_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown profile 'fast'.*smoke, dryrun, toy, quick, paper"):
        profiles.load("fast")


def test_malformed_profile_names_the_field(tmp_path, monkeypatch):
    (tmp_path / "odd.yaml").write_text("name: odd\ndescription: x\nweights: imagenet\ndata: toy\noffline: true\n"
                                       "train_iterations: 1\neval_images: 1\nbatch_size: 1\n")
    (tmp_path / "extra.yaml").write_text("name: extra\ncolour: red\n")
    monkeypatch.setattr(profiles, "PROFILE_DIR", tmp_path)
    with pytest.raises(ValueError, match=r"weights must be one of \('toy', 'released', 'random'\), got 'imagenet'"):
        profiles.load("odd")
    with pytest.raises(ValueError, match="unknown field.*colour"):
        profiles.load("extra")


def test_fixtures_replace_real_data_only():
    import dataclasses

    toy = profiles.load("toy")
    with pytest.raises(ValueError, match="fixtures replace real data; set data: real"):
        dataclasses.replace(toy, fixtures=True)
    assert toy.pretrained and profiles.load("paper").pretrained and not profiles.load("dryrun").pretrained


def test_a_fixture_profile_reads_fixtures_made_in_the_build_folder(build_dir, tmp_path):
    from ovnb.data import fewshot, fixtures

    user_data = tmp_path / "my-data"
    assert fixtures.data_root(profiles.load("quick"), user_data) == user_data
    root = fixtures.data_root(profiles.load("dryrun"), user_data)
    assert root == build_dir / "fixtures" and not user_data.exists(), "a user's DATA_ROOT is never written"
    assert len(fewshot.pascal_episodes(root, 3, "val")) > 0
    stamp = (root / ".complete").stat().st_mtime_ns
    assert fixtures.data_root(profiles.load("dryrun")) == root and (root / ".complete").stat().st_mtime_ns == stamp


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
