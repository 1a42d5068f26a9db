"""`tinyhar search`: the `tiny` family searched with Ray Tune (Optuna's TPE, multi-objective) for a
dataset and a board; writes every trial, the Pareto front (JSON + PNG) and the best model that fits
the board's budget as a run folder `tinyhar build` takes as it is."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from tinyhar.board.boards import Board, default_board
from tinyhar.deploy.quantize import quantize_run
from tinyhar.device.emulator import emulation_missing
from tinyhar.errors import TinyharError
from tinyhar.files import atomic_write_bytes, atomic_write_json
from tinyhar.log import inf
from tinyhar.model.train import DOWNSTREAM, TrainConfig, resolve_data
from tinyhar.parallel.ray_env import describe, plan, ray_session
from tinyhar.run import folder as runs
from tinyhar.run.records import DatasetContract
from tinyhar.search import DEFAULT_TRIALS
from tinyhar.search.pareto import LATENCY, SCORE, latency_key, pareto_front, pareto_png
from tinyhar.search.trial import SPACE, TrialContext, run_trial

Trial = Callable[[dict[str, Any], TrialContext, str], dict[str, Any]]
# A trained run's files the best trial hands to the search's run folder.
RUN_FILES = (
    runs.KERAS_MODEL,
    runs.DATASET_JSON,
    runs.WINDOWS_NPZ,
    runs.HISTORY_JSON,
    runs.CONFUSION_PNG,
    runs.HISTORY_PNG,
    runs.METRICS_JSON,
)


@dataclass
class SearchOptions:
    """`tinyhar search`: the training each trial does, the board, the budget of trials."""

    train: TrainConfig
    board: Board = field(default_factory=default_board)
    trials: int = DEFAULT_TRIALS
    workers: int | None = None
    address: str | None = None
    resume: bool = False
    max_model_kb: float | None = None  # None: the board's model budget
    max_arena_kb: float | None = None  # None: the board's arena budget
    max_instructions: int | None = None  # a hard bound, counted on the emulated board
    emulate: bool | None = None  # instructions per trial on the emulated board; None: if it runs
    progress: bool = True


@dataclass
class SearchResult:
    run: Path
    summary: dict[str, Any]
    files: list[Path] = field(default_factory=list)


def budget_of(opts: SearchOptions) -> dict[str, int]:
    """Model and arena bytes a model may take: the board's, or less when asked; and the
    instructions per inference when bounded."""
    b = opts.board
    model, arena = b.model_flash_bytes, b.arena_ram_bytes
    if opts.max_model_kb is not None:
        model = min(model, int(opts.max_model_kb * 1024))
    if opts.max_arena_kb is not None:
        arena = min(arena, int(opts.max_arena_kb * 1024))
    budget = {"model_bytes": int(model), "arena_bytes": int(arena)}
    if opts.max_instructions is not None:
        budget["instructions"] = int(opts.max_instructions)
    return budget


def _trainable(config: dict[str, Any], ctx: TrialContext, trial: Trial) -> None:
    from ray import tune  # lazy: Ray is an optional extra

    tune.report(trial(config, ctx, tune.get_context().get_trial_id()))


def _progress(total: int, show: bool):
    """A Tune callback: one line per finished or failed trial, and an overall bar."""
    from ray import tune  # lazy: Ray is an optional extra

    class Progress(tune.Callback):
        def __init__(self) -> None:
            # made on first use: Tune pickles its callbacks with the experiment
            self.bar: tqdm | None = None

        def __getstate__(self) -> dict:
            return {**self.__dict__, "bar": None}

        def setup(self, stop=None, num_samples=None, total_num_samples=None, **info) -> None:
            # the experiment starts: the bar's clock too
            self._bar()

        def _bar(self) -> tqdm:
            if self.bar is None:
                self.bar = tqdm(
                    total=total, desc="trials", unit="trial", file=sys.stderr, disable=not show
                )
            return self.bar

        def _line(self, text: str) -> None:
            bar = self._bar()
            bar.write(text, file=sys.stderr)
            bar.update(1)

        def on_trial_complete(self, iteration, trials, trial, **info) -> None:
            r = trial.last_result or {}
            again = r.get("trained_in") not in (None, trial.trial_id)
            if "over_instructions" in r:
                self._line(
                    f"trial {trial.trial_id} {_params(trial.config)}: "
                    f"{r['over_instructions'] / 1e6:.2f} M instructions (untrained), over "
                    f"--max-instructions: not trained"
                )
                return
            self._line(
                f"trial {trial.trial_id} {_params(trial.config)}: int8 val "
                f"{r.get(SCORE, 0):.4f}, model {r.get('model_bytes', 0) / 1024:.1f} KB, "
                f"arena {r.get('arena_bytes', 0) / 1024:.1f} KB, {_latency(r)}"
                + (f" (the size of trial {r['trained_in']}: not trained again)" if again else "")
            )

        def on_trial_error(self, iteration, trials, trial, **info) -> None:
            self._line(
                f"trial {trial.trial_id} {_params(trial.config)}: FAILED (reported in "
                f"{runs.SEARCH_JSON}; the search goes on)"
            )

        def on_experiment_end(self, trials, **info) -> None:
            if self.bar is not None:
                self.bar.close()

    return Progress()


def _params(config: dict[str, Any]) -> str:
    return " ".join(f"{k}={config[k]}" for k in SPACE if k in config)


def run_search(
    opts: SearchOptions, log: Callable[[str], None] = inf, trial: Trial = run_trial
) -> SearchResult:
    """Run (or resume) the trials on Ray Tune, then write R/search.json, R/search_pareto.png and
    the best model that fits into R itself (quantized for the board)."""
    if opts.trials < 1:
        raise TinyharError("--trials must be at least 1")
    cfg = opts.train
    data = resolve_data(cfg.data).resolve()
    budget = budget_of(opts)
    run = Path(cfg.run) if cfg.run is not None else runs.new_run_dir("tiny", "search")
    run = run.resolve()
    tune_dir = run / runs.TUNE_DIR
    if opts.resume and not tune_dir.is_dir():
        raise TinyharError(f"--resume: {run} has no {runs.TUNE_DIR}/ to resume: drop --resume")
    if not opts.resume and tune_dir.exists():
        raise TinyharError(f"{run} already holds a search: add --resume, or pick a new --run")
    ctx = TrialContext(
        replace(cfg, data=data, arch="tiny", run=None),
        run / runs.TRIALS_DIR,
        _emulated_board(opts, log),
        opts.max_instructions,
    )
    cluster = plan(opts.workers, opts.address)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # no Tune tables on stdout: ours instead
    with ray_session(cluster) as ray:
        from optuna import logging as optuna_logging  # lazy: with the search it serves
        from ray import tune  # lazy: Ray is an optional extra
        from ray.tune.search.optuna import OptunaSearch  # lazy: Ray is an optional extra

        optuna_logging.set_verbosity(optuna_logging.WARNING)

        log(f"{describe(cluster, ray)}; {opts.trials} trials of tiny into {run}")
        trainable = tune.with_resources(
            tune.with_parameters(_trainable, ctx=ctx, trial=trial), {"cpu": 1}
        )
        if opts.resume:
            log(f"resuming the search in {tune_dir}")
            tuner = tune.Tuner.restore(str(tune_dir), trainable, resume_errored=False)
        else:
            searcher = OptunaSearch(
                metric=[SCORE, _ranked_cost(opts)], mode=["max", "min"], seed=cfg.seed
            )
            tuner = tune.Tuner(
                trainable,
                param_space={k: tune.choice(v) for k, v in SPACE.items()},
                tune_config=tune.TuneConfig(
                    search_alg=searcher,
                    num_samples=opts.trials,
                    max_concurrent_trials=cluster.workers or None,
                ),
                run_config=tune.RunConfig(
                    name=runs.TUNE_DIR,
                    storage_path=str(run),
                    verbose=0,
                    callbacks=[_progress(opts.trials, opts.progress)],
                    failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
                ),
            )
        grid = tuner.fit()
        trials = _collect(grid)
    ended = sum(1 for t in trials if SCORE in t or "error" in t)
    if ended < max(len(trials), 0 if opts.resume else opts.trials):
        log(
            f"the search stopped after {ended} trials: the same command with --resume runs "
            f"the rest from {tune_dir}"
        )
        raise KeyboardInterrupt
    return _finish(opts, run, trials, budget, log)


def _ranked_cost(opts: SearchOptions) -> str:
    """What the searcher minimises beside maximising accuracy: instructions under a bound on
    them, else model bytes."""
    return "model_bytes" if opts.max_instructions is None else "instructions"


def _emulated_board(opts: SearchOptions, log: Callable[[str], None]) -> Board | None:
    """The board whose emulated firmware measures each trial's instructions, or None."""
    bounded = opts.max_instructions is not None
    if opts.emulate is False:
        if bounded:
            raise TinyharError(
                "--max-instructions is counted on the emulated board: drop --no-emulate"
            )
        return None
    missing = emulation_missing(opts.board)
    if missing is None:
        return opts.board
    if bounded:
        raise TinyharError(
            f"--max-instructions is counted on the emulated {opts.board.name}, which "
            f"this machine cannot run: {missing}"
        )
    if opts.emulate:
        raise TinyharError(f"--emulate: {missing}; or drop --emulate to rank latency by MACs")
    log(f"instructions per inference not measured ({missing}): latency is ranked by MACs")
    return None


