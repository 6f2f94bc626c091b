"""bench_compare: is a held-out difference of the search benchmark more than a few test images?

The sets of bench/search_data.py have 50-359 test images, so one image moves a score by 0.003-0.02. This reads the
submissions that `bench_search.py` leaves in OUT/work/subs/ (`<set>-<method>-s<seed>.csv`, always kept) and puts
a paired bootstrap interval on each of issue 8's two comparisons, per set:

  goal 1  each sweep (every method but the recipe, each seed) against the BEST of the recipe runs: the recipe seed
          that scored highest on the test set (as the goal reads), then a plain paired comparison with that run
  goal 2  `budget<f>` seed s against `random` seed s: the sweep with a fraction of random search's trial-epochs

A resample draws the test images with replacement within each true class (class counts fixed, so an AUC always
has both classes) and scores both sides on the same images. Printed per comparison: both scores, the difference
A - B, its 95% interval over the resamples, the share of resamples with A < B, and a verdict: "A higher" or
"B higher" when the interval excludes 0, "within noise" when it does not.

Command: `python bench/bench_compare.py OUT [OUT ...]` (several bench_search --out folders: a later folder's
submission replaces an earlier one's for the same set, method and seed; all must hold the same test sets).
`bench_search.py` prints the same table at its end.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import search_data  # noqa: E402

RESAMPLES = 2000


@dataclass(frozen=True)
class Comparison:
    dataset: str
    a: str                # e.g. "sweep s0"
    b: str                # e.g. "recipe best of s0,s1,s2"
    score_a: float
    score_b: float
    diff: float           # score_a - score_b on the test set as it is
    lo: float             # 95% bootstrap interval of the difference
    hi: float
    p_below: float        # share of resamples where A < B
    n_test: int

    @property
    def verdict(self) -> str:
        return "A higher" if self.lo > 0 else "B higher" if self.hi < 0 else "within noise"


def stratified_resamples(truth: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, len(truth)) indices: each row redraws every true class's images with replacement."""
    cols = []
    for cls in np.unique(truth):
        members = np.flatnonzero(truth == cls)
        cols.append(members[rng.integers(0, len(members), size=(n, len(members)))])
    return np.concatenate(cols, axis=1)


