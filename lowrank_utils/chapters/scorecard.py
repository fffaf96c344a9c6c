"""The scorecard (back matter): each claim of the paper, what this course measured, and a verdict.

Every number on the card comes either from a stored full run (``lowrank_utils/stored_runs``, read with whatever frames
and columns the file holds) or from a small computation run here: cut-down quick presets of chapters 2, 3 and 7, a few
seconds in all. Nothing is typed in. Each verdict is computed from those numbers by the rule stated in its function, so
a new or changed stored run updates the card by itself.

Verdicts: ``reproduced`` (our measurement shows the claim), ``partly`` (it shows part of it, or shows it with a caveat
that the reason names), ``not shown here`` (we measured and it does not show, or the evidence is missing) and ``not
testable here`` (the data or hardware the claim needs are not available to this course).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lowrank_utils.results import STORED_RUNS

__all__ = [
    "VERDICTS",
    "Entry",
    "CLAIMS",
    "stored_frames",
    "scorecard",
    "scorecard_html",
    "trained_network_counts",
    "STORED_RUNS_READ",
    "stored_runs_read",
]

VERDICTS: tuple[str, ...] = ("reproduced", "partly", "not shown here", "not testable here")
"""The four verdicts, strongest first."""


@dataclass(frozen=True)
class Entry:
    """One row of the scorecard: the claim, the chapter that tests it (a notebook name), what was measured here and
    in the stored full run, the verdict and why."""

    claim: str
    chapter: str
    quick: str
    stored: str
    verdict: str
    reason: str

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}.")


# ------------------------------------------------------------------------------------------------------------------
# Reading stored runs


def stored_frames(name: str, root: str | Path | None = None) -> dict[str, pd.DataFrame] | None:
    """The tables of the stored run ``name`` (a JSON file, or a folder of JSON files whose tables are concatenated),
    or ``None`` when nothing is stored under that name. Reads both the ``frames`` format and the older ``results``
    one; a file without its provenance (``command`` and ``date``) is refused with ``ValueError``."""
    root = Path(STORED_RUNS if root is None else root)
    path = root / name
    files = sorted(path.glob("*.json")) if path.is_dir() else [p for p in [root / f"{name}.json"] if p.is_file()]
    if not files:
        return None
    tables: dict[str, list[pd.DataFrame]] = {}
    for file in files:
        payload = json.loads(file.read_text())
        missing = [k for k in ("command", "date") if not payload.get(k)]
        if missing:
            raise ValueError(
                f"{file} lacks the provenance fields {missing}; the scorecard shows no untraceable result."
            )
        frames = payload.get("frames") or {"results": payload.get("results", [])}
        for key, rows in frames.items():
            tables.setdefault(key, []).append(pd.DataFrame(rows))
    return {key: pd.concat(parts, ignore_index=True) for key, parts in tables.items()}


def _table(frames: dict[str, pd.DataFrame] | None, needs: set[str]) -> pd.DataFrame | None:
    """The first table of a stored run that has all the columns ``needs`` (frame names may change; columns are what
    the card relies on), without diverged runs."""
    for table in (frames or {}).values():
        if needs <= set(table.columns):
            if "diverged" in table:
                table = table[~table["diverged"].fillna(False).astype(bool)]
            return table
    return None


def _names(prefix: str, root: str | Path | None = None) -> list[str]:
    """Stored runs (files or folders) whose name starts with ``prefix``."""
    root = Path(STORED_RUNS if root is None else root)
    return sorted({p.stem if p.suffix == ".json" else p.name for p in root.glob(f"{prefix}*")})


def _f(x: float) -> str:
    return f"{x:.2f}"


def _g(x: float) -> str:
    """Two decimals, or two significant digits in scientific notation for small numbers."""
    return f"{x:.2f}" if abs(x) >= 0.01 or x == 0 else f"{x:.1e}"


def _arrow(values: pd.Series) -> str:
    """'a → b' from the first to the last value of a series indexed by depth."""
    return f"{_f(values.iloc[0])} → {_f(values.iloc[-1])}"


def _config(name: str, key: str) -> str:
    """A configuration value from the provenance of the stored run file ``name``, as text ('?' when absent)."""
    path = Path(STORED_RUNS) / f"{name}.json"
    config = json.loads(path.read_text()).get("config") or {} if path.is_file() else {}
    return str(config.get(key, "?"))


def _missing(claim: str, chapter: str, run: str) -> Entry:
    return Entry(
        claim,
        chapter,
        "not re-run here",
        "no stored run",
        "not shown here",
        f"no stored full run named {run!r} with the columns the card needs; run the chapter's full preset",
    )


# ------------------------------------------------------------------------------------------------------------------
# Observation 1 and the volume argument (small computations run here)


def observation_1() -> Entry:
    """Random deeper networks have lower ρ(K), in all four panels. Rule: ``reproduced`` when the median falls at every
    depth step and the spread (interquartile range) is wider at the deepest depth than at depth 1 in every panel;
    ``partly`` when only the medians fall."""
    from lowrank_utils.chapters.ch02_random_initialization import RandomInitConfig, rank_distribution

    config = RandomInitConfig.quick()
    panels = rank_distribution(config)
    grouped = panels.groupby(["activation", "init", "depth"])["rho"]
    median = grouped.median()
    spread = grouped.quantile(0.75) - grouped.quantile(0.25)
    lines, falls, widens = [], 0, 0
    keys = median.index.droplevel("depth").unique()
    for activation, init in keys:
        m, s = median.loc[(activation, init)], spread.loc[(activation, init)]
        falls += bool(m.diff().dropna().lt(0).all())
        widens += bool(s.iloc[-1] > s.iloc[0])
        lines.append(f"{activation}/{init} {_arrow(m)}")
    quick = (
        f"median ρ(K), centred K, width {config.width}, {config.n_samples} inputs, {config.draws} draws, depth "
        f"{config.depths[0]} → {config.depths[-1]}: "
        + "; ".join(lines)
        + f". Falls at every depth step in {falls}/{len(keys)} panels; wider at the deepest depth in "
        f"{widens}/{len(keys)}."
    )
    if falls == len(keys):
        verdict = "reproduced" if widens == len(keys) else "partly"
        reason = (
            "every panel moves to lower ρ"
            + (" and widens" if widens == len(keys) else "")
            + " with depth, as in the paper's figure; the values depend on our width, inputs and centring, which "
            "the paper does not give"
        )
    else:
        verdict, reason = "not shown here", "the median does not fall at every depth step in every panel"
    return Entry(
        "Observation 1: randomly initialised deeper networks map inputs to Gram matrices of lower effective "
        "rank (linear and ReLU; normal and uniform weights)",
        "02_random_initialization",
        quick,
        "none stored (the quick run is cheap; chapter 2 times the full preset)",
        verdict,
        reason,
    )


def random_products() -> Entry:
    """Linear networks: ρ of a product of random matrices follows the random-matrix prediction. Rule: ``reproduced``
    when the medians fall with depth and stay within 0.1 nats of the Fuss–Catalan prediction."""
    from lowrank_utils.chapters.ch03_why_depth_lowers_rank import ProductConfig, product_rank

    config = ProductConfig.quick()
    table = product_rank(config).groupby("depth").agg(median=("rho", "median"), theory=("rho_theory", "first"))
    gap = float((table["median"] - table["theory"]).abs().max())
    falls = bool(table["median"].diff().dropna().lt(0).all())
    quick = (
        f"median ρ(W_d⋯W_1) of {config.size}×{config.size} Gaussian factors, {config.draws} products, depth "
        f"{config.depths[0]} → {config.depths[-1]}: {_arrow(table['median'])} (prediction "
        f"{_arrow(table['theory'])}); largest gap {gap:.3f} nats"
    )
    ok = falls and gap < 0.1
    return Entry(
        "Why: in linear networks the end-to-end map is a product of random matrices, whose spectrum "
        "concentrates with depth (random-matrix theory)",
        "03_why_depth_lowers_rank",
        quick,
        "none stored",
        "reproduced" if ok else "not shown here",
        "measured ρ falls with depth and matches the Fuss–Catalan prediction"
        if ok
        else "the measured ρ departs from the prediction or does not fall",
    )


def volume_conjecture() -> Entry:
    """The volume conjecture. Rule: ``partly`` when the low-rank share of random parameters never falls with depth
    (part (a) under the initialisation measure, which restates Observation 1); part (b), where optimisers land, is
    not measured by any computation here, so this claim is never ``reproduced``."""
    from lowrank_utils.chapters.ch03_why_depth_lowers_rank import (
        LandscapeConfig,
        VolumeConfig,
        landscape_summary,
        rank_landscape,
        volume_curve,
        volume_draws,
    )

    config = VolumeConfig.quick(sizes=(16, 32), depths=(1, 2, 4, 8, 16))
    curve = volume_curve(config, volume_draws(config))
    curves = curve.groupby(["init", "size"])["fraction"]
    rising = sum(bool(part.diff().dropna().ge(0).all()) for _, part in curves)
    biggest = curve[(curve["size"] == max(config.sizes)) & (curve["init"] == "normal")].set_index("depth")["fraction"]
    land_config = LandscapeConfig.quick(span=1.5)
    landscape = rank_landscape(land_config)
    centre = float(landscape_summary(landscape, threshold=0.0)["rho_at_centre"].iloc[0])
    below = landscape_summary(landscape, threshold=centre - 0.1).set_index("depth")["fraction_below"]
    quick = (
        f"share of random linear networks with ρ(W_e) < 0.7 log N ({config.draws} draws), N = {max(config.sizes)},"
        f" normal factors, depth "
        + ", ".join(f"{d}: {_f(v)}" for d, v in biggest.items())
        + f"; never falls with depth in {rising}/{curves.ngroups} (size, weights) curves. Rank landscape of one "
        f"{land_config.size}×{land_config.size} weight, share of the plane 0.1 nats below the centre, "
        + ", ".join(f"{d} layer(s): {_f(v)}" for d, v in below.items())
    )
    if rising == curves.ngroups:
        verdict = "partly"
        reason = (
            "under the initialisation measure the low-rank share grows with depth, but that restates "
            "Observation 1; that optimisers land where that volume is (the conjecture's other half) is not "
            "measured directly (chapter 5's gradient-free optimisers come closest)"
        )
    else:
        verdict, reason = "not shown here", "the low-rank share falls with depth in some curve"
    return Entry(
        "The volume conjecture: the share of parameter space that maps to low effective-rank embeddings grows "
        "with depth, which is why deeper networks find low-rank solutions",
        "03_why_depth_lowers_rank",
        quick,
        "none stored",
        verdict,
        reason,
    )


# ------------------------------------------------------------------------------------------------------------------
# Observations 2 to 4 (stored full runs of chapters 4 to 6)


def trained_activations() -> Entry:
    """Observation 2 across activations. Rule: ``reproduced`` when, for every activation, the median ρ after training
    at the deepest depth is below that at the shallowest; ``partly`` when it is for most."""
    claim = "Observation 2: after training, deeper networks have lower effective-rank embeddings, for every activation"
    table = _table(stored_frames("ch04_activations_full"), {"activation", "depth", "rho_final", "test_loss"})
    if table is None:
        return _missing(claim, "04_trained_networks", "ch04_activations_full")
    rho = table.groupby(["activation", "depth"])["rho_final"].median().unstack("depth")
    test = table.groupby(["activation", "depth"])["test_loss"].median().unstack("depth")
    lo, hi = rho.columns.min(), rho.columns.max()
    falls = int((rho[hi] < rho[lo]).sum())
    rises = int((test[hi] > test[lo]).sum())
    zero = _baseline(table, "zero")
    beaten = 0 if zero is None else int((test[hi] < zero).sum())
    stored = (
        f"median ρ(K) after training, depth {lo} → {hi}: lower at depth {hi} for {falls}/{len(rho)} activations "
        f"(range at depth {lo}: {_f(rho[lo].min())}–{_f(rho[lo].max())}; at depth {hi}: "
        f"{_f(rho[hi].min())}–{_f(rho[hi].max())}). Median test MSE at depth {hi}: "
        f"{_f(test[hi].min())}–{_f(test[hi].max())}, higher than at depth {lo} for {rises}/{len(test)}"
        + ("" if zero is None else f"; predicting zero scores {_f(zero)}, beaten at depth {hi} by {beaten}/{len(test)}")
    )
    verdict = "reproduced" if falls == len(rho) else "partly" if falls > len(rho) / 2 else "not shown here"
    reason = (
        f"ρ falls with depth for {falls} of {len(rho)} activations, the claim itself; this task does not show "
        "that the low-rank solutions generalise (test error rises with depth for "
        f"{rises} of {len(test)}), see chapters 4 and 4b"
    )
    return Entry(claim, "04_trained_networks", "not re-run here (chapter 4 runs it live)", stored, verdict, reason)


def _regression_entry(
    claim: str, target: str, rule: Callable[[pd.DataFrame, pd.DataFrame, float], tuple[str, str, str]]
) -> Entry:
    """The entry for a claim about chapter 4's stored depth sweep toward the ``target`` ("low-rank" or "full-rank")
    target: ``rule(medians by depth, the target's rows, the target's ρ)`` gives (stored numbers, verdict, reason);
    the entry says the run is missing when it is not stored."""
    table = _table(
        stored_frames("ch04_depth_regression_full"),
        {"target", "depth", "rho_final", "target_rho", "train_loss", "test_loss"},
    )
    if table is None or target not in set(table["target"]):
        return _missing(claim, "04_trained_networks", "ch04_depth_regression_full")
    part = table[table["target"] == target]
    med = part.groupby("depth")[["rho_final", "target_rho", "train_loss", "test_loss"]].median()
    stored, verdict, reason = rule(med, part, float(med["target_rho"].iloc[0]))
    return Entry(claim, "04_trained_networks", "not re-run here (chapter 4 runs it live)", stored, verdict, reason)


def _baseline(part: pd.DataFrame, kind: str) -> float | None:
    """The median test error of a baseline stored beside the networks, if the stored run has one: ``kind`` is
    ``"least squares"`` (a column ``ls_test_loss``, or one whose name mentions least squares) or ``"zero"`` (a column
    ``zero_test_loss``: predicting zero everywhere)."""
    pattern = r"^ls_|least|lstsq|min.?norm" if kind == "least squares" else r"^zero_"
    for column in part.columns:
        if re.search(pattern, column, re.IGNORECASE) and re.search("loss|error", column):
            return float(pd.to_numeric(part[column], errors="coerce").median())
    return None


def low_rank_target() -> Entry:
    """Observation 2 toward a low-rank target. Rule: ``partly`` when ρ comes within 0.15 nats of the target's at some
    depth and the best median test error is at neither end of the depth range; ``reproduced`` only if, in addition, a
    stored least-squares baseline exists and the best network beats it."""
    claim = (
        "Observation 2, regression toward a low-rank target (under-determined): deeper networks converge near "
        "the target's effective rank and generalise well up to a point"
    )
    return _regression_entry(claim, "low-rank", _low_rank_rule)


def _low_rank_rule(med: pd.DataFrame, part: pd.DataFrame, target: float) -> tuple[str, str, str]:
    """(stored numbers, verdict, reason) of low_rank_target's rule."""
    closest = (med["rho_final"] - target).abs().idxmin()
    best = med["test_loss"].idxmin()
    baseline = _baseline(part, "least squares")
    stored = (
        f"median ρ after training, depth {med.index[0]} → {med.index[-1]}: {_arrow(med['rho_final'])} (target "
        f"{_f(target)}; closest at depth {closest}). Median test MSE: depth {med.index[0]} "
        f"{_f(med['test_loss'].iloc[0])}, best at depth {best} ({_f(med['test_loss'][best])}), depth "
        f"{med.index[-1]} {_f(med['test_loss'].iloc[-1])}"
        + (f"; minimum-norm least squares {_f(baseline)}" if baseline is not None else "")
        + (f", predicting zero {_f(zero)}" if (zero := _baseline(part, "zero")) is not None else "")
    )
    near = abs(float(med["rho_final"][closest]) - target) < 0.15
    inside = best not in (med.index[0], med.index[-1])
    if near and inside:
        beats = baseline is not None and float(med["test_loss"][best]) < baseline
        verdict = "reproduced" if beats else "partly"
        if beats:
            caveat = "and the best network beats minimum-norm least squares"
        else:
            caveat = (
                (
                    f"but minimum-norm least squares ({_f(baseline)}) beats every depth: "
                    if baseline is not None
                    else "but "
                )
                + "the data leave the unseen directions free, so a rank prior cannot be what generalises on this task "
                "(chapter 4b has a task where it can)"
            )
        reason = "ρ approaches the target's and test error is best at a moderate depth, as described; " + caveat
    else:
        verdict = "not shown here"
        reason = "ρ does not reach the target's, or test error is best at the shallowest or deepest depth"
    return stored, verdict, reason


