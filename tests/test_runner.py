"""The notebook runner: executed copies go to build/, failures are collected, not fatal."""

import json

import pytest

from ovnb import cli, runner

GOOD = '''# %% tags=["parameters"]
PROFILE = "toy"
SEED = 0

# %%
print("profile is", PROFILE)
'''
BAD = '''# %% tags=["parameters"]
PROFILE = "toy"

# %%
raise ValueError("deliberate failure in cell 2")
'''


def test_failures_are_reported_and_the_rest_still_run(tmp_path, build_dir, capsys):
    src = tmp_path / "nbs"
    src.mkdir()
    (src / "01_bad.py").write_text(BAD)
    (src / "02_good.py").write_text(GOOD)
    before = sorted(p.name for p in src.iterdir())

    code = cli.main(["run", str(src / "01_bad.py"), str(src / "02_good.py"), "--profile", "smoke", "-q"])
    out = capsys.readouterr().out
    assert code == 1
    assert "1 notebook(s) failed: 01_bad" in out and "deliberate failure" in out

    executed = build_dir / "executed" / "smoke"
    assert (executed / "02_good.ipynb").is_file() and (executed / "01_bad.ipynb").is_file()
    good = json.loads((executed / "02_good.ipynb").read_text())
    outputs = [o for c in good["cells"] for o in c.get("outputs", [])]
    assert any("profile is smoke" in "".join(o.get("text", "")) for o in outputs), "papermill injected PROFILE"
    runs = runner.load_runs("smoke")
    assert runs["01_bad"]["status"] == "failed" and runs["02_good"]["status"] == "ok"
    # the error names the cell: its index and its first line of code
    assert 'cell 2 `raise ValueError("deliberate failure in cell 2")`: ValueError' in runs["01_bad"]["error"]
    assert runs["02_good"]["wall_time_s"] > 0
    assert sorted(p.name for p in src.iterdir()) == before, "nothing is written next to the sources"


def test_unknown_notebook_and_profile_are_clear_errors(build_dir):
    import pytest

    with pytest.raises(SystemExit, match="no notebook 'nope'.*00_about_this_book"):
        cli.main(["run", "nope", "--profile", "smoke", "-q"])
    with pytest.raises(SystemExit, match="unknown profile 'huge'"):
        cli.main(["run", "00_about_this_book", "--profile", "huge", "-q"])


def test_parameters_are_checked_against_the_parameters_cell_before_anything_runs(tmp_path):
    source = tmp_path / "01_demo.py"
    source.write_text('# %% tags=["parameters"]\nPROFILE = "toy"\nSEED = 0\nSEEDS: list[int] | None = None\n'
                      'RATE = 0.5\nNAME = "x"\nGRID = None\n\n# %%\nprint(SEED)\n')
    assert runner.notebook_parameters(source)["SEEDS"] == (None, "list[int] | None")
    for good in ({"SEED": 3}, {"SEEDS": [0, 1, 2]}, {"SEEDS": None}, {"RATE": 1}, {"GRID": [("a", 1)]}):
        runner.check_parameters([source], good)
    for bad, match in (({"SEED": "abc"}, r"SEED='abc' \(str\).*takes int"), ({"SEED": True}, "takes int"),
                       ({"SEEDS": [0, "a"]}, r"takes list\[int\] \| None"), ({"RATE": "fast"}, "takes float"),
                       ({"SEDE": 1}, "'SEDE' is not a parameter")):
        with pytest.raises(ValueError, match=match):
            runner.check_parameters([source], bad)
