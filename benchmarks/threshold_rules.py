"""Threshold rules side by side on finished runs: false-positive rate on test/good, recall on the defects.

Usage:
    python benchmarks/threshold_rules.py NAME RUN_DIR [RUN_DIR ...] [--cache DIR] [--splits 200] [--sizes 10,20,40]
                                         [--tail-from 0.5,0.7,0.9] [--quantile 0.95]

Each run's detector scores its held-out good images, their augmented good views (the synthetic set's class-0
rows, what sslad joins below ``score.views_below`` held-out images) and the test split; the scores are cached
in ``--cache`` (one ``.npz`` per run) so that rules can be compared again without scoring. Rules, each at the
run's own quantile q:

* ``quantile``: the empirical q-quantile of the held-out scores (before 0.8, sslad's rule from 50 held-out
  images; ``--threshold-rule quantile`` since);
* ``views``: the same on the held-out scores joined with their views' (that rule below 50);
* ``max``: the held-out maximum;
* ``normal``: mean + z_q standard deviations of the held-out scores;
* ``tail``: an exponential tail fitted to the held-out scores above their 80th percentile, read at its fitted
  scale (``sslad.scoring.tail_threshold``, sslad's rule in 0.8); ``--tail-from`` adds ``tail@P`` rules, the tail
  fitted above the P quantile instead;
* ``predictive``: the bound a new good score passes with probability 1 - q when the top fifth of the held-out
  scores is an exponential tail, at any number of them (``sslad.scoring.predictive_threshold``, sslad's rule
  since 0.9); ``--tail-from`` adds ``predictive@P`` rules too.

Each rule is set on all the held-out images, and on ``--splits`` random subsets of ``--sizes`` of them (with
their views), which stand in for a small training set's held-out split (mean and 90th percentile of the
false-positive rate over the subsets). ``--quantile`` sets every rule at that quantile instead of each run's
own (a rule's recall at the false-positive rate another reaches at its quantile). Beside the test figures,
a check that needs no test label: ``--splits`` random halves of the held-out images, each rule set on one
half (and its views) and judged by the share of the other half above it -- what the rule promises (1 - q)
against what it keeps on good images it has not seen, from the training set alone. Summaries are per
dataset (mean and worst run). Writes ``benchmarks/results/NAME.json``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
from common import save_record

RULES = ("quantile", "views", "max", "normal", "tail", "predictive")


def threshold(rule: str, real: np.ndarray, views: np.ndarray, q: float) -> float:
    """The threshold ``rule`` sets from held-out scores ``real`` and their views' ``views`` at quantile ``q``."""
    from statistics import NormalDist

    from sslad.scoring import predictive_threshold, tail_threshold

    if rule == "quantile":
        return float(np.quantile(real, q))
    if rule == "views":
        return float(np.quantile(np.concatenate([real, views]), q))
    if rule == "max":
        return float(real.max())
    if rule == "normal":
        return float(real.mean() + NormalDist().inv_cdf(q) * real.std())
    if rule == "tail":
        return tail_threshold(real, q)
    if rule.startswith("tail@"):
        return tail_threshold(real, q, float(rule[5:]))
    if rule == "predictive":
        return predictive_threshold(real, q)
    if rule.startswith("predictive@"):
        return predictive_threshold(real, q, float(rule[11:]))
    raise ValueError(rule)


def run_scores(run_dir: str, cache: Path) -> dict:
    """Held-out, view and test scores of one run (cached as ``cache/<run name>.npz``)."""
    dest = cache / (Path(run_dir).resolve().parent.name + "_" + Path(run_dir).name + ".npz")
    if dest.exists():
        return dict(np.load(dest))
    import torch

    from sslad.backends import make_renderer
    from sslad.config import RunConfig
    from sslad.data import load_dataset, split_train
    from sslad.detector import Detector
    from sslad.synth.generator import PretextGenerator
    from sslad.training import SYNTHETIC_HOLDOUT_K

    det = Detector.load(run_dir, "cpu")
    cfg = RunConfig.from_dict(det.info["config"])
    data = load_dataset(cfg.data.path, cfg.data.category, det.image_size)
    _, hold = split_train(data.train, cfg.score.holdout, cfg.score.holdout_min)
    gen = PretextGenerator(hold.images, make_renderer("torch", det.image_size, torch.device("cpu")),
                           dataclasses.replace(cfg.synth, variants=8), seed=cfg.train.seed)
    synth = gen.regenerate(SYNTHETIC_HOLDOUT_K)
    good_rows = synth.labels == 0
    out = {"real": det.score(hold.images).scores, "views": det.score(synth.images[good_rows]).scores,
           "view_of": gen.plan(SYNTHETIC_HOLDOUT_K).index[good_rows.cpu()].numpy(),
           "test": det.score(data.test.images).scores,
           "good": np.array([t == "good" for t in data.test.types]), "q": np.array(det.scorer.quantile),
           "stored": np.array(det.scorer.threshold)}
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(dest, **out)
    return out