def full_rank_target() -> Entry:
    """Observation 2 toward a full-rank target. Rule: ``reproduced`` when train and test error are higher at the
    deepest than at the shallowest depth and the deepest networks end at least 0.25 nats below the target's ρ."""
    claim = (
        "Observation 2, regression toward a full-rank target: deep networks fail to fit it (train and test error "
        "climb with depth) and end far below the target's effective rank"
    )
    return _regression_entry(claim, "full-rank", _full_rank_rule)


def _full_rank_rule(med: pd.DataFrame, part: pd.DataFrame, target: float) -> tuple[str, str, str]:
    """(stored numbers, verdict, reason) of full_rank_target's rule."""
    baselines = [
        f"{name} {_f(value)}"
        for name, value in (("least squares", _baseline(part, "least squares")), ("zero", _baseline(part, "zero")))
        if value is not None
    ]
    stored = (
        f"depth {med.index[0]} → {med.index[-1]}: median train MSE {_arrow(med['train_loss'])}, test MSE "
        f"{_arrow(med['test_loss'])}, ρ after training {_arrow(med['rho_final'])} (target {_f(target)})"
        + (f"; test MSE of the baselines: {', '.join(baselines)}" if baselines else "")
    )
    first, last = med.iloc[0], med.iloc[-1]
    ok = bool(
        last["train_loss"] > first["train_loss"]
        and last["test_loss"] > first["test_loss"]
        and last["rho_final"] < target - 0.25
    )
    if ok:
        return stored, "reproduced", "the deepest networks fit the full-rank target worse and end well below its ρ"
    return stored, "not shown here", "train or test error does not climb with depth, or ρ stays near the target's"


