"""Benchmark metrics: per-sample speed, aggregation, task averages, PBx and the per-sample oracle.

Pure functions on plain records (dicts, one per sample, as written to ``samples.jsonl``); no torch, no I/O.
Reference: ``reference/parallelbench.md`` §7 (speed metrics, PBx) and Fig. 7 (oracle).

Definitions (every mean is over samples, unweighted; accuracies are in [0, 1]):

* ``accuracy`` / ``accuracy_strict``: mean lenient / strict score (ParallelBench ``score`` / ``score_strict``).
* ``nfe``: model forward passes a sample needed (the engine counts one per step; in a batch, a sample is charged
  only the forwards it took part in, i.e. what it would have cost decoded alone; see ``bench.runner``).
* ``answer_tokens``: generated tokens before the first end-of-text / end-of-turn token (:func:`answer_length`).
* ``tokens_per_forward`` (TPF): mean of ``answer_tokens / nfe``; EOS padding is **excluded**.
* ``tokens_per_step`` (TPS, ParallelBench's): mean of ``gen_length / nfe``; padding included, so short answers
  inflate it.
* ``wall_s``: mean decode seconds per sample (a batch's time split evenly over its rows); ``wall_s_total`` the
  sum; ``tokens_per_second``: ``sum(answer_tokens) / wall_s_total``.
* Task average (:func:`task_average`): the unweighted mean of the per-task numbers.
* ``PBx`` (:func:`pbx`): the highest task-average speed (TPF, or TPS for the ParallelBench-comparable variant)
  at which the task-average accuracy is still >= x %, along the family's sweep: points sorted by speed, and
  where accuracy crosses x between two adjacent points the crossing speed is interpolated linearly. None when no
  point reaches x.
* Oracle (:func:`oracle_choice`): per sample, among a family's settings, the one with the highest TPF among those
  that scored 1 (full lenient score); if none did, the one with the highest score for that sample, ties broken by
  the setting's accuracy on the task, then by TPF. The oracle **curve** takes the oracle over the j slowest
  settings (by task-average TPF), j = 1..n: its first point is the slowest setting, its last the full oracle.
  It is computed for every family with at least two settings, and as ``all`` over every setting of the run
  when there are several families; only samples present under every setting of the family count.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

__all__ = ["METRIC_KEYS", "answer_length", "sample_speed", "aggregate", "task_average", "pbx",
           "oracle_choice", "oracle_records", "oracle_curve", "summarize"]

#: The averaged numeric keys of a result row (besides ``n``).
METRIC_KEYS = ("accuracy", "accuracy_strict", "nfe", "tokens_per_forward", "tokens_per_step", "answer_tokens",
               "wall_s", "wall_s_total", "tokens_per_second")
DEFAULT_PBX = (90, 80, 70)


def answer_length(ids: Sequence[int], stop_ids: Iterable[int | None]) -> int:
    """Number of tokens before the first stop token (EOS / EoT); ``len(ids)`` when there is none.

    >>> answer_length([5, 6, 2, 2, 2], [2, 3])
    2
    """
    stops = {int(i) for i in stop_ids if i is not None}
    for i, t in enumerate(ids):
        if int(t) in stops:
            return i
    return len(ids)


def sample_speed(answer_tokens: int, nfe: int, gen_length: int) -> tuple[float, float]:
    """``(tokens_per_forward, tokens_per_step)`` of one sample: answer tokens / NFE and gen_length / NFE."""
    if nfe <= 0:
        return 0.0, 0.0
    return answer_tokens / nfe, gen_length / nfe


def _mean(values: Iterable[float]) -> float:
    values = [float(v) for v in values]
    return sum(values) / len(values) if values else float("nan")


def aggregate(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Metrics of one group of samples (one task x one setting).

    Each record needs ``score``, ``score_strict``, ``nfe``, ``answer_tokens``, ``gen_length``, ``wall_s``;
    ``tokens_per_forward`` / ``tokens_per_step`` are recomputed from them; numeric ``details`` keys (text-task
    sub-metrics) are averaged into ``details``.
    """
    n = len(records)
    out: dict[str, Any] = {"n": n}
    if not n:
        out.update({k: float("nan") for k in METRIC_KEYS})
        return out
    speeds = [sample_speed(int(r["answer_tokens"]), int(r["nfe"]), int(r["gen_length"])) for r in records]
    wall_total = sum(float(r.get("wall_s") or 0.0) for r in records)
    tokens = sum(int(r["answer_tokens"]) for r in records)
    out.update(
        accuracy=_mean(r["score"] for r in records),
        accuracy_strict=_mean(r["score_strict"] for r in records),
        nfe=_mean(r["nfe"] for r in records),
        tokens_per_forward=_mean(s[0] for s in speeds),
        tokens_per_step=_mean(s[1] for s in speeds),
        answer_tokens=_mean(r["answer_tokens"] for r in records),
        wall_s=wall_total / n,
        wall_s_total=wall_total,
        tokens_per_second=tokens / wall_total if wall_total > 0 else float("nan"),
    )
    details: dict[str, list[float]] = {}
    for r in records:
        for k, v in (r.get("details") or {}).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                details.setdefault(k, []).append(float(v))
    if details:
        out["details"] = {k: _mean(v) for k, v in details.items()}
    return out