def _scores(metric: str, truth: np.ndarray, pred: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The metric of one submission on every resample (rows of idx)."""
    if metric == "auc":  # Mann-Whitney: the positives' mean rank among all scores (ties averaged), row by row
        from scipy.stats import rankdata

        ranks, pos = rankdata(pred[idx], axis=1), truth[idx] == 1
        n_pos, n_neg = pos.sum(axis=1), (~pos).sum(axis=1)
        return ((ranks * pos).sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return (truth == pred)[idx].mean(axis=1)


def compare(metric: str, truth: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, *, dataset: str = "",
            a: str = "A", b: str = "B", resamples: int = RESAMPLES, seed: int = 0) -> Comparison:
    """Submission A against submission B, paired on the same resampled test images (metrics where higher is better:
    accuracy, AUC)."""
    if metric not in ("accuracy", "auc"):
        raise ValueError(f"bench_compare scores accuracy or auc, not {metric!r}")
    # Row 0: the test set as it is; then the resamples.
    idx = np.concatenate([np.arange(len(truth))[None, :],
                          stratified_resamples(truth, resamples, np.random.default_rng(seed))])
    score_a, score_b = _scores(metric, truth, pred_a, idx), _scores(metric, truth, pred_b, idx)
    diffs = score_a[1:] - score_b[1:]
    lo, hi = np.quantile(diffs, [0.025, 0.975])
    below = float(np.mean(diffs < -1e-9))  # A < B by more than float rounding (equal AUCs differ by ~1e-17)
    return Comparison(dataset, a, b, float(score_a[0]), float(score_b[0]), float(score_a[0] - score_b[0]),
                      float(lo), float(hi), below, len(truth))


def find_submissions(outs: list[Path]) -> dict[str, dict[tuple[str, int], Path]]:
    """{set: {(method, seed): submission}} from bench_search --out folders, later folders winning."""
    found: dict[str, dict[tuple[str, int], Path]] = {}
    for out in outs:
        for sub in sorted((out / "work" / "subs").glob("*-*-s*.csv")):
            name, method, seed = sub.stem.split("-")
            found.setdefault(name, {})[(method, int(seed[1:]))] = sub
    return found


def goal_comparisons(bs: search_data.BenchSet, subs: dict[tuple[str, int], Path]) -> list[Comparison]:
    """Goal 1 for every sweep-like submission against the recipe's best, goal 2 for every budget sweep whose seed
    random search also ran."""
    if not subs:
        return []
    truth, _ = search_data.held_out(bs, next(iter(subs.values())))
    pred = {key: search_data.held_out(bs, path)[1] for key, path in subs.items()}
    recipe = sorted(seed for method, seed in subs if method == "recipe")
    out = []
    if recipe:
        best = best_run(bs.metric, truth, {s: pred[("recipe", s)] for s in recipe})
        label = f"recipe s{best} (best of " + ",".join(f"s{s}" for s in recipe) + ")"
        for (method, seed) in sorted(k for k in subs if k[0] != "recipe"):
            out.append(compare(bs.metric, truth, pred[(method, seed)], pred[("recipe", best)],
                               dataset=bs.name, a=f"{method} s{seed}", b=label))
    for (method, seed) in sorted(k for k in subs if k[0].startswith("budget")):
        if ("random", seed) in subs:
            out.append(compare(bs.metric, truth, pred[(method, seed)], pred[("random", seed)],
                               dataset=bs.name, a=f"{method} s{seed}", b=f"random s{seed}"))
    return out


def best_run(metric: str, truth: np.ndarray, preds: dict[int, np.ndarray]) -> int:
    """The seed whose submission scores highest on the test set (the first of tied seeds). Taking the best seed
    again on every resample instead would favour the recipe: the best of three noisy scores on a resample is
    above the best on the test set on average."""
    return max(preds, key=lambda s: (search_data.metric_value(metric, truth, preds[s]), -s))


def table(comparisons: list[Comparison]) -> str:
    lines = [f"Paired bootstrap over the test images ({RESAMPLES} resamples, stratified by class): A - B and its 95% "
             "interval.", "",
             "| set (test images) | A | B | A | B | A - B | 95% interval | resamples A < B | verdict |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in comparisons:
        lines.append(f"| {c.dataset} ({c.n_test}) | {c.a} | {c.b} | {c.score_a:.3f} | {c.score_b:.3f} | "
                     f"{c.diff:+.3f} | {c.lo:+.3f} .. {c.hi:+.3f} | {c.p_below:.0%} | {c.verdict} |")
    return "\n".join(lines) + "\n"


def compare_folders(outs: list[Path], data: Path | None = None) -> list[Comparison]:
    """Every goal comparison of the submissions under outs, scored on the sets under `data` (default: the first
    folder's data/)."""
    data = data or outs[0] / "data"
    comparisons = []
    for name, subs in find_submissions(outs).items():
        bs = search_data.built(data, name)
        digest = hashlib.sha256(bs.solution.read_bytes()).hexdigest()
        for out in outs[1:]:
            other = out / "data" / name / "solution.csv"
            if other.exists() and hashlib.sha256(other.read_bytes()).hexdigest() != digest:
                raise SystemExit(f"{other} differs from {bs.solution}: the folders hold different test sets "
                                 "(another --data-seed?); compare folders of one data seed")
        comparisons += goal_comparisons(bs, subs)
    return comparisons


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("outs", type=Path, nargs="+", help="bench_search.py --out folders")
    args = ap.parse_args(argv)
    missing = [str(o) for o in args.outs if not (o / "work" / "subs").is_dir()]
    if missing:
        ap.error(f"no work/subs/ in {', '.join(missing)}: give bench_search.py --out folders")
    print(table(compare_folders(args.outs)))


if __name__ == "__main__":
    main()