def generalisation() -> Entry:
    """'Low-rank solutions tend to generalise on natural data'. Rule: ``partly`` when, in the stored matrix-completion
    run, the median test error of some depth ≥ 3 is below depth 1, depth 2 and the nuclear-norm baseline (a synthetic
    task, not natural data); natural data is chapter 8's row."""
    claim = "On natural data, the low effective-rank solutions that depth favours tend to generalise well"
    frames = stored_frames("ch04b_completion_full")
    table = _table(frames, {"method", "depth", "test_error"})
    if table is None:
        return _missing(claim, "04b_matrix_completion", "ch04b_completion_full")
    if "n_observed" in table and table["n_observed"].nunique() > 1:
        table = table[table["n_observed"] == table["n_observed"].mode().iloc[0]]
    med = table.groupby("method")["test_error"].median()
    depth_rows = {m: v for m, v in med.items() if str(m).startswith("depth")}
    by_depth = {int(re.sub(r"\D", "", m)): v for m, v in depth_rows.items()}
    nuclear = next((v for m, v in med.items() if "nuclear" in str(m)), float("nan"))
    shallow = [by_depth[d] for d in (1, 2) if d in by_depth]
    deep = {d: v for d, v in by_depth.items() if d >= 3}
    stored = (
        "median test error on the unseen entries: "
        + ", ".join(f"depth {d} {_g(v)}" for d, v in sorted(by_depth.items()))
        + f"; nuclear norm {_g(nuclear)}"
    )
    if "n_observed" in table:
        stored += f" ({int(table['n_observed'].iloc[0])} observed entries, {table['seed'].nunique()} seeds)"
    wins = bool(deep) and bool(shallow) and min(deep.values()) < min([*shallow, nuclear])
    return Entry(
        claim,
        "04b_matrix_completion",
        "not re-run here (chapter 4b runs it live)",
        stored,
        "partly" if wins else "not shown here",
        (
            "deeper factorisations generalise best on a synthetic low-rank completion task, where the "
            "lowest-rank answer is the right one; natural data: see the image rows below"
        )
        if wins
        else "depth does not beat the shallow and nuclear-norm baselines in the stored run",
    )


