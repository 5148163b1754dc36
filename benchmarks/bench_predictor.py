"""The predictors against the exhaustive front of the whole space (``make bench-predictor``; heavy).

On CIFAR-10 at ``quick``, the head bank of the space is trained once (training seed 0; it is the ground truth,
shared by every search seed) and cached.  Then, for each search seed:

* **quality**: a random search reveals candidates until a quarter of the bank's heads are known; both
  predictors learn from exactly that (the tree ensemble from the evaluated candidates plus networks of their
  heads scored exactly, as the search's archive holds its free front members; the structured one from the
  heads) and predict ``--holdout`` random candidates that each hold at least one head they were not given.
* **search efficiency**: the search loop (``eenas search``) with each predictor, and a random search, reveal heads
  from the cached bank (a true evaluation costs no training); after each iteration (each candidate, for random)
  the hypervolume of the front found so far divided by that of the exhaustive front (``eenas search
  --exhaustive``).

Everything is on the validation split, predicted and true, fronts and hypervolumes: this measurement chooses the
search's default predictor, so it must not read test.  Only the exhaustive front's test hypervolume is reported.

Writes ``quality.csv`` (with ``quality_points.csv``), ``efficiency.csv`` (with ``efficiency_summary.csv`` and
``efficiency_paired.csv``),
``summary.md`` and ``efficiency.png`` under ``--out``.

``--cached-heads`` measures quality only, where the whole bank cannot be trained: the truth is the heads the
cache already holds, the predictors are given a random quarter of the *whole* space's head count from them, and
they predict random candidates made of cached heads, at least one not given (validation split, as above).  The
cached heads are those earlier searches wanted, not a random sample of the space: say so next to its numbers.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from eenas.arch import ExitConfig
from eenas.hardware import use_cache_dir
from eenas.io import DEFAULT_CACHE_DIR
from eenas.search import SearchConfig, SearchRun, build_run
from eenas.search.archive import Archive, Record
from eenas.search.holdout import metrics
from eenas.search.objectives import hypervolume
from eenas.search.operators import random_genomes
from eenas.search.predictor import Predictor
from eenas.search.space import genome_text
from eenas.search.strategies.random_search import fresh_genomes
from eenas.search.structured import StructuredPredictor

OUT = Path(__file__).resolve().parents[1] / "docs" / "results" / "predictor-full"
PREDICTORS = ("structured", "trees")
FREE = 200  # exactly scored networks of known heads the tree ensemble also learns from (as in the search)
POOLED_RESAMPLES = 200  # bootstrap resamples over the seeds' candidates together (tau's cost grows as n^2)
QUALITY_AT = 0.25  # share of the bank's heads the predictors are given in the quality measurement
STOP_AT = 0.5  # the efficiency runs stop once this share of the bank's heads is revealed
MAX_ITERATIONS = 20
ZOOM = 85  # the plot's lowest hypervolume ratio (%): where the strategies differ
QUALITY = {  # metric: (true column, predicted column, statistic), as eenas.search.holdout.METRICS
    "accuracy_tau": ("accuracy", "predicted_accuracy", "tau"),
    "accuracy_rmse": ("accuracy", "predicted_accuracy", "rmse"),
    "average_et_tau": ("average_et", "predicted_average_et", "tau"),
    "average_et_rmse": ("average_et", "predicted_average_et", "rmse"),  # in units of the reference (static) ET
}

log = logging.getLogger("bench_predictor")


def config(space: dict, sizes: dict, **kwargs) -> SearchConfig:
    """The quick search on CIFAR-10 over ``space`` (bits, heads, mounts; training seed 0: one head bank)."""
    mounts = space.get("mounts", ())
    return SearchConfig.create("cifar10", "quick", overrides={"holdout": 0, **sizes}, **space,
                               max_exits=min(6, len(mounts) or 6), **kwargs)


def search(cfg: SearchConfig, out: Path, seed: int, cache: Path) -> SearchRun:
    """A search run whose *search* randomness comes from ``seed`` (its training seed stays the config's)."""
    return build_run(cfg, out, force=True, cache_dir=str(cache), device="cpu", search_seed=[seed, 16])


class Truth:
    """The whole bank (or only ``available`` heads), loaded once: exact scores and hypervolumes on either split."""

    def __init__(self, run: SearchRun, available: set | None = None) -> None:
        self.run, self.space, self.evaluator = run, run.space, run.evaluator
        self.reference = run.reference_cost()
        self.available = available
        self._scores: dict = {}

    def allows(self, genome) -> bool:
        """Whether every head of ``genome`` is in the truth (always, for the whole bank)."""
        return self.available is None or all(h in self.available for h in self.heads(genome))

    def score(self, genome, split: str):
        if (genome, split) not in self._scores:
            self._scores[(genome, split)] = self.evaluator.score(self.space.decode(genome), split)
        return self._scores[(genome, split)]

    def hypervolume(self, archive: Archive, split: str = "val") -> float:
        """Of the archive's front (chosen on validation) scored on ``split``, normalised as the search's."""
        scores = [self.score(r.genome, split) for r in archive.pareto()]
        return hypervolume(archive.objectives, scores, self.reference)

    def heads(self, genome) -> list:
        return self.evaluator.heads(self.space.decode(genome))


def random_search(truth: Truth, seed: int, stop: int) -> tuple[Archive, set, list[dict]]:
    """The random strategy's candidates (``eenas search --strategy random``) evaluated in turn until ``stop`` heads
    are revealed; the curve after each."""
    archive, known, curve = Archive(truth.space, objectives=truth.run.objectives), set(), []
    for genome in fresh_genomes(truth.space, archive, 100 * stop, seed):
        if not truth.allows(genome):
            continue
        new = [h for h in truth.heads(genome) if h not in known]
        known.update(new)
        score = truth.score(genome, "val")
        archive.add(Record(genome, 0, "random", "ok", len(new), score, None, truth.run.constraints.feasible(score)))
        curve.append({"heads": len(known), "evaluations": len(archive), "hypervolume": truth.hypervolume(archive)})
        if len(known) >= stop:
            break
    return archive, known, curve


def known_genomes(space, known: set, n: int, rng: np.random.Generator) -> list:
    """Up to ``n`` distinct random networks made only of ``known`` heads (random thresholds and mappings)."""
    by_bits: dict = {}
    for pb, mount, kind, pe in sorted(known, key=str):
        by_bits.setdefault((pb.weights, pe.weights), {}).setdefault(mount, []).append(kind)
    out = set()
    for _ in range(20 * n):
        bits = list(by_bits)[rng.integers(len(by_bits))]
        mounts = sorted(by_bits[bits])
        chosen = rng.choice(mounts, size=rng.integers(1, min(space.max_exits, len(mounts)) + 1), replace=False)
        exits = tuple(ExitConfig(int(m), by_bits[bits][m][rng.integers(len(by_bits[bits][m]))],
                                 space.thresholds[rng.integers(len(space.thresholds))],
                                 core=int(rng.integers(space.cores)), overlap=bool(rng.integers(2)))
                      for m in sorted(chosen))
        out.add(space.genome(space.encode(space.arch(exits, *bits))))
        if len(out) == n:
            break
    return sorted(out)


def quality(truth: Truth, seed: int, n: int, given: int, split: str = "val") -> pd.DataFrame:
    """Both predictors given the heads of a random search's first ``given`` revealed heads, on ``n`` candidates
    holding a head they were not given; ``split`` throughout."""
    archive, known, _ = random_search(truth, seed, given)
    space, evaluator = truth.space, truth.evaluator
    # The search's archive also holds exactly scored networks of known heads (its free front members): the
    # tree ensemble learns from those as well, so it gets as many here.
    genomes = [r.genome for r in archive] + known_genomes(space, known, FREE, np.random.default_rng([seed, 18]))
    tests = [truth.score(g, split) for g in genomes]
    # Ratios laid out as each genome's exits, then the classifier (a score's are its live network's), as the search
    # fits them (Archive.training_set).
    fit = (np.array(genomes), [np.array(s.ratios_as(space.decode(g))) for g, s in zip(genomes, tests)],
           np.array([s.accuracy for s in tests]))
    held, seen = [], set(genomes)
    for x in random_genomes(space, 50 * n, int(np.random.default_rng([seed, 17]).integers(2**31 - 1))):
        genome = space.genome(x)
        if genome not in seen and truth.allows(genome) and any(h not in known for h in truth.heads(genome)):
            held.append(genome)
            seen.add(genome)
        if len(held) == n:
            break
    true = [truth.score(g, split) for g in held]
    everything, rows = evaluator.known, []
    evaluator.known = set(known)  # what the structured predictor may read
    try:
        for kind in PREDICTORS:
            predictor = StructuredPredictor(space, evaluator, seed, split) if kind == "structured" else \
                Predictor(space, seed)
            prediction = predictor.fit(*fit).predict(np.array(held))
            for g, t, acc, ratios in zip(held, true, prediction.accuracy, prediction.exit_ratios):
                rows.append({"predictor": kind, "seed": seed, "split": split, "genome": genome_text(g),
                             "accuracy": t.accuracy, "predicted_accuracy": float(acc),
                             "average_et": t.average_et / truth.reference.static_et,
                             "predicted_average_et": evaluator.predicted(space.decode(g), float(acc), ratios)
                             .average_et / truth.reference.static_et,  # priced as deployed, like the search's
                             "new_heads": sum(h not in known for h in truth.heads(g))})
    finally:
        evaluator.known = everything
    return pd.DataFrame(rows)


def efficiency(cfg: SearchConfig, truth: Truth, seed: int, stop: int, tmp: Path, cache: Path) -> pd.DataFrame:
    """Hypervolume ratio against heads revealed: the loop with each predictor, and random search."""
    rows = []
    for kind in PREDICTORS:
        run = search(replace(cfg, predictor=kind), tmp / f"{kind}-{seed}", seed, cache)
        start = time.perf_counter()
        while not run.done and len(run.evaluator.known) < stop:
            run.step()
            rows.append({"strategy": kind, "seed": seed, "heads": len(run.evaluator.known),
                         "evaluations": len(run.archive.ok), "hypervolume": truth.hypervolume(run.archive)})
        log.info("%s seed %d: %d iterations in %.0f s", kind, seed, run.state.iteration, time.perf_counter() - start)
    _, _, curve = random_search(truth, seed, stop)
    rows += [{"strategy": "random", "seed": seed, **point} for point in curve]
    return pd.DataFrame(rows)


def at(curve: pd.DataFrame, heads: int) -> float:
    """The hypervolume ratio with at most ``heads`` revealed (the last point at or below; 0 before the first)."""
    below = curve[curve["heads"] <= heads]
    return float(below["hv_ratio"].iloc[-1]) if len(below) else 0.0


def reached_table(curves: pd.DataFrame, bank: int) -> pd.DataFrame:
    """Per strategy and seed: the hypervolume ratio with a quarter of the bank revealed, and the heads
    revealed when 98% was first reached."""
    quarter = round(bank / 4)
    return pd.DataFrame([{"strategy": k, "seed": s, "hv_ratio_at_quarter": at(c, quarter),
                          "heads_to_98pct": c.loc[c["hv_ratio"] >= 0.98, "heads"].min()}
                         for (k, s), c in curves.groupby(["strategy", "seed"])])


PAIRS = (("trees", "structured"), ("trees", "random"), ("structured", "random"))


def paired_table(reached: pd.DataFrame, resamples: int = 10000) -> pd.DataFrame:
    """Differences of the ratio at a quarter of the heads between strategies on the same seeds (same initial
    sample and search seed), with a percentile-bootstrap interval of the mean difference: the seeds vary
    together, so pairing separates strategies that per-strategy intervals leave overlapping."""
    rng, rows = np.random.default_rng(0), []
    ratios = reached.pivot(index="seed", columns="strategy", values="hv_ratio_at_quarter")
    for a, b in PAIRS:
        if a in ratios and b in ratios:
            diff = (ratios[a] - ratios[b]).to_numpy()
            means = rng.choice(diff, (resamples, len(diff))).mean(axis=1)
            rows.append({"difference": f"{a} - {b}", "seeds": len(diff), "mean": diff.mean(),
                         "ci_low": np.percentile(means, 2.5), "ci_high": np.percentile(means, 97.5),
                         "seeds_ahead": int((diff > 0).sum())})
    return pd.DataFrame(rows)


def strategy_table(reached: pd.DataFrame, resamples: int = 2000) -> pd.DataFrame:
    """Each strategy's hypervolume ratio at a quarter of the heads over the seeds, with a percentile-bootstrap
    interval of the mean, and how many seeds reached 98% by then (a handful of seeds is not a finding alone)."""
    rng, rows = np.random.default_rng(0), []
    for kind, group in reached.groupby("strategy"):
        ratios = group["hv_ratio_at_quarter"].to_numpy()
        means = rng.choice(ratios, (resamples, len(ratios))).mean(axis=1)
        rows.append({"strategy": kind, "seeds": len(ratios), "hv_ratio_at_quarter": ratios.mean(),
                     "ci_low": np.percentile(means, 2.5), "ci_high": np.percentile(means, 97.5),
                     "seeds_at_98pct_by_quarter": int((ratios >= 0.98).sum()),
                     "median_heads_to_98pct": group["heads_to_98pct"].median()})
    return pd.DataFrame(rows)


def plot(curves: pd.DataFrame, bank: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    colors = {"structured": "tab:blue", "trees": "tab:orange", "random": "tab:gray"}
    for (strategy, seed), curve in curves.groupby(["strategy", "seed"]):
        ax.step(curve["heads"], 100 * curve["hv_ratio"], where="post", lw=1, color=colors[strategy], alpha=0.6,
                label=strategy if seed == curves["seed"].min() else None)
    ax.axvline(bank / 4, color="k", lw=0.8, ls=":", label="a quarter of the heads")
    ax.axhline(98, color="k", lw=0.8, ls="--", label="98%")
    ax.set_ylim(ZOOM, 100.5)  # the first few random candidates sit lower: the table holds them all
    ax.set_xlabel(f"heads revealed (true evaluations; the bank has {bank})")
    ax.set_ylabel("hypervolume / exhaustive front's (%, validation)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def quality_table(truth: Truth, seeds: list[int], holdout: int, given: int, split: str, out: Path) -> pd.DataFrame:
    """:func:`quality` for every seed: per seed and pooled metrics with bootstrap intervals, written to ``out``."""
    points = pd.concat([quality(truth, s, holdout, given, split) for s in seeds], ignore_index=True)
    rng = np.random.default_rng(0)
    table = pd.concat([metrics(group, rng, wanted=QUALITY).assign(predictor=kind, seed=seed)
                       for (kind, seed), group in points.groupby(["predictor", "seed"])]
                      + [metrics(group, rng, POOLED_RESAMPLES, QUALITY).assign(predictor=kind, seed="all")
                         for kind, group in points.groupby("predictor")], ignore_index=True)
    table.to_csv(out / "quality.csv", index=False)
    points.to_csv(out / "quality_points.csv", index=False)
    return table


def quality_rows(table: pd.DataFrame) -> list[dict]:
    """The pooled quality metrics as ``make bench`` rows, with the issue's targets."""
    return [{"benchmark": "predictor", "metric": f"{r.metric} ({r.predictor}, seeds pooled)", "value": r.value,
             "unit": "", "target": {"accuracy_tau": ">= 0.8", "accuracy_rmse": "<= 0.005"}.get(r.metric, "")}
            for r in table[table["seed"] == "all"].itertuples()]


def measure_cached(out: Path, seeds: list[int], holdout: int, cache: Path) -> pd.DataFrame:
    """Quality only, on the heads of the whole quick space that ``cache`` already holds (validation split)."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, use_cache_dir(cache):
        run = search(config({}, {}), Path(tmp) / "run", 0, cache)
        space, pipeline = run.space, run.pipeline
        available = {h for h in space.head_bank() if pipeline.cache.path("head", pipeline.head_key(*h)).exists()}
        given = round(QUALITY_AT * len(space.head_bank()))
        if len(available) <= given:
            raise SystemExit(f"the cache holds {len(available)} of the space's heads: more than {given} are needed")
        log.info("%d of the space's %d heads cached; the predictors are given %d", len(available),
                 len(space.head_bank()), given)
        table = quality_table(Truth(run, available), seeds, holdout, given, "val", out)
    lines = [f"# Predictor quality on the cached heads (CIFAR-10, quick; {len(available)} of the space's "
             f"{len(space.head_bank())} heads cached)", "",
             f"Given {given} heads (a quarter of the space's) revealed by a random search over candidates of cached "
             f"heads; {holdout} held-out candidates per seed (seeds {seeds}), each made of cached heads with at least "
             "one not given; validation split; 95% bootstrap intervals.", "",
             table.to_markdown(index=False, floatfmt=".4g"), ""]
    (out / "summary.md").write_text("\n".join(lines))
    return pd.DataFrame(quality_rows(table))


def measure(out: Path, seeds: list[int], space: dict, sizes: dict, holdout: int, cache: Path) -> pd.DataFrame:
    """Everything above; ``space``: SearchConfig's bits, heads and mounts (empty: the whole quick space);
    ``sizes``: search-budget overrides (initial, per_iteration, ...), for a space smaller than quick's."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, use_cache_dir(cache):
        tmp = Path(tmp)
        cfg = config(space, {"iterations": MAX_ITERATIONS, **sizes})
        # The reference front gets quick's full NSGA-II sizes whatever the searches get.
        exhaustive = search(config(space, {}, strategy="exhaustive"), tmp / "exhaustive", 0, cache)
        start = time.perf_counter()
        exhaustive.step()  # the head bank (trains what the cache lacks)
        bank_s = time.perf_counter() - start
        while not exhaustive.done:
            exhaustive.step()
        truth = Truth(exhaustive)
        bank = len(exhaustive.space.head_bank())
        full, full_test = truth.hypervolume(exhaustive.archive), truth.hypervolume(exhaustive.archive, "test")
        log.info("bank of %d heads ready in %.0f s; exhaustive hypervolume %.4f (validation), %.4f (test)", bank,
                 bank_s, full, full_test)

        table = quality_table(truth, seeds, holdout, round(QUALITY_AT * bank), "val", out)

        curves = pd.concat([efficiency(cfg, truth, s, round(STOP_AT * bank), tmp, cache) for s in seeds],
                           ignore_index=True)
        curves["hv_ratio"] = curves["hypervolume"] / full
        curves.to_csv(out / "efficiency.csv", index=False)
        plot(curves, bank, out / "efficiency.png")

    quarter = round(bank / 4)
    reached = reached_table(curves, bank)
    per_strategy, paired = strategy_table(reached), paired_table(reached)
    summary = [f"# Predictors against the exhaustive front (CIFAR-10, quick; {bank} heads: bits "
               f"{exhaustive.space.bits}, heads {exhaustive.space.heads}, mounts {exhaustive.space.mounts})", "",
               f"Search sizes: {cfg.search} (exhaustive run: {exhaustive.cfg.search}), search seeds {seeds} "
               "(one head bank, training seed 0).", "",
               f"Head bank: {bank_s:.0f} s in this run (training the heads the cache lacked); "
               f"exhaustive front hypervolume {full:.4f} (validation; {full_test:.4f} on test).", "",
               f"## Quality on {holdout} candidates per seed with a head the predictors were not given "
               f"(given {round(QUALITY_AT * bank)} heads; validation split; 95% bootstrap intervals)", "",
               table.to_markdown(index=False, floatfmt=".4g"), "",
               f"## Hypervolume ratio (validation) with a quarter of the heads ({quarter}) revealed; heads revealed "
               f"when 98% was first reached (empty: not before the runs stopped, at {round(STOP_AT * bank)})", "",
               reached.to_markdown(index=False, floatfmt=".4g"), "",
               f"## Per strategy over the {len(seeds)} seeds (mean with a 95% bootstrap interval of the mean)", "",
               per_strategy.to_markdown(index=False, floatfmt=".4g"), "",
               "## Paired by seed (95% bootstrap interval of the mean difference)", "",
               paired.to_markdown(index=False, floatfmt=".4g"), ""]
    per_strategy.to_csv(out / "efficiency_summary.csv", index=False)
    paired.to_csv(out / "efficiency_paired.csv", index=False)
    (out / "summary.md").write_text("\n".join(summary))
    rows = quality_rows(table)
    rows += [{"benchmark": "predictor", "metric": f"hypervolume ratio at a quarter of the heads ({k}, mean of seeds)",
              "value": g["hv_ratio_at_quarter"].mean(), "unit": "", "target": ">= 0.98"}
             for k, g in reached.groupby("strategy")]
    rows.append({"benchmark": "predictor", "metric": f"head bank ({bank} heads, what the cache lacked)",
                 "value": bank_s, "unit": "s", "target": ""})
    return pd.DataFrame(rows)


def run() -> pd.DataFrame:
    """``benchmarks/run.py predictor``: the full measurement with the defaults (cache: $EENAS_CACHE)."""
    return measure(OUT, [0, 1, 2], {}, {}, 100, Path(os.environ.get("EENAS_CACHE", DEFAULT_CACHE_DIR)))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--bits", default="8,4", help="the space's bit-widths (backbone and exits)")
    parser.add_argument("--heads", default="", help="the space's head types (default: all)")
    parser.add_argument("--mounts", default="", help="the space's mount points (default: all)")
    parser.add_argument("--initial", type=int, default=None, help="initial sample (default: quick's)")
    parser.add_argument("--per-iteration", type=int, default=None, help="candidates per iteration (default: quick's)")
    parser.add_argument("--population", type=int, default=None, help="NSGA-II population (default: quick's)")
    parser.add_argument("--generations", type=int, default=None, help="NSGA-II generations (default: quick's)")
    parser.add_argument("--holdout", type=int, default=100, help="held-out candidates per seed")
    parser.add_argument("--cache-dir", type=Path, default=Path(os.environ.get("EENAS_CACHE", DEFAULT_CACHE_DIR)))
    parser.add_argument("--paired", action="store_true",
                        help="only the paired differences, from OUT/efficiency.csv of a finished measurement "
                             "(written to OUT/efficiency_paired.csv)")
    parser.add_argument("--bank", type=int, default=272, help="with --paired: the heads of the measured space")
    parser.add_argument("--cached-heads", action="store_true",
                        help="quality only, on the heads of the whole space the cache holds (validation split)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    def items(text: str, kind=int) -> tuple:
        return tuple(kind(v) for v in text.split(",") if v)

    space = {"bits": items(args.bits), "heads": items(args.heads, str), "mounts": items(args.mounts)}
    sizes = {k: getattr(args, k) for k in ("initial", "per_iteration", "population", "generations")
             if getattr(args, k) is not None}
    if args.paired:
        table = paired_table(reached_table(pd.read_csv(args.out / "efficiency.csv"), args.bank))
        table.to_csv(args.out / "efficiency_paired.csv", index=False)
    elif args.cached_heads:
        table = measure_cached(args.out, list(items(args.seeds)), args.holdout, args.cache_dir)
    else:
        table = measure(args.out, list(items(args.seeds)), space, sizes, args.holdout, args.cache_dir)
    print(table.to_markdown(index=False, floatfmt=".4g"))


if __name__ == "__main__":
    main(sys.argv[1:])
