"""The ordering helper on synthetic numbers whose answer is known."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ovnb.claims import check_order, t_interval


def units(values, seeds=3, folds=4):
    index = pd.MultiIndex.from_product([range(seeds), range(folds)], names=["seed", "fold"])
    return pd.Series(np.asarray(values, dtype=float).ravel(), index=index)


def test_a_clear_win_holds():
    rng = np.random.default_rng(0)
    fold_level = np.array([30.0, 45.0, 20.0, 38.0])  # folds differ a lot; pairing removes it
    base = fold_level + rng.normal(0, 1, (3, 4))
    better = base + 5 + rng.normal(0, 1, (3, 4))
    result = check_order({"early": units(better), "late": units(base)})
    assert result.verdict == "holds"
    (pair,) = result.pairs
    assert pair.n == 12 and pair.low > 0 and 3 < pair.mean < 7
    assert "holds" in result.sentence() and "early > late" in result.sentence()


def test_a_clear_reversal_is_reversed():
    rng = np.random.default_rng(1)
    base = rng.normal(40, 8, (3, 4))
    result = check_order({"early": units(base - 4 + rng.normal(0, 0.5, (3, 4))), "late": units(base)})
    assert result.verdict == "reversed" and result.pairs[0].high < 0


def test_pure_noise_is_within_noise_and_false_alarms_stay_rare():
    rng = np.random.default_rng(2)
    base = rng.normal(40, 8, (3, 4))
    result = check_order({"a": units(base + rng.normal(0, 2, (3, 4))), "b": units(base + rng.normal(0, 2, (3, 4)))})
    assert result.verdict == "within noise"
    # over many noise-only claims the helper calls a winner at about its alpha, not more
    alarms = 0
    for _ in range(2000):
        d = rng.normal(0, 3, 12)
        alarms += check_order({"a": units(d), "b": units(np.zeros(12))}).verdict != "within noise"
    assert alarms / 2000 < 0.075


def test_interval_agrees_with_scipys_paired_t_test():
    rng = np.random.default_rng(3)
    for _ in range(50):
        a, b = rng.normal(10, 3, 6), rng.normal(11, 3, 6)
        result = check_order({"a": dict(enumerate(a)), "b": dict(enumerate(b))}, alpha=0.05)
        p = stats.ttest_rel(a, b).pvalue
        pair = result.pairs[0]
        assert (pair.verdict != "within noise") == (p < 0.05)
        assert pair.mean == pytest.approx(float(np.mean(a - b)))


def test_closed_form_interval():
    # differences 1, 2, 3: mean 2, sd 1, half width t(0.975, 2) / sqrt(3)
    mean, sd, low, high = t_interval([1.0, 2.0, 3.0], 0.95)
    half = 4.302652729911275 / np.sqrt(3)
    assert (mean, sd) == (2.0, 1.0)
    assert low == pytest.approx(2 - half) and high == pytest.approx(2 + half)


def test_chain_needs_every_pair_and_uses_bonferroni():
    rng = np.random.default_rng(4)
    b3 = rng.normal(10, 1, 12)
    chain = {"B0": b3 + 30, "B1": b3 + 20, "B2": b3 + 10, "B3": b3}
    noisy = {k: units(v + rng.normal(0, 0.5, 12)) for k, v in chain.items()}
    result = check_order(noisy, ["B0", "B1", "B2", "B3"])
    assert result.verdict == "holds" and [p.verdict for p in result.pairs] == ["holds"] * 3
    assert all(p.level == pytest.approx(1 - 0.05 / 3) for p in result.pairs)
    # one tied pair makes the chain within noise; one reversed pair makes it reversed
    tied = dict(noisy, B1=units(chain["B2"] + rng.normal(0, 3, 12)))
    assert check_order(tied, ["B0", "B1", "B2", "B3"]).pairs[1].verdict == "within noise"
    assert check_order(tied, ["B0", "B1", "B2", "B3"]).verdict == "within noise"
    swapped = check_order(noisy, ["B0", "B2", "B1", "B3"])
    assert swapped.verdict == "reversed" and swapped.pairs[1].verdict == "reversed"


def test_a_single_run_is_within_noise():
    result = check_order({"a": {0: 50.0}, "b": {0: 10.0}})
    assert result.verdict == "within noise" and result.pairs[0].n == 1
    assert "at least 2" in result.sentence()


def test_units_must_pair_up():
    with pytest.raises(ValueError, match="share their units"):
        check_order({"a": {(0, 0): 1.0, (0, 1): 2.0}, "b": {(0, 0): 1.0, (1, 1): 2.0}})
    with pytest.raises(ValueError, match="no values for"):
        check_order({"a": {0: 1.0}}, ["a", "b"])
    with pytest.raises(ValueError, match="at least two"):
        check_order({"a": {0: 1.0}})


def test_judge_pairs_pairs_seeds_records_and_skips_undefined_values(build_dir, capsys):
    import pandas as pd

    from ovnb import results
    from ovnb.claims import judge_pairs

    frame = pd.DataFrame([{"model": m, "seed": s, "u": v, "h": h}
                          for m, vals in (("Ours", (10.0, 12.0, 11.0)), ("FCN", (5.0, 6.0, 7.0)))
                          for s, v, h in zip((0, 1, 2), vals, (1.0, float("nan"), 2.0))])
    rec = results.RunRecord("02_demo", profile="toy", seeds=[0, 1, 2])
    judged = judge_pairs(frame, "model", [("Ours", "FCN", "u"), ("Ours", "FCN", "h")], rec, table="Table 2")
    assert [j.verdict for j in judged] == ["holds"] and judged[0].pairs[0].mean == pytest.approx(5.0)  # (5+6+4)/3
    assert len(rec.claims) == 1 and rec.claims[0]["context"] == {"table": "Table 2"}
    out = capsys.readouterr().out
    assert out.startswith("Table 2: ") and "Ours > FCN on h not judged" in out