def optimizers() -> Entry:
    """Observation 3. The stored run trains every optimizer from two starts: the default one, whose ρ falls with
    depth (Observation 1), and an orthogonal control, whose ρ is the same at every depth. Per optimizer and start,
    the *drop* is the seed-mean ρ after training at the shallowest depth minus that at the deepest. Rule:
    ``reproduced`` when ρ drops with depth for every optimizer from both starts and every optimizer's drop from the
    control start is at least half its drop from the default start (then most of the trend is made by training, from
    whatever start); ``partly`` when ρ drops for every optimizer from the default start but the control does not
    meet that (the trend is common to all optimizers, so not an optimizer's, but much of it is carried over from the
    starting point); ``not shown here`` when ρ does not drop for some optimizer from the default start, or no stored
    run has both starts."""
    claim = (
        "Observation 3: the bias is not an optimizer's: SGD, Nesterov, Adam, L-BFGS and the gradient-free CMA-ES "
        "and random search all reach lower-ρ solutions as depth grows"
    )
    table = _table(stored_frames("ch05_optimizers_full"), {"optimizer", "depth", "rho_final", "rho_init"})
    if table is None:
        return _missing(claim, "05_optimizers", "ch05_optimizers_full")
    quick = "not re-run here (chapter 5 runs it live)"
    start = next((c for c in ("start", "init") if c in table), None)
    starts = set(table[start]) if start else set()
    if not {"default", "orthogonal"} <= starts:
        return Entry(
            claim,
            "05_optimizers",
            quick,
            f"starts stored: {sorted(starts) or 'one'}",
            "not shown here",
            "the stored run lacks the default start or the orthogonal control, so the optimizer is not separated "
            "from its starting point",
        )
    assert start is not None
    means = table.groupby([start, "optimizer", "depth"])[["rho_final", "rho_init"]].mean()
    final = means["rho_final"].unstack("depth")
    lo, hi = final.columns.min(), final.columns.max()
    drop = final[lo] - final[hi]
    family = table.groupby("optimizer")["family"].first() if "family" in table else pd.Series(dtype=str)

    def spread(which: str) -> str:
        part = drop.loc[which]
        if family.empty:
            return f"{_f(part.min())}–{_f(part.max())}"
        return ", ".join(
            f"{_f(part[names].min())}–{_f(part[names].max())} {kind}"
            for kind, names in family.groupby(family).groups.items()
        )

    start_rho = means["rho_init"].unstack("depth").groupby(level=0).mean()
    flat = float(start_rho.loc["orthogonal"].max() - start_rho.loc["orthogonal"].min())
    deep_default = float(final.loc["default", hi].min()), float(final.loc["default", hi].max())
    target = f", the target's ρ {_f(float(table['target_rho'].mean()))}" if "target_rho" in table else ""
    stored = (
        f"seed-mean ρ after training, drop from depth {lo} to {hi}: default start (ρ at the start "
        f"{_arrow(start_rho.loc['default'])}) {spread('default')}; orthogonal start (ρ at the start "
        f"{_f(start_rho.loc['orthogonal'].mean())} at every depth, spread {flat:.2f}) {spread('orthogonal')}. From the "
        f"default start the depth-{hi} networks end at {_f(deep_default[0])}–{_f(deep_default[1])}, beside their start"
        f" {_f(start_rho.loc['default', hi])}{target}; from the orthogonal start at "
        f"{_f(final.loc['orthogonal', hi].min())}–{_f(final.loc['orthogonal', hi].max())}"
    )
    n = len(drop.loc["default"])
    falls_default = int((drop.loc["default"] > 0).sum())
    falls_control = int((drop.loc["orthogonal"] > 0).sum())
    share = drop.loc["orthogonal"] / drop.loc["default"]
    if falls_default < n:
        verdict, reason = "not shown here", f"from the default start ρ drops with depth for only {falls_default} of {n}"
    elif falls_control == n and bool((share >= 0.5).all()):
        verdict = "reproduced"
        reason = "ρ drops with depth for every optimizer from both starts, and the control keeps most of the drop"
    else:
        verdict = "partly"
        under = int((share < 0.5).sum())
        common = (
            "from both starts, so the trend is common to all of them, not an optimizer's"
            if falls_control == n
            else f"from the default start but for only {falls_control} of {n} from the orthogonal one"
        )
        reason = (
            f"ρ drops with depth for every optimizer, gradient-free ones included, {common}; but from the orthogonal "
            f"start, whose ρ is the same at every depth, the drop is only {_f(share.min())}–{_f(share.max())} of the "
            f"default start's (under half for {under} of {n} optimizers): much of the default start's trend is its "
            "starting point's own (Observation 1), carried through training. Limits: width-"
            f"{_config('ch05_optimizers_full', 'width')} deep linear networks on one small regression task"
        )
    return Entry(claim, "05_optimizers", quick, stored, verdict, reason)