def analyse(s: dict, splits: int, sizes: list[int], rules: list[str], quantile: float | None = None) -> dict:
    q, real, views, view_of = float(s["q"] if quantile is None else quantile), s["real"], s["views"], s["view_of"]
    test, good = s["test"], s["good"].astype(bool)
    rng = np.random.default_rng(0)
    halves = [rng.permutation(len(real)) for _ in range(splits)]
    subsets = {n: [rng.choice(len(real), n, replace=False) for _ in range(splits)] for n in sizes if n < len(real)}
    rows = {}
    for rule in rules:
        t = threshold(rule, real, views, q)
        exceed = []
        for perm in halves:
            a, b = perm[: len(real) // 2], perm[len(real) // 2:]
            exceed.append(float((real[b] > threshold(rule, real[a], views[np.isin(view_of, a)], q)).mean()))
        small = {}
        for n, draws in subsets.items():
            ts = np.array([threshold(rule, real[sel], views[np.isin(view_of, sel)], q) for sel in draws])
            fpr = (test[good][None] > ts[:, None]).mean(1)
            small[str(n)] = {"fpr_mean": float(fpr.mean()), "fpr_p90": float(np.percentile(fpr, 90)),
                             "recall_mean": float((test[~good][None] > ts[:, None]).mean())}
        rows[rule] = {"threshold": t, "fpr": float((test[good] > t).mean()), "recall": float((test[~good] > t).mean()),
                      "holdout_half_exceed": float(np.mean(exceed)), "subsets": small}
    return {"held_out": len(real), "views": len(views), "quantile": q, "stored_threshold": float(s["stored"]),
            "rules": rows}


def summarise(runs: dict, rules: list[str]) -> dict:
    """Per dataset and rule: the mean and worst (max) over runs of each figure."""
    out = {}
    for dataset in sorted({r["dataset"] for r in runs.values()}):
        per_rule = {rule: [r["rules"][rule] for r in runs.values() if r["dataset"] == dataset] for rule in rules}
        out[dataset] = {}
        for rule, per in per_rule.items():
            figures = {k: [p[k] for p in per] for k in ("fpr", "recall", "holdout_half_exceed")}
            figures |= {f"n{n}_{k}": [p["subsets"][n][k] for p in per]
                        for n in per[0]["subsets"] for k in ("fpr_mean", "fpr_p90", "recall_mean")}
            out[dataset][rule] = {k: {"mean": float(np.mean(v)), "max": float(np.max(v))} for k, v in figures.items()}
            f = out[dataset][rule]
            print(f"{dataset} ({len(per)} runs) {rule:<10} FPR {100 * f['fpr']['mean']:4.1f} % (worst"
                  f" {100 * f['fpr']['max']:4.1f}), recall {100 * f['recall']['mean']:4.1f} %, held-out half"
                  f" {100 * f['holdout_half_exceed']['mean']:4.1f} %"
                  + "".join(f" | n={n}: FPR {100 * f[f'n{n}_fpr_mean']['mean']:4.1f} % (worst"
                            f" {100 * f[f'n{n}_fpr_mean']['max']:4.1f}), recall"
                            f" {100 * f[f'n{n}_recall_mean']['mean']:4.1f} %"
                            for n in per[0]["subsets"]))
    return out


def main(argv: list[str]) -> int:
    opts = {k: v for k, v in zip(argv, argv[1:], strict=False) if k.startswith("--")}
    args = [a for i, a in enumerate(argv) if not a.startswith("--") and (i == 0 or not argv[i - 1].startswith("--"))]
    if len(args) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    name, runs = args[0], args[1:]
    cache, splits = Path(opts.get("--cache", "threshold_rules_cache")), int(opts.get("--splits", "200"))
    sizes = [int(v) for v in opts.get("--sizes", "10,20,40").split(",")]
    starts = opts["--tail-from"].split(",") if "--tail-from" in opts else []
    rules = [*RULES, *(f"{rule}@{p}" for rule in ("tail", "predictive") for p in starts)]
    quantile = float(opts["--quantile"]) if "--quantile" in opts else None
    record = {"name": name, "rules": rules, "splits": splits, "sizes": sizes, "quantile": quantile, "runs": {}}
    for run in runs:
        res = analyse(run_scores(run, cache), splits, sizes, rules, quantile)
        res["dataset"] = json.loads((Path(run) / "metrics.json").read_text())["dataset"]
        record["runs"][run] = res
        print(f"{run}: {res['dataset']}, {res['held_out']} held out, {res['views']} views")
        for rule, r in res["rules"].items():
            print(f"  {rule:<10} thr {r['threshold']:9.3f}  FPR {100 * r['fpr']:5.1f} %"
                  f"  recall {100 * r['recall']:5.1f} %"
                  f"  held-out half above {100 * r['holdout_half_exceed']:5.1f} %"
                  + "".join(f"  n={n}: {100 * v['fpr_mean']:4.1f} % / {100 * v['recall_mean']:4.1f} %"
                            for n, v in r["subsets"].items()))
    record["summary"] = summarise(record["runs"], rules)
    save_record(name, record)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
