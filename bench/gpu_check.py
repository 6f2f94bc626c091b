"""The GPU check: the CUDA tests, then the GPU benchmarks, then one table naming the device.

Run through bench/gpu_check.sh (which installs Ray, Optuna and kornia from the wheel kit .whl/ when the image
lacks them and makes `import visionsweep` resolve to this tree). Steps, in order, each a subprocess with its own
time limit taken from what is left of --budget (a step that runs out is stopped and shows as "timed out"):

  tests   python -m pytest -m gpu tests/test_gpu.py: bf16 + channels_last fit vs the CPU, on-GPU vs pinned data
          path, no host sync in a training step, predict CUDA vs CPU, lr_find on CUDA, a 4-trial sweep at
          --gpus-per-trial 0.25
  pack    bench/bench_pack.py: the same sweep at 1, 2, 4, 8 trials per GPU (2 waves per setting, at least 4
          trials, 3 epochs: a shortened form of the 16-trial sweep, to fit the budget); trials/hour, GPU busy %,
          per-trial overhead (k = 1), GPU memory after
  step    bench/bench_step.py: resnet50 at 224 px, batch 128, bf16, channels_last; visionsweep's step vs a bare
          timm + PyTorch loop, eager and torch.compile
  epoch   bench/bench_epoch.py: resnet18 on a cactus-size set (17,500 x 32 px -> 128 px), seconds per epoch vs a
          bare epoch, eager and torch.compile (eager rows print first: a step stopped at its limit keeps them)

Without CUDA (or with --dry-run) it runs nothing: it checks that every step would start (imports, each
script's arguments, the test module's collection), says so and exits 0, so CI keeps this script from rotting.
The table also goes to --table (default $OUT/gpu_check.md when $OUT is set).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PY = sys.executable

# name -> (argv after the interpreter, share of the budget this step may take at most, in seconds)
STEPS: dict[str, tuple[list[str], float]] = {
    "tests": (["-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", "tests/test_gpu.py"], 200),
    # packing before the throughput figures: it sets a default; a compile that runs long only costs its own rows
    "pack": (["bench/bench_pack.py", "--per-gpu", "1,2,4,8", "--waves", "2", "--min-trials", "4", "--epochs", "3"],
             240),
    "step": (["bench/bench_step.py", "--configs", "resnet50:224:224:128", "--compile", "both", "--steps", "20",
              "--warmup", "5", "--repeats", "3", "--no-aug-variant"], 200),
    "epoch": (["bench/bench_epoch.py", "--compile", "both", "--epochs", "3"], 150),
}


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dry_check(reason: str) -> int:
    """Everything short of running: imports, arguments, test collection. Exit 0 when all would start."""
    import torch  # noqa: F401  (the image's)
    import timm  # noqa: F401
    import ray  # noqa: F401  (the kit's on a GPU image)
    import optuna  # noqa: F401
    import pytest

    import visionsweep.search.sweep  # noqa: F401
    import visionsweep.trainables.loop  # noqa: F401

    problems = []
    sys.path.insert(0, str(BENCH))
    for name, (argv, _) in STEPS.items():
        if name == "tests":
            continue
        script = ROOT / argv[0]
        try:
            _load(script).build_parser().parse_args(argv[1:])
        except SystemExit as e:
            problems.append(f"{name}: {script.name} rejects its arguments ({e})")
        except Exception as e:  # an import error in the script
            problems.append(f"{name}: {script.name} does not load: {type(e).__name__}: {e}")
    collected: list[str] = []

    class Collect:
        def pytest_collection_finish(self, session):
            collected.extend(item.nodeid for item in session.items)

    rc = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning",
                      str(ROOT / "tests" / "test_gpu.py")],
                     plugins=[Collect()])
    if rc != 0 or not collected:
        problems.append(f"tests: tests/test_gpu.py does not collect (pytest exit {rc})")
    print()
    for name, (argv, cap) in STEPS.items():
        print(f"  would run ({name}, <= {cap:.0f} s): python {' '.join(argv)}")
    if problems:
        print("gpu_check: " + "; ".join(problems))
        return 1
    print(f"gpu_check: {reason}; checked imports, the arguments of {len(STEPS) - 1} benchmarks and "
          f"{len(collected)} GPU tests collected; nothing measured (exit 0)")
    return 0


def run_step(name: str, argv: list[str], limit: float, log) -> tuple[int | None, list[str], float]:
    """(exit code or None when stopped at the limit, output lines, seconds); output is echoed as it comes."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([PY, *argv], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # its own process group: a timeout stops Ray's children too
    lines: list[str] = []

    def pump():
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            log(f"[{name}] {line.rstrip()}")

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        rc = proc.wait(timeout=max(limit, 1))
    except subprocess.TimeoutExpired:
        rc = None
        for sig, grace in ((signal.SIGINT, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
    reader.join(timeout=5)
    return rc, lines, time.perf_counter() - t0


def results(lines: list[str]) -> list[dict]:
    return [json.loads(ln.split("GPU_CHECK_RESULT ", 1)[1]) for ln in lines if "GPU_CHECK_RESULT " in ln]


def _num(v, fmt: str) -> str:
    return "n/a" if v is None else format(v, fmt)


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "NOT met")


def table(device: str, outcomes: dict[str, tuple], header: str) -> str:
    rows = [("check", "result", "goal", "verdict")]

    def status(name):
        rc, _, secs = outcomes[name]
        return "timed out" if rc is None else f"exit {rc}", secs

    if "tests" in outcomes:
        rc, lines, secs = outcomes["tests"]
        summary = next((ln.strip("= ") for ln in reversed(lines) if re.search(r"\d+ (passed|failed|error)", ln)), "")
        rows.append(("CUDA tests (tests/test_gpu.py)", summary or status(name="tests")[0], "all pass",
                     _verdict(rc == 0 if rc is not None else False)))
    if "step" in outcomes:
        found = results(outcomes["step"][1])
        for r in found:
            ips = r["images_per_s"]
            vs, bare = ips.get("visionsweep aug=0"), ips.get("bare timm + PyTorch")
            mode = "torch.compile" if r["compile"] else "eager"
            warm = max(r["warmup_s"].values())
            rows.append((f"{r['backbone']} {r['size']} px, batch {r['batch']}, bf16 + channels_last, {mode}: "
                         f"train images/s",
                         f"visionsweep {vs:,.0f}, bare {bare:,.0f}, ratio {r['ratio_aug0']:.3f} (warm-up "
                         f"{warm:.0f} s)", ">= 3,000 img/s, ratio >= 0.97",
                         _verdict(vs >= 3000 and r["ratio_aug0"] >= 0.97)))
        if not found:
            rows.append(("resnet50 224 px throughput", " ".join(map(str, status("step"))) + " s, no result",
                         ">= 3,000 img/s, ratio >= 0.97", "n/a"))
    if "epoch" in outcomes:
        found = results(outcomes["epoch"][1])
        for r in found:
            mode = "torch.compile" if r["compile"] else "eager"
            med = r["median_s"]
            rows.append((f"{r['backbone']}, {r['n_train'] + r['n_valid']:,} x {r['src']} px -> {r['size']} px, batch "
                         f"{r['batch']}, aug {r['aug']:g}, {mode}: s/epoch (train + valid)",
                         f"visionsweep {med['visionsweep']:.2f} s, bare {med['bare']:.2f} s, ratio {r['ratio']:.3f} "
                         f"(epoch 1: {r['epoch_s']['visionsweep'][0]:.1f} s)", "<= 3 s",
                         _verdict(med["visionsweep"] <= 3.0)))
        if not found:
            rows.append(("cactus-size epoch", " ".join(map(str, status("epoch"))) + " s, no result", "<= 3 s", "n/a"))
    if "pack" in outcomes:
        found = [r for r in results(outcomes["pack"][1])]
        for r in found:
            rows.append((f"packing: {r['per_gpu']} trial(s) per GPU ({r['trials']} trials, {r['done']} done)",
                         f"{r['trials_per_hour']:,.0f} trials/h, GPU busy {_num(r['busy_pct'], '.0f')} %, overhead "
                         f"{r['overhead_s']:.1f} s/trial, epoch {_num(r['epoch_s_median'], '.2f')} s, GPU memory "
                         f"after {_num(r['gpu_mem_after_mib'], '.0f')} MiB (idle {_num(r['gpu_mem_idle_mib'], '.0f')})",
                         "best setting >= 80 % busy", ""))
        if found:
            best = max(found, key=lambda r: r["trials_per_hour"])
            rows.append(("packing: best setting", f"{best['per_gpu']} per GPU",
                         ">= 80 % busy", _verdict(None if best["busy_pct"] is None else best["busy_pct"] >= 80)))
            one = [r for r in found if r["per_gpu"] == 1]
            if one:
                rows.append(("per-trial start-up + tear-down overhead (1 per GPU)", f"{one[0]['overhead_s']:.1f} s",
                             "<= 5 s", _verdict(one[0]["overhead_s"] <= 5)))
        skipped = [ln for ln in outcomes["pack"][1] if ": skipped" in ln]
        if skipped or not found:
            rows.append(("packing: not run", "; ".join(skipped) or " ".join(map(str, status("pack"))) + " s", "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    out = [header, ""]
    for n, r in enumerate(rows):
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
        if n == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    times = ", ".join(f"{k} {v[2]:.0f} s" + (" (timed out)" if v[0] is None else "") for k, v in outcomes.items())
    out += ["", f"step times: {times}"]
    return "\n".join(out)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default=",".join(STEPS), help=f"steps to run, comma-separated (default {','.join(STEPS)})")
    p.add_argument("--budget", type=float, default=float(os.environ.get("GPU_CHECK_BUDGET", 480)),
                   help="seconds for all steps together (default 480: the install and this fit in a 10-minute call)")
    p.add_argument("--dry-run", action="store_true", help="check that it would run, as without CUDA")
    p.add_argument("--table", default=None, help="also write the table here (default $OUT/gpu_check.md if $OUT)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    steps = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        raise SystemExit(f"--only: unknown step(s) {', '.join(unknown)}; known: {', '.join(STEPS)}")
    import torch

    if args.dry_run or not torch.cuda.is_available():
        reason = "--dry-run" if args.dry_run else "no CUDA device on this machine, so no GPU figures"
        print(f"gpu_check: {reason}; checking that the GPU run would start")
        return dry_check(reason)
    t_start = time.perf_counter()
    device = torch.cuda.get_device_name(0)
    from visionsweep.trainables.provenance import provenance

    prov = provenance("cuda")
    header = (f"## visionsweep gpu_check on {device} ({torch.cuda.device_count()} GPU(s), {os.cpu_count()} CPUs)\n"
              f"torch {torch.__version__} (CUDA {torch.version.cuda}), timm {prov['versions']['timm']}, ray "
              f"{prov['versions']['ray']}; git {prov['git_revision']}; "
              f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; one run of each step")
    print(header, flush=True)
    target = args.table or (str(Path(os.environ["OUT"]) / "gpu_check.md") if os.environ.get("OUT") else None)
    outcomes: dict[str, tuple] = {}
    for name in steps:
        argv, cap = STEPS[name]
        left = args.budget - (time.perf_counter() - t_start)
        if left < 20:
            print(f"gpu_check: {name} skipped, {left:.0f} s of the budget left")
            outcomes[name] = (None, [f"{name}: skipped (budget)"], 0.0)
            continue
        later = [s for s in steps[steps.index(name) + 1:]]
        reserve = sum(min(60, STEPS[s][1] / 3) for s in later)  # a little for each later step, at least
        limit = min(cap, left - reserve) if left - reserve > 30 else left
        if name == "pack":
            argv = [*argv, "--time-limit", f"{max(limit - 25, 30):.0f}"]  # it skips a setting that would not fit
        print(f"\ngpu_check: {name} (<= {limit:.0f} s): python {' '.join(argv)}", flush=True)
        outcomes[name] = run_step(name, argv, limit, log=lambda m: print(m, flush=True))
        if target:  # after every step: a call stopped from outside still leaves the rows so far
            Path(target).write_text(table(device, outcomes, header) + "\n")
    text = table(device, outcomes, header)
    print("\n" + text, flush=True)
    if target:
        Path(target).write_text(text + "\n")
        print(f"(table written to {target})")
    return 0 if all(v[0] == 0 for v in outcomes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