def initialisation() -> Entry:
    """Observation 4, from the stored run of three starts (default; low-rank and orthogonal, whose ρ should be the
    same at every depth) and, if stored, the sweep of the default start's scale. All values are seed means. The
    claim holds *as stated* when ρ after training is lower at the deepest than at the shallowest depth from the
    default and the low-rank start, the two end within 0.3 nats of each other at the deepest depth, and the default
    start's best test error is at neither end of the depth range. Rule: ``reproduced`` when it holds as stated and
    no control limits it: the low-rank start's own ρ moves by less than 0.5 nats over the depths, the orthogonal
    start (if stored) ends within 0.3 nats of the others at the deepest depth too, and every initial scale of the
    sweep (if stored) has its best test error at the same depth; ``partly`` when it holds as stated but a control
    limits it (the reason names which); ``not shown here`` otherwise."""
    claim = (
        "Observation 4: from the default or a low-rank initialisation, converged ρ falls with depth into a "
        "similar range, and test error is best at a moderate depth"
    )
    table = _table(stored_frames("ch06_initialization_full"), {"init", "depth", "rho_init", "rho_final", "test_loss"})
    if table is None or not {"default", "low_rank"} <= set(table["init"]):
        return _missing(claim, "06_initialization", "ch06_initialization_full")
    if "init_scale" in table:  # the start comparison is at the default scale
        table = table[pd.to_numeric(table["init_scale"], errors="coerce").fillna(1.0) == 1.0]
    med = table.groupby(["init", "depth"])[["rho_init", "rho_final", "test_loss"]].mean()
    inits = [i for i in ("default", "low_rank", "orthogonal") if i in set(table["init"])]
    parts, ends = [], {}
    for init in inits:
        m = med.loc[init]
        best = m["test_loss"].idxmin()
        ends[init] = float(m["rho_final"].iloc[-1])
        parts.append(
            f"{init}: ρ at the start {_arrow(m['rho_init'])}, after training {_arrow(m['rho_final'])}, best test MSE "
            f"at depth {best} ({_f(m['test_loss'][best])})"
        )
    depths = med.index.get_level_values("depth")
    lo, hi = depths.min(), depths.max()
    baselines = [
        f"{name} {_f(value)}"
        for name, value in (("least squares", _baseline(table, "least squares")), ("zero", _baseline(table, "zero")))
        if value is not None
    ]
    stored = f"seed means, depth {lo} → {hi}; " + "; ".join(parts)
    if baselines:
        stored += f"; baselines: {', '.join(baselines)}"
    default = med.loc["default"]
    falls = all(med.loc[i]["rho_final"].iloc[-1] < med.loc[i]["rho_final"].iloc[0] for i in ("default", "low_rank"))
    together = abs(ends["default"] - ends["low_rank"]) < 0.3
    best_default = default["test_loss"].idxmin()
    moderate = best_default not in (lo, hi)
    limits = []
    drift = float(med.loc["low_rank"]["rho_init"].max() - med.loc["low_rank"]["rho_init"].min())
    if drift >= 0.5:
        limits.append(f"the low_rank start's own ρ falls with depth (by {_f(drift)} nats), so depth is not separated")
    if "orthogonal" in ends and abs(ends["orthogonal"] - ends["default"]) >= 0.3:
        orth = med.loc["orthogonal"]["rho_final"]
        limits.append(
            f"from the orthogonal start (ρ {_f(float(med.loc['orthogonal']['rho_init'].mean()))} at every depth) the "
            f"depth-{hi} networks end at {_f(ends['orthogonal'])}, {_f(ends['orthogonal'] - ends['default'])} nats "
            f"above the default's (depth {orth.index[1]} → {hi}: {_f(orth.iloc[1])} → {_f(orth.iloc[-1])}), so depth "
            "lowers ρ from low starts, not from every start"
        )
    scales = _table(stored_frames("ch06_init_scales_full"), {"init_scale", "depth", "test_loss"})
    if scales is not None:
        by_scale = scales.groupby(["init_scale", "depth"])["test_loss"].mean().unstack("depth")
        best_by_scale = by_scale.idxmin(axis=1)
        stored += "; initial-scale sweep of the default start, best test MSE at depth " + ", ".join(
            f"{d} (scale {s:g}: {_f(by_scale.loc[s, d])})" for s, d in best_by_scale.items()
        )
        if best_by_scale.nunique() > 1:
            limits.append(
                "the best depth moves with the initial scale ("
                + ", ".join(f"{d} at scale {s:g}" for s, d in best_by_scale.items())
                + "), so which depth is best depends on the scale of the start as much as on depth"
            )
    if not (falls and together and moderate):
        verdict = "not shown here"
        reason = (
            "from the default or the low-rank start ρ does not fall with depth, the two do not end within 0.3 nats, "
            "or the default start's test error is best at an end of the depth range"
        )
    else:
        verdict = "partly" if limits else "reproduced"
        reason = (
            f"as stated it holds: ρ falls with depth from the default and the low-rank start, whose deepest networks "
            f"end {_f(abs(ends['default'] - ends['low_rank']))} nats apart, and the default start's test error is best"
            f" at depth {best_default}"
            + (f" (low-rank start ρ flat at the start: spread {_f(drift)} nats)" if drift < 0.5 else "")
            + ("; but " + "; and ".join(limits) if limits else "")
        )
        ls = _baseline(table, "least squares")
        if ls is not None and float(med["test_loss"].min()) > ls:
            reason += f"; no start or depth beats minimum-norm least squares ({_f(ls)})"
    return Entry(claim, "06_initialization", "not re-run here (chapter 6 runs it live)", stored, verdict, reason)


