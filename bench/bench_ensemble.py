"""bench_ensemble: which trials should `predict` average? Held-out scores of predict's member rules on kept sweeps.

Reads the sweeps a `bench_search.py --keep` run left under OUT/work/sweeps/<set>-<method>-s<seed>/ and the sets
under OUT/data/<set>/, predicts each set's test images with every rule through visionsweep's own `predict` (TTA,
refit models where the sweep made them), and scores the submissions against solution.csv. Rules
(search.predict.resolve_sources' options):

  best      the best trial alone (--top-k 1)
  top3      the rule before 2026-12-06: the best trial, then the trials that ran their whole schedule, up to 3
  selected  predict's default: the same candidates, each kept only if it did not make the ensemble's validation
            metric worse (search/ensemble.py); a sweep made before the selection existed gets it computed here
            first, as the sweep computes it (search.refit.validation_noise; rewrites its noise.json, adds
            ensemble.json)

Command: `python bench/bench_ensemble.py OUT` (seconds per sweep: one forward pass per member and rule).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))

RULES = {"best": dict(top_k=1), "top3": dict(top_k=3, selected=False), "selected": dict(top_k=3)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path, help="a bench_search.py --out folder whose sweeps were kept (--keep)")
    args = ap.parse_args(argv)

    import search_data

    from visionsweep.datasets.load import load_dataset
    from visionsweep.datasets.spec import spec_from_dict
    from visionsweep.search import ensemble
    from visionsweep.search.leaderboard import sweep_leaderboard
    from visionsweep.search.predict import predict, resolve_sources, sweep_spec
    from visionsweep.search.record import read_sweep_record
    from visionsweep.search.refit import read_record, validation_noise
    from visionsweep.search.sweep import sweep_arrays

    sweeps = sorted(p for p in (args.out / "work" / "sweeps").iterdir() if p.is_dir())
    if not sweeps:
        sys.exit(f"no sweeps under {args.out / 'work' / 'sweeps'}: run bench_search.py with --keep")
    print("| sweep | " + " | ".join(f"{r} (models)" for r in RULES) + " |")
    print("|---|" + "---|" * len(RULES))
    totals = {rule: [] for rule in RULES}
    for sweep in sweeps:
        name = sweep.name.split("-", 1)[0]
        bs = search_data.build(args.out / "data", name)
        spec = spec_from_dict({**sweep_spec(str(sweep)), "root": Path(bs.data)})
        data = load_dataset(spec, log=lambda *_: None)
        if not read_record(str(sweep), ensemble.ENSEMBLE_RECORD):
            info = read_sweep_record(str(sweep))
            arrays = sweep_arrays(data, SimpleNamespace(folds=int(info.search.get("folds", 1))), spec)
            validation_noise(str(sweep), sweep_leaderboard(str(sweep)), arrays=arrays, metric=info.metric,
                             mode=info.mode, rows=info.top_k, candidates=info.top_k, log=lambda *_: None)
        cells = []
        for rule, kw in RULES.items():
            models = len(resolve_sources(str(sweep), **kw))
            with tempfile.TemporaryDirectory() as tmp:
                sub = Path(tmp) / "submission.csv"
                predict(source=str(sweep), data=data, out=sub, tta=True, log=lambda *_: None, **kw)
                totals[rule].append(search_data.score(bs, sub))
                cells.append(f"{totals[rule][-1]:.4f} ({models})")
        print(f"| {sweep.name} | " + " | ".join(cells) + " |", flush=True)
    print("| mean | " + " | ".join(f"{sum(v) / len(v):.4f}" for v in totals.values()) + " |")


if __name__ == "__main__":
    main()