def _latency(r: dict[str, Any]) -> str:
    if r.get("instructions"):
        return f"{r['instructions'] / 1e6:.2f} M instructions"
    return f"{r.get('macs', 0) / 1000:.0f} kMAC"


def _collect(grid) -> list[dict[str, Any]]:
    """Every trial of the Tune result grid: its parameters and figures, or its error."""
    out = []
    for r in grid:
        trial_id = _trial_id(r)
        entry = {"trial": trial_id, "params": {k: (r.config or {}).get(k) for k in SPACE}}
        if r.error is not None:
            text = str(r.error).strip().splitlines()
            entry["error"] = text[-1] if text else type(r.error).__name__
        else:
            entry.update({k: v for k, v in (r.metrics or {}).items() if not _tune_key(k)})
        out.append(entry)
    return sorted(out, key=lambda e: e["trial"])


def _trial_id(result) -> str:
    """Tune's id of a trial, from its folder `_trainable_<id>_<n>_<params>_<date>`."""
    parts = Path(result.path).name.split("_") if result.path else []
    return parts[2] if len(parts) > 2 else "?"


def _tune_key(key: str) -> bool:
    return key in {
        "timestamp",
        "checkpoint_dir_name",
        "done",
        "training_iteration",
        "trial_id",
        "date",
        "time_this_iter_s",
        "time_total_s",
        "pid",
        "hostname",
        "node_ip",
        "config",
        "time_since_restore",
        "iterations_since_restore",
    }