def trained_network_counts(root: str | Path | None = None) -> pd.DataFrame:
    """How many networks each stored full run of chapters 4 to 6 trained: rows of its tables that have a depth, a
    seed and a positive number of steps (for matrix completion, only the rows of a depth-d factorisation)."""
    rows = []
    for name in [n for prefix in ("ch04", "ch05", "ch06") for n in _names(prefix, root)]:
        for key, table in (stored_frames(name, root) or {}).items():
            if not {"depth", "seed", "steps"} <= set(table.columns):
                continue
            trained = table[pd.to_numeric(table["steps"], errors="coerce").fillna(0) > 0]
            if "method" in trained:
                trained = trained[trained["method"].astype(str).str.startswith("depth")]
            rows.append({"stored run": name, "table": key, "networks trained": len(trained)})
    return pd.DataFrame(rows, columns=["stored run", "table", "networks trained"])


# ------------------------------------------------------------------------------------------------------------------
# Linear over-parameterization (chapters 7 to 9)


def overparam_start() -> Entry:
    """An over-parameterized layer starts lower-rank. Rule: ``reproduced`` when the median ρ of the end-to-end weight
    at initialisation falls with the expansion depth for both the linear and the conv layer."""
    from lowrank_utils.chapters.ch07_linear_overparameterization import InitRankConfig, init_rank, init_rank_medians

    config = InitRankConfig.quick(draws=100)
    medians = init_rank_medians(init_rank(config))
    parts, falls = [], 0
    for layer, part in medians.groupby("layer", sort=False):
        m = part.set_index("depth")["rho"]
        falls += bool(m.diff().dropna().lt(0).all())
        parts.append(f"{layer} {_arrow(m)}")
    quick = (
        f"median ρ of the end-to-end weight at initialisation ({config.draws} draws), expansion depth "
        f"{config.depths[0]} → {config.depths[-1]}: " + "; ".join(parts)
    )
    n = medians["layer"].nunique()
    return Entry(
        "Linear over-parameterization induces the low-rank bias inside each layer (an expanded layer starts "
        "from a lower-rank end-to-end weight)",
        "07_linear_overparameterization",
        quick,
        "none stored",
        "reproduced" if falls == n else "not shown here",
        "ρ falls with the expansion depth for every layer measured"
        if falls == n
        else "ρ does not fall with the expansion depth for every layer",
    )


def overparam_collapse() -> Entry:
    """Capacity and inference cost unchanged. Rule: ``reproduced`` when every expanded configuration matches its
    collapsed layer to 1e-9 (float64) and the collapsed CNN has the original's parameter count."""
    import lowrank_utils as lu
    from lowrank_utils.chapters.ch07_linear_overparameterization import collapse_check
    from lowrank_utils.models import plain_cnn

    check = collapse_check(seed=0)
    worst = float(check["max_abs_diff"].max())
    cnn = plain_cnn((16, 32, 64))
    count = sum(p.numel() for p in cnn.parameters())
    collapsed = sum(p.numel() for p in lu.collapse(lu.overparameterize(cnn, depth=4)).parameters())
    quick = (
        f"{len(check)} expanded configurations (linear, conv, stride, skips, batch norm, depthwise, a small CNN): "
        f"largest |expanded − collapsed| = {worst:.0e} in float64; collapsed CNN {collapsed:,} parameters, the "
        f"original {count:,}"
    )
    ok = worst <= 1e-9 and collapsed == count
    return Entry(
        "Over-parameterization changes training only: the expanded network collapses back into the original "
        "architecture (same capacity, same inference cost)",
        "07_linear_overparameterization",
        quick,
        "none stored",
        "reproduced" if ok else "not shown here",
        "collapse is exact up to float64 rounding and restores the parameter count"
        if ok
        else "a configuration does not collapse exactly",
    )