def task_average(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Unweighted mean over tasks of each metric in :data:`METRIC_KEYS` (``n`` summed, ``n_tasks`` counted)."""
    out: dict[str, Any] = {"n_tasks": len(rows), "n": sum(int(r.get("n", 0)) for r in rows)}
    for k in METRIC_KEYS:
        vals = [float(r[k]) for r in rows if k in r and r[k] is not None and not math.isnan(float(r[k]))]
        out[k] = _mean(vals)
    return out


def pbx(points: Iterable[tuple[float, float]], xs: Iterable[float] = DEFAULT_PBX,
        accuracy_scale: float = 100.0) -> dict[str, float | None]:
    """PBx of one curve: the highest speed whose accuracy is still >= x, interpolated between adjacent points.

    Args:
        points: ``(speed, accuracy)`` pairs (e.g. task-average TPF and accuracy in [0, 1]) of one family's sweep.
        xs: thresholds in percent.
        accuracy_scale: multiplies accuracies before comparing with x (100 for accuracies in [0, 1]).

    Returns:
        ``{"PB90": speed or None, ...}``.

    The example of ParallelBench (LLaDA 1.5 threshold): (3.42, 83.8 %) and (4.53, 77.5 %) give PB80 = 4.09:

    >>> round(pbx([(3.42, 0.838), (4.53, 0.775)], [80])["PB80"], 2)
    4.09
    """
    pts = sorted(((float(s), float(a) * accuracy_scale) for s, a in points
                  if not (math.isnan(float(s)) or math.isnan(float(a)))), key=lambda p: (p[0], -p[1]))
    out: dict[str, float | None] = {}
    eps = 1e-9
    for x in xs:
        best = None
        for i, (s, a) in enumerate(pts):
            if a >= x - eps:
                best = s if best is None else max(best, s)
                if i + 1 < len(pts):
                    s2, a2 = pts[i + 1]
                    if a2 < x - eps:  # crossing between point i and i + 1
                        cross = s + (a - x) / (a - a2) * (s2 - s)
                        best = max(best, cross)
        out[f"PB{_fmt_x(x)}"] = best
    return out


def _fmt_x(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def oracle_choice(candidates: Sequence[Mapping[str, Any]], task_accuracy: Sequence[float]) -> int:
    """Index of the oracle's setting for one sample.

    Args:
        candidates: the sample's record under each setting (with ``score``, ``answer_tokens``, ``nfe``).
        task_accuracy: each setting's accuracy on the sample's task (the tie-breaker when nothing scored 1).

    The highest-TPF candidate among those with ``score >= 1``; if none, the highest score, then the highest task
    accuracy, then the highest TPF; remaining ties go to the earliest setting.
    """
    if not candidates:
        raise ValueError("oracle_choice needs at least one candidate.")

    def tpf(r):
        return sample_speed(int(r["answer_tokens"]), int(r["nfe"]), int(r.get("gen_length", 0)))[0]

    solved = [i for i, r in enumerate(candidates) if float(r["score"]) >= 1.0]
    if solved:
        return max(solved, key=lambda i: (tpf(candidates[i]), task_accuracy[i], -i))
    return max(range(len(candidates)),
               key=lambda i: (float(candidates[i]["score"]), task_accuracy[i], tpf(candidates[i]), -i))


def oracle_records(per_setting: Sequence[Mapping[Any, Mapping[str, Any]]]) -> list[Mapping[str, Any]]:
    """The oracle's chosen records for one task.

    Args:
        per_setting: for each setting, ``{sample index: record}``. Only samples present under every setting count.
    """
    if not per_setting:
        return []
    common = set(per_setting[0])
    for d in per_setting[1:]:
        common &= set(d)
    acc = [aggregate(list(d.values()))["accuracy"] for d in per_setting]
    chosen = []
    for idx in sorted(common):
        cands = [d[idx] for d in per_setting]
        chosen.append(cands[oracle_choice(cands, acc)])
    return chosen


def oracle_curve(per_task: Mapping[str, Sequence[Mapping[Any, Mapping[str, Any]]]],
                 order: Sequence[int]) -> list[dict[str, Any]]:
    """Oracle over growing prefixes of ``order`` (setting indices, slowest first).

    Args:
        per_task: task -> list over settings of ``{sample index: record}``.
        order: setting indices sorted by increasing task-average TPF.

    Returns:
        one point per prefix length j: ``{"settings": j, "tasks": {task: aggregate}, "average": task_average}``.
    """
    points = []
    for j in range(1, len(order) + 1):
        idx = list(order[:j])
        tasks = {t: aggregate(oracle_records([sets[i] for i in idx])) for t, sets in per_task.items()}
        points.append({"settings": j, "tasks": tasks, "average": task_average(list(tasks.values()))})
    return points


def _clean(v: Any) -> Any:
    """NaN -> None (JSON has no NaN)."""
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_clean(x) for x in v]
    return v


def summarize(groups: Mapping[tuple[str, str], Sequence[Mapping[str, Any]]], tasks: Sequence[str],
              families: Mapping[str, Sequence[str]], settings: Mapping[str, Mapping[str, Any]],
              xs: Iterable[float] = DEFAULT_PBX) -> dict[str, Any]:
    """The run summary (the ``summary.json`` body without the run configuration).

    Args:
        groups: ``(task, setting label) -> records`` of that task under that setting.
        tasks: task names in display order.
        families: family label -> its setting labels (sweep order).
        settings: setting label -> ``{"strategy": {...}, ...}`` (copied into the rows).
        xs: PBx thresholds in percent.

    Returns:
        ``{"results": [...], "averages": [...], "pbx": {...}, "oracle": [...], "oracle_curves": {...},
        "families": {...}, "tasks": [...]}``; see ``bench/cli.py`` for the layout.
    """
    xs = tuple(xs)
    family_of = {}
    for fam, labels in families.items():
        for lab in labels:
            family_of.setdefault(lab, fam)
    results, averages = [], []
    by_setting: dict[str, list[dict]] = {}
    for lab in settings:
        for task in tasks:
            recs = groups.get((task, lab)) or []
            if not recs:
                continue
            first = recs[0]
            row = {"task": task, "strategy": dict(settings[lab]["strategy"]), "setting": lab,
                   "family": family_of.get(lab, lab), "gen_length": first.get("gen_length"),
                   "block_length": first.get("block_length"), "steps": first.get("steps"), **aggregate(recs)}
            results.append(row)
            by_setting.setdefault(lab, []).append(row)
        rows = by_setting.get(lab)
        if rows:
            averages.append({"task": "average", "strategy": dict(settings[lab]["strategy"]), "setting": lab,
                             "family": family_of.get(lab, lab), **task_average(rows),
                             "complete": len(rows) == len(tasks)})
    avg_of = {a["setting"]: a for a in averages}

    pbx_out: dict[str, Any] = {}
    oracle_rows: list[dict] = []
    curves: dict[str, Any] = {}
    curve_sets = dict(families)
    if len(families) > 1:
        all_labels = list(dict.fromkeys(lab for labels in families.values() for lab in labels))
        curve_sets["all"] = all_labels
    for fam, labels in curve_sets.items():
        labels = [lab for lab in labels if lab in avg_of]
        if not labels:
            continue
        if fam in families:
            pts = [(avg_of[lab]["tokens_per_forward"], avg_of[lab]["accuracy"]) for lab in labels]
            pts_s = [(avg_of[lab]["tokens_per_step"], avg_of[lab]["accuracy"]) for lab in labels]
            pbx_out[fam] = {**pbx(pts, xs), "tokens_per_step": pbx(pts_s, xs)}
        if len(labels) < 2:
            continue  # the oracle of a single setting is that setting
        # oracle over the family's settings, slowest first
        order = sorted(range(len(labels)), key=lambda i: (avg_of[labels[i]]["tokens_per_forward"], i))
        per_task = {}
        for task in tasks:
            sets = [{r["index"]: r for r in groups.get((task, lab)) or []} for lab in labels]
            if all(sets):
                per_task[task] = sets
        if not per_task:
            continue
        curve = oracle_curve(per_task, order)
        curves[fam] = [{"settings": [labels[i] for i in order[:p["settings"]]], "average": p["average"],
                        "tasks": p["tasks"]} for p in curve]
        full = curve[-1]
        for task, agg in full["tasks"].items():
            oracle_rows.append({"task": task, "family": fam, "n_settings": len(labels), **agg})
        oracle_rows.append({"task": "average", "family": fam, "n_settings": len(labels), **full["average"]})
        pts = [(p["average"]["tokens_per_forward"], p["average"]["accuracy"]) for p in curve]
        pts_s = [(p["average"]["tokens_per_step"], p["average"]["accuracy"]) for p in curve]
        pbx_out[f"oracle:{fam}"] = {**pbx(pts, xs), "tokens_per_step": pbx(pts_s, xs)}
    return _clean({"results": results, "averages": averages, "pbx": pbx_out, "oracle": oracle_rows,
                   "oracle_curves": curves, "families": {k: list(v) for k, v in families.items()},
                   "tasks": list(tasks), "pbx_thresholds": list(xs)})
