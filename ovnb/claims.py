"""Ordering claims ("early > late", "B0 > B1 > B2 > B3") judged against their noise.

A paper claim about an ordering is checked on the values our runs computed, one value per
**unit** (a training seed, or a (seed, fold) pair where the folds pair up) and configuration.
``check_order`` returns ``holds``, ``reversed`` or ``within noise`` for the whole claim and for each
adjacent pair of it; a notebook states the answer with ``OrderingResult.sentence()``, never in typed
words.

**The test: a paired Student-t interval on the differences.** For the adjacent pair (A, B) of the
claim, the differences ``d_u = A_u - B_u`` are taken unit by unit (the same seed and fold), so what
the two configurations share - the fold's classes, the test episodes, the frozen encoders - cancels.
The mean difference gets a two-sided Student-t confidence interval at level ``1 - alpha / m`` for a
claim of ``m`` adjacent pairs (Bonferroni: the whole chain is then wrong with probability at most
``alpha``). The pair *holds* when the interval lies above zero, is *reversed* when it lies below, and
is *within noise* otherwise; the claim holds when every pair holds, is reversed when any pair is
reversed, and is within noise otherwise.

Why t and not a bootstrap: the book runs 3 seeds (x 4 folds) per configuration. With so few units a
percentile bootstrap interval is too narrow - it never reaches beyond the observed differences and
lacks the small-sample widening that the t quantile carries (with n = 3 the t interval is more than
twice as wide) - so it would call noise a win. The t interval assumes roughly normal
differences, a fair reading of averaged IoUs; it is exact for normal data and is what a paired
t-test (``scipy.stats.ttest_rel``) rejects at the same level. With fewer than 2 units no interval
exists and every pair is *within noise*.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import pandas as pd

VERDICTS = ("holds", "reversed", "within noise")


@dataclass(frozen=True)
class PairComparison:
    """One adjacent pair ``better > worse`` of a claim, on ``n`` paired units."""

    better: str
    worse: str
    n: int
    mean: float  # mean of better - worse over the units
    sd: float  # standard deviation of the differences (ddof = 1; nan for n < 2)
    low: float  # confidence interval of the mean difference
    high: float
    level: float  # the interval's confidence level (Bonferroni-adjusted)
    verdict: str


@dataclass(frozen=True)
class OrderingResult:
    claim: str  # "A > B > C"
    order: tuple[str, ...]
    verdict: str
    pairs: tuple[PairComparison, ...]
    alpha: float
    units: str = "runs"  # what one unit is, for the sentence ("seeds x folds")
    unit_label: str = "points"  # the unit of the values, for the sentence
    means: dict = field(default_factory=dict)  # label -> mean over its units

    def sentence(self) -> str:
        """The claim's verdict in words, with each pair's effect size and interval."""
        head = {"holds": "holds", "reversed": "is reversed", "within noise": "is within noise"}[self.verdict]
        parts = []
        for p in self.pairs:
            if p.n < 2:
                parts.append(f"{p.better} − {p.worse} = {p.mean:+.1f} {self.unit_label} from {p.n} run "
                             f"(no interval: at least 2 paired runs are needed)")
            else:
                parts.append(f"{p.better} − {p.worse} = {p.mean:+.1f} {self.unit_label} "
                             f"({100 * p.level:.1f}% CI {p.low:+.1f} to {p.high:+.1f}, sd {p.sd:.1f}, "
                             f"n = {p.n} {self.units}): {p.verdict}")
        return f"The claim {self.claim} {head}. " + "; ".join(parts) + "."

    def frame(self) -> pd.DataFrame:
        """One row per adjacent pair."""
        return pd.DataFrame([asdict(p) for p in self.pairs]).set_index(["better", "worse"])

    def to_dict(self) -> dict:
        return {"claim": self.claim, "order": list(self.order), "verdict": self.verdict, "alpha": self.alpha,
                "units": self.units, "unit_label": self.unit_label, "means": dict(self.means),
                "pairs": [asdict(p) for p in self.pairs], "sentence": self.sentence()}


def _series(values, label: str) -> pd.Series:
    s = values if isinstance(values, pd.Series) else pd.Series(dict(values) if isinstance(values, Mapping)
                                                               else dict(enumerate(values)))
    if s.index.has_duplicates:
        raise ValueError(f"{label!r}: each unit (seed, fold, ...) must appear once; duplicated: "
                         f"{sorted(set(s.index[s.index.duplicated()].tolist()))}")
    s = s.astype(float)
    if s.isna().any():
        raise ValueError(f"{label!r}: missing values for units {s.index[s.isna()].tolist()}")
    return s


def t_interval(differences: Sequence[float], level: float) -> tuple[float, float, float, float]:
    """Mean, sd (ddof = 1) and the two-sided Student-t interval of the mean of ``differences``."""
    from scipy import stats

    d = pd.Series(differences, dtype=float)
    n = len(d)
    mean = float(d.mean()) if n else float("nan")
    if n < 2:
        return mean, float("nan"), -math.inf, math.inf
    sd = float(d.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return mean, sd, mean - half, mean + half


def check_order(values: Mapping[str, object], order: Sequence[str] | None = None, alpha: float = 0.05,
                units: str = "runs", unit_label: str = "points") -> OrderingResult:
    """Judge the claim ``order[0] > order[1] > ...`` on paired per-unit values.

    ``values`` maps each configuration to its values per unit: a ``pd.Series`` (or mapping) indexed
    by the unit, e.g. ``(seed, fold)``; configurations pair up on the units they share (a unit
    missing from one side is an error, so no pair is silently dropped). ``order`` defaults to the
    mapping's order. ``alpha`` is the family-wise error rate of the whole claim.
    """
    order = tuple(order or values)
    if len(order) < 2:
        raise ValueError(f"an ordering claim needs at least two configurations, got {list(order)}")
    missing = [o for o in order if o not in values]
    if missing:
        raise ValueError(f"no values for {missing}; configurations given: {list(values)}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    series = {o: _series(values[o], o) for o in order}
    m = len(order) - 1
    level = 1 - alpha / m
    pairs = []
    for better, worse in zip(order, order[1:]):
        a, b = series[better], series[worse]
        if set(a.index) != set(b.index):
            raise ValueError(f"{better!r} and {worse!r} must share their units to pair up; only in {better!r}: "
                             f"{sorted(set(a.index) - set(b.index), key=str)}, only in {worse!r}: "
                             f"{sorted(set(b.index) - set(a.index), key=str)}")
        d = a - b.reindex(a.index)
        mean, sd, low, high = t_interval(d.tolist(), level)
        verdict = "holds" if low > 0 else "reversed" if high < 0 else "within noise"
        pairs.append(PairComparison(better, worse, len(d), mean, sd, low, high, level, verdict))
    verdicts = {p.verdict for p in pairs}
    verdict = "holds" if verdicts == {"holds"} else "reversed" if "reversed" in verdicts else "within noise"
    return OrderingResult(" > ".join(order), order, verdict, tuple(pairs), alpha, units, unit_label,
                          {o: float(series[o].mean()) for o in order})


def judge_pairs(frame: pd.DataFrame, by: str, pairs, record=None, seed_column: str = "seed",
                **context) -> list[OrderingResult]:
    """Judge ``better > worse`` on ``metric`` for each ``(better, worse, metric)`` of ``pairs``, paired
    over seeds, from a long table ``frame`` (one row per configuration and seed; the configuration's
    label in column ``by``). Each verdict is recorded in ``record`` (a ``results.RunRecord``) with
    ``context`` and its sentence printed (after ``context["table"]`` when given). A pair with an
    undefined value (NaN, e.g. no unseen class among a few evaluated images) is reported as not judged."""
    prefix = f"{context['table']}: " if "table" in context else ""
    out = []
    for better, worse, metric in pairs:
        values = {label: frame[frame[by] == label].set_index(seed_column)[metric] for label in (better, worse)}
        if any(v.isna().any() for v in values.values()):
            print(f"{prefix}{better} > {worse} on {metric} not judged, undefined on the evaluated images")
            continue
        claim = check_order(values, units="seeds", unit_label=f"{metric} points")
        if record is not None:
            record.claim(claim, **context)
        print(prefix + claim.sentence())
        out.append(claim)
    return out