def overparam_training_spectrum() -> Entry:
    """The over-parameterized layer's spectrum decays faster in training. No computation here (a CNN must train), so
    the verdict is ``partly``, from chapter 7's short live run; stored chapter-7 runs are listed but not yet read."""
    stored = _names("ch07")
    return Entry(
        "During training the over-parameterized layer's singular values decay faster, and the model overfits less",
        "07_linear_overparameterization",
        "not re-run here (chapter 7 trains a CNN for 3 epochs live)",
        ("stored: " + ", ".join(stored)) if stored else "no stored run",
        "partly",
        "chapter 7's short quick run shows ρ of the tracked layer falling further in the expanded model; a "
        "run as long as the paper's (180 epochs) is not stored, and overfitting is chapter 8's question",
    )


def _image_runs(prefix: str) -> pd.DataFrame | None:
    """Final runs of the stored image-classification runs under ``prefix`` (one row per dataset, depth, seed); a
    folder of chapter 8's per-run files is read by its own loader, which keeps only the final runs at the learning
    rate its grid chose."""
    from lowrank_utils.chapters import ch08_image_classification as ch08

    tables = []
    for name in _names(prefix):
        loader = getattr(ch08, "load_stored_protocol", None)
        if (STORED_RUNS / name).is_dir() and loader is not None:
            loaded = loader(STORED_RUNS / name)
            table = None if loaded is None else loaded[0].get("results")
        else:
            table = _table(stored_frames(name), {"dataset", "depth", "seed", "test_acc"})
            if table is not None and "stage" in table:
                table = table[table["stage"] == "final"]
        if table is not None and len(table):
            tables.append(table.assign(run=name))
    return pd.concat(tables, ignore_index=True) if tables else None