def _finish(
    opts: SearchOptions,
    run: Path,
    trials: list[dict[str, Any]],
    budget: dict[str, int],
    log: Callable[[str], None],
) -> SearchResult:
    done = [t for t in trials if "error" not in t and SCORE in t]
    for t in done:
        if t.get("trained_in") not in (None, t["trial"]):
            t["repeat_of"] = t["trained_in"]
    over = [t for t in done if "over_instructions" in t and "repeat_of" not in t]
    ok = [t for t in done if "repeat_of" not in t and "over_instructions" not in t]  # trained
    failed = [t for t in trials if "error" in t]
    if not ok:
        first = failed[0]["error"] if failed else "no trial finished"
        if over and not failed:
            first = f"every size tried exceeds --max-instructions {budget['instructions']}"
        raise TinyharError(f"no search trial finished ({first}): see {run / runs.TUNE_DIR}")
    bound = budget.get("instructions")
    for t in ok:
        t["fits"] = t["model_bytes"] <= budget["model_bytes"] and (
            t["arena_bytes"] <= budget["arena_bytes"]
        )
        t["fits"] = t["fits"] and _within(t, bound)
    within = [i for i, t in enumerate(ok) if _within(t, bound)]
    front = [within[i] for i in pareto_front([ok[i] for i in within])]
    fits = [i for i, t in enumerate(ok) if t["fits"]]
    best = max(fits, key=lambda i: (ok[i][SCORE], -ok[i]["model_bytes"]), default=None)
    summary: dict[str, Any] = {
        "latency": {"key": latency_key(ok), "measure": LATENCY[latency_key(ok)][0]},
        "algorithm": f"Optuna TPE (multi-objective: int8 validation accuracy up, "
        f"{_ranked_cost(opts).replace('_', ' ')} down) through Ray Tune",
        "board": opts.board.name,
        "budget": budget,
        "trials_asked": opts.trials,
        "trials": trials,
        "failed": [{"trial": t["trial"], "error": t["error"]} for t in failed],
        "pareto": [ok[i]["trial"] for i in front],
        "over_instructions": [t["trial"] for t in over],
        "best": ok[best]["trial"] if best is not None else None,
        "smallest_within_1pp": None,
        "selection": f"{SCORE}: validation windows; the test split is reported, never chosen on",
    }
    if best is not None:
        near = [i for i in fits if ok[i][SCORE] >= ok[best][SCORE] - 0.01]
        summary["smallest_within_1pp"] = ok[min(near, key=lambda i: ok[i]["model_bytes"])]["trial"]
    synthetic = _synthetic(ok[0])
    data = "SYNTHETIC data" if synthetic else "real data"
    summary["synthetic"] = synthetic
    png = pareto_png(
        ok,
        front,
        best,
        budget,
        f"tiny search on {data} for {opts.board.name}: {len(ok)} sizes tried",
    )
    files = [atomic_write_bytes(run / runs.SEARCH_PNG, png)]
    if best is not None:
        _adopt(Path(ok[best]["run"]), run, opts.board, log)
        files.append(run / runs.QUANTIZE_JSON)
    else:
        log(f"no trial fits the budget of {opts.board.name} ({budget}): no model in {run}")
    files.append(atomic_write_json(run / runs.SEARCH_JSON, summary))
    return SearchResult(run, summary, files)


