"""bench_ensemble: which trials should `predict` average? Held-out scores of predict's member rules on kept sweeps.

Reads the sweeps a `bench_search.py --keep` run left under OUT/work/sweeps/<set>-<method>-s<seed>/ and the sets
under OUT/data/<set>/, predicts each set's test images with every rule through visionsweep's own `predict` (TTA,
refit models where the sweep made them), and scores the submissions against solution.csv. Rules:

  best  the best trial alone (--top-k 1)
  top3  predict's default: the best trial, then the trials that ran their whole schedule, up to 3

Command: `python bench/bench_ensemble.py OUT` (seconds per sweep: one forward pass per member and rule).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

RULES = {"best": dict(top_k=1), "top3": dict(top_k=3)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path, help="a bench_search.py --out folder whose sweeps were kept (--keep)")
    args = ap.parse_args(argv)

    import search_data

    import visionsweep as vs
    from visionsweep.search.predict import resolve_sources

    sweeps = sorted(p for p in (args.out / "work" / "sweeps").iterdir() if p.is_dir())
    if not sweeps:
        sys.exit(f"no sweeps under {args.out / 'work' / 'sweeps'}: run bench_search.py with --keep")
    print("| sweep | " + " | ".join(f"{r} (members)" for r in RULES) + " |")
    print("|---|" + "---|" * len(RULES))
    for sweep in sweeps:
        name = sweep.name.split("-", 1)[0]
        bs = search_data.build(args.out / "data", name)
        cells = []
        for rule, kw in RULES.items():
            members = len(resolve_sources(str(sweep), **kw))
            with tempfile.TemporaryDirectory() as tmp:
                sub = Path(tmp) / "submission.csv"
                vs.predict(sweep, bs.data, out=sub, tta=True, log=lambda *_: None, **kw)
                cells.append(f"{search_data.score(bs, sub):.4f} ({members})")
        print(f"| {sweep.name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