def _accuracy_entry(claim: str, chapter: str, prefix: str, wanted: str) -> Entry:
    """Shared by the CIFAR and ImageNet rows: compare every over-parameterized model with its baseline (Welch's t)."""
    from scipy import stats

    runs = _image_runs(prefix)
    if runs is None:
        return Entry(
            claim,
            chapter,
            "not re-run here",
            "no stored run",
            "not testable here",
            f"needs {wanted} and a GPU; no stored run of it",
        )
    lines, wins, on_wanted = [], 0, 0
    group_cols = ["dataset", *(["arch"] if "arch" in runs else [])]
    for key, part in runs.groupby(group_cols, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        base = part[part["depth"] == 1]["test_acc"].astype(float)
        for depth, other in part[part["depth"] != 1].groupby("depth"):
            acc = other["test_acc"].astype(float)
            diff = 100 * (acc.mean() - base.mean())
            p = (
                float(stats.ttest_ind(acc, base, equal_var=False).pvalue)
                if len(acc) > 1 and len(base) > 1
                else float("nan")
            )
            relevant = wanted.lower().split()[0] in str(key[0]).lower()
            on_wanted += relevant
            wins += relevant and diff > 0 and p < 0.05
            lines.append(
                f"{'/'.join(map(str, key))} depth {depth}: {diff:+.2f} points test accuracy vs baseline "
                f"({len(acc)} vs {len(base)} seeds, Welch p = {p:.2g})"
            )
    stored = "; ".join(lines)
    if not on_wanted:
        datasets = ", ".join(sorted(map(str, runs["dataset"].unique())))
        return Entry(
            claim,
            chapter,
            "not re-run here",
            f"no stored {wanted} run; the stored image runs are on {datasets} (the Fashion-MNIST row above)",
            "not testable here",
            f"{wanted} needs a GPU this course does not have; chapter 8's GPU presets would test it",
        )
    verdict = "reproduced" if wins == on_wanted else "partly" if wins else "not shown here"
    return Entry(
        claim,
        chapter,
        "not re-run here",
        stored,
        verdict,
        f"{wins} of {on_wanted} over-parameterized models on {wanted} beat the baseline significantly",
    )


def fashion_mnist_accuracy() -> Entry:
    """The over-parameterization accuracy claim on the one image dataset stored here (chapter 8's protocol on the
    full Fashion-MNIST: a learning rate chosen per model on validation data, then seeded runs). Each
    over-parameterized model is compared with its baseline by the difference of mean test accuracy and its Welch 95%
    confidence interval. Rule: ``reproduced`` when every interval lies above zero, ``partly`` when some do, ``not
    shown here`` when none does (the reason says how many lie below zero, what happened to training accuracy and
    whether validation accuracy was still rising in the last epoch, i.e. whether the budget was the limit)."""
    from lowrank_utils.chapters import ch08_image_classification as ch08

    claim = (
        "Linear over-parameterization improves test accuracy, tested on the data we have: Fashion-MNIST, "
        "two small CNNs, the same capacity after collapse"
    )
    folder = STORED_RUNS / Path(ch08.STORED_FOLDER).name
    loaded = ch08.load_stored_protocol(folder) if folder.is_dir() else None
    results = None if loaded is None else loaded[0]["results"]
    if results is None or results.empty or results["depth"].nunique() < 2:
        return _missing(claim, "08_image_classification", folder.name)
    test = ch08.compare_to_baseline(results, "test_acc")
    train = ch08.compare_to_baseline(results, "train_acc").set_index(["arch", "depth"])
    lines = [
        f"{r.arch} ×{r.depth}: test {100 * r.difference:+.2f} points [{100 * r.ci_low:+.2f}, {100 * r.ci_high:+.2f}],"
        f" train {100 * train.loc[(r.arch, r.depth), 'difference']:+.2f}"
        for r in test.itertuples(index=False)
    ]
    epochs = (
        ", ".join(str(int(e)) for e in sorted(pd.to_numeric(results["epochs"]).unique()))
        if "epochs" in results
        else "?"
    )
    seeds = int(results.groupby(["arch", "depth"])["seed"].nunique().min())
    stored = (
        f"{results['dataset'].iloc[0]}, {epochs} epochs, {seeds} seeds per model; mean accuracy of each "
        "over-parameterized model minus its baseline (Welch 95% CI): " + "; ".join(lines)
    )
    above, below = int((test["ci_low"] > 0).sum()), int((test["ci_high"] < 0).sum())
    fitted_less = int((train["difference"] < 0).sum())
    history = None if loaded is None else loaded[0].get("history")
    rising = None
    if history is not None and len(history) and {"epoch", "val_acc", "stage"} <= set(history.columns):
        final = history[history["stage"] == "final"]
        per_epoch = final.groupby(["arch", "depth", "epoch"])["val_acc"].mean().unstack("epoch")
        if per_epoch.shape[1] >= 2:
            rising = int((per_epoch.iloc[:, -1] > per_epoch.iloc[:, -2]).sum()), len(per_epoch)
    verdict = "reproduced" if above == len(test) else "partly" if above else "not shown here"
    reason = (
        f"{above} of {len(test)} over-parameterized models beat their baseline (interval above zero) and {below} "
        f"are worse (interval below zero); {fitted_less} of {len(test)} also fit their training set less"
    )
    if rising is not None:
        reason += (
            f", and mean validation accuracy still rose in the last epoch for {rising[0]} of {rising[1]} models "
            f"(baselines included), so the {epochs}-epoch CPU budget, not a plateau, ends training: this does not "
            "test the paper's long-training claim, and does not contradict it"
        )
    return Entry(
        claim,
        "08_image_classification",
        "not re-run here (chapter 8 runs a small live protocol)",
        stored,
        verdict,
        reason,
    )


def cifar_accuracy() -> Entry:
    """The CIFAR result. Rule: ``reproduced`` when every over-parameterized model on a CIFAR dataset beats its
    baseline (Welch p < 0.05, higher mean); runs on other datasets are shown but decide nothing."""
    return _accuracy_entry(
        "Linear over-parameterization of deep non-linear models improves test accuracy on CIFAR-10 "
        "and CIFAR-100, with the same capacity",
        "08_image_classification",
        "ch08",
        "CIFAR",
    )


def imagenet_accuracy() -> Entry:
    """The ImageNet result: only a stored ImageNet run could decide it."""
    return _accuracy_entry("... and on ImageNet", "09_imagenet", "ch09", "ImageNet")


CLAIMS: tuple[Callable[[], Entry], ...] = (
    observation_1,
    random_products,
    volume_conjecture,
    trained_activations,
    low_rank_target,
    full_rank_target,
    generalisation,
    optimizers,
    initialisation,
    overparam_start,
    overparam_collapse,
    overparam_training_spectrum,
    fashion_mnist_accuracy,
    cifar_accuracy,
    imagenet_accuracy,
)
"""The card's rows, in the paper's order."""


def scorecard() -> pd.DataFrame:
    """The whole card: one row per claim with its key (the function that measures it), chapter, what was measured
    here and in the stored run, the verdict and the reason."""
    return pd.DataFrame([{"key": claim.__name__, **asdict(claim())} for claim in CLAIMS])


STORED_RUNS_READ: tuple[str, ...] = (
    "ch04_activations_full",
    "ch04_depth_regression_full",
    "ch04b_completion_full",
    "ch05_optimizers_full",
    "ch06_initialization_full",
    "ch06_init_scales_full",
)
"""The stored runs the card reads by name; stored runs whose name starts with ``ch07``, ``ch08`` or ``ch09`` are read
too, whatever their full name."""


def stored_runs_read(root: str | Path | None = None) -> pd.DataFrame:
    """Provenance of every stored run the card reads that is present: name, command, hardware, date, wall time."""
    root = Path(STORED_RUNS if root is None else root)
    names = [*STORED_RUNS_READ, *(n for prefix in ("ch07", "ch08", "ch09") for n in _names(prefix, root))]
    rows = []
    for name in names:
        path = root / name
        files = sorted(path.glob("*.json")) if path.is_dir() else [root / f"{name}.json"]
        files = [f for f in files if f.is_file()]
        if not files:
            continue
        first = json.loads(files[0].read_text())
        rows.append(
            {
                "stored run": name,
                "files": len(files),
                "date": str(first.get("date", ""))[:10],
                "hardware": first.get("hardware", ""),
                "command": first.get("command", ""),
            }
        )
    return pd.DataFrame(rows, columns=["stored run", "files", "date", "hardware", "command"])


def _chapter_label(stem: str) -> str:
    number = stem.split("_", 1)[0].lstrip("0")
    return f"Chapter {number}"


def scorecard_html(card: pd.DataFrame, href: str = "../{chapter}.html") -> str:
    """The card as an HTML table whose chapter column links to each chapter's page; ``href`` is formatted with the
    chapter's notebook name (the default suits the built site, where this page sits in ``book/backmatter/``)."""
    needed = {"claim", "chapter", "quick", "stored", "verdict", "reason"}
    if not needed <= set(card.columns):
        raise ValueError(f"scorecard_html needs the columns {sorted(needed - set(card.columns))}.")
    head = (
        "<tr><th>Claim</th><th>Chapter</th><th>Measured here (quick)</th><th>Stored full run</th>"
        "<th>Verdict</th><th>Why</th></tr>"
    )
    rows: list[str] = []
    for r in card.itertuples(index=False):
        cells: list[Any] = [
            html.escape(r.claim),
            f'<a href="{html.escape(href.format(chapter=r.chapter))}">{_chapter_label(r.chapter)}</a>',
            html.escape(r.quick),
            html.escape(r.stored),
            f"<b>{html.escape(r.verdict)}</b>",
            html.escape(r.reason),
        ]
        rows.append("<tr>" + "".join(f'<td style="text-align:left">{c}</td>' for c in cells) + "</tr>")
    return f"<table>\n<thead>{head}</thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>"