def _within(trial: dict[str, Any], bound: int | None) -> bool:
    """Whether a trained trial's firmware (counted on the emulated board) meets the bound."""
    return bound is None or trial.get("instructions", bound + 1) <= bound


def _synthetic(trial: dict[str, Any]) -> bool:
    return DatasetContract.load(Path(trial["run"])).synthetic


def _adopt(best: Path, run: Path, board: Board, log: Callable[[str], None]) -> None:
    """The best trial's model becomes the search run's own, quantized for `board` as `tinyhar
    quantize` does, so `tinyhar build --run R` takes it as it is."""
    for name in DOWNSTREAM:  # made from an earlier best: no longer this model's
        stale = run / name
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()
    for name in RUN_FILES:
        tmp = run / f".{name}.adopt"
        shutil.copyfile(best / name, tmp)
        tmp.replace(run / name)
    log(f"best trial {best.name}: quantizing it for {board.name} into {run}")
    quantize_run(run, log=lambda _line: None, board=board)


def format_search(result: SearchResult) -> str:
    """The Pareto front as a table, the best and where the files are."""
    s = result.summary
    by_id = {t["trial"]: t for t in s["trials"]}
    lat = latency_key([by_id[t] for t in s["pareto"]])
    lat_name, lat_unit, digits = ("M insn", 1e6, 2) if lat == "instructions" else ("kMAC", 1e3, 0)
    rows = [
        f"{'trial':<12} {'params':<52} {'int8 val':>8} {'test':>6} {'model KB':>8} "
        f"{'arena KB':>8} {lat_name:>7}"
    ]
    for tid in s["pareto"]:
        t = by_id[tid]
        mark = " best" if tid == s["best"] else ""
        rows.append(
            f"{tid[-12:]:<12} {_params(t['params']):<52} {t[SCORE]:>8.4f} "
            f"{t['int8_test_accuracy']:>6.3f} {t['model_bytes'] / 1024:>8.1f} "
            f"{t['arena_bytes'] / 1024:>8.1f} "
            f"{t[lat] / lat_unit:>7.{digits}f}{mark}"
        )
    rows += [f"trial {f['trial']} FAILED: {f['error']}" for f in s["failed"]]
    if s.get("over_instructions"):
        rows.append(
            f"{len(s['over_instructions'])} sizes over --max-instructions "
            f"{s['budget']['instructions']:,}: not trained"
        )
    done = len(s["trials"]) - len(s["failed"])
    repeats = sum(1 for t in s["trials"] if "repeat_of" in t)
    again = f" ({repeats} of them a size tried before, not trained again)" if repeats else ""
    rows.append(
        f"{done} trials finished{again}, {len(s['failed'])} failed; Pareto front above "
        f"({len(s['pareto'])} trials)"
    )
    if s["best"]:
        b = by_id[s["best"]]
        rows.append(
            f"best within the {s['board']} budget: {s['best']} ({_params(b['params'])}), "
            f"int8 val {b[SCORE]:.4f}; smallest within 1 pp: {s['smallest_within_1pp']}"
        )
    if s["synthetic"]:
        rows.append("these figures are on SYNTHETIC data: they say nothing about real accuracy")
    rows.append(
        f"run folder: {result.run}  ({', '.join(p.name for p in result.files)}); "
        f"next: tinyhar build --run {result.run}"
    )
    return "\n".join(rows)
