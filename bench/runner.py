"""The ``dllm bench`` runner: tasks x strategy settings -> per-sample JSONL, summary, Markdown table, plots.

Run folder (``--out DIR``)::

    run.json         the run's configuration (model fingerprint, data source, decoding settings); a rerun into the
                     same folder must match it (the settings that change results), else it is refused
    samples.jsonl    one JSON line per (task, setting, item), flushed after every batch; the resume log
    summary.json     results per (task, setting), task averages, PBx, oracle (written at the end)
    results.md       the same as Markdown tables
    plot_<task>.png, plot_average.png   accuracy vs tokens per forward

Resuming: samples whose key (task, strategy dict, block_length, steps, item index) is already in
``samples.jsonl`` are not recomputed (their stored prompt must equal the current one, so changed data or
templates are detected); an interrupted run (Ctrl-C, kill) is resumed by rerunning the same command. Lines are
written whole and flushed per batch; an unparsable trailing line left by a hard kill is dropped on the next start.

Batching: the pending items of one (task, setting) are decoded in chunks of ``batch_size`` in index order. Greedy
results do not depend on the batching (padding is invisible to the model); with noise (temperature > 0, the
``random`` strategy) they depend on the batch composition, which a resumed run keeps when whole batches were
written. Each sample is charged the forwards it took part in (:func:`decode_batch`), i.e. its NFE when decoded
alone, and its decoding order is counted in its own forwards; ``nfe_batch`` records the forwards its batch ran.
"""
from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from . import metrics
from .sweeps import Family, Setting, build_families, load_sweep_config

__all__ = ["BenchOptions", "BenchError", "RunStore", "BatchDecode", "decode_batch", "encode_messages",
           "load_items", "task_gen_length", "plan_settings", "run_bench", "write_markdown", "sample_key",
           "SAMPLES_FILE", "SUMMARY_FILE", "RUN_FILE", "RESULTS_FILE"]

SAMPLES_FILE = "samples.jsonl"
SUMMARY_FILE = "summary.json"
RUN_FILE = "run.json"
RESULTS_FILE = "results.md"
DEFAULT_GEN_LENGTH = 64  # tasks this package does not know (``--tasks-from`` with foreign task names)


class BenchError(ValueError):
    """A user error of the benchmark (bad flags, mismatched run folder, missing data)."""


@dataclass
class BenchOptions:
    """Everything a benchmark run needs (the CLI fills it from flags; usable from Python too).

    Attributes:
        out: run folder.
        model: checkpoint folder; None = the reference model (``dllm.load(None)``).
        tasks: task names / globs (``bench.tasks.select_tasks``; with ``tasks_from`` matched against the folder's
            task names); None = the 12 offline tasks, or every task of ``tasks_from``.
        tasks_from: a ParallelBench data folder (``task_config.yaml`` + ``<task>.jsonl``).
        split: split of the generated tasks (``test`` / ``validation``).
        limit: first N items of every task.
        strategies: ``[(name, {param: value}), ...]`` (default: ``[("low_confidence", {})]`` unless ``config``).
        sweeps: ``[STRATEGY:]PARAM=VALUES`` texts.
        config: a sweep YAML file (``bench.sweeps.load_sweep_config``); its strategies come after ``strategies``.
        gen_length: overrides every task's ``max_tokens`` (None: 32 for lists, 64 for puzzles).
        block_length, steps: defaults for every setting (None: = gen_length).
        batch_size: items per batch.
        seed, temperature, top_p, top_k, cfg_scale, stop_on_eos, logits_eos_inf, confidence_eos_eot_inf:
            ``DecodeConfig`` fields.
        chat_template: wrap ``item.messages`` in the tokenizer's chat template.
        backend: ``"torch"`` or ``"jax"`` (``dllm.load(backend=...)``): the engine that decodes; every strategy,
            LoPA included, is charged the same per-row forwards on both.
        dtype, device, trust_remote_code: model loading (``dllm.load``); trust_remote_code is needed for Dream's
            tokenizer and only for folders you trust.
        pbx: PBx thresholds (percent).
        plots: write PNG plots (needs matplotlib).
        progress: show a progress bar (tqdm; off when stderr is not a terminal unless forced True).
        dry_run: print the plan and pending counts, load no model.
        pipeline: an already loaded ``dllm.Pipeline`` (tests, notebooks); ``model`` then only labels the run.
    """

    out: str | Path
    model: str | Path | None = None
    tasks: Sequence[str] | None = None
    tasks_from: str | Path | None = None
    split: str = "test"
    limit: int | None = None
    strategies: Sequence[tuple] = ()
    sweeps: Sequence[str] = ()
    config: str | Path | None = None
    gen_length: int | None = None
    block_length: int | None = None
    steps: int | None = None
    batch_size: int = 8
    seed: int = 0
    temperature: float = 0.0
    top_p: float | None = None
    top_k: int | None = None
    cfg_scale: float = 0.0
    stop_on_eos: bool = False
    logits_eos_inf: bool = False
    confidence_eos_eot_inf: bool = False
    chat_template: bool = True
    backend: str = "torch"
    dtype: str = "float32"
    device: str | None = None
    trust_remote_code: bool = False
    pbx: Sequence[float] = metrics.DEFAULT_PBX
    plots: bool = True
    progress: bool | None = None
    dry_run: bool = False
    pipeline: Any = field(default=None, repr=False)


# ================================================================================================ tasks
def load_items(patterns: Sequence[str] | None, tasks_from: str | Path | None, split: str = "test",
               limit: int | None = None) -> dict[str, list]:
    """``task -> items``: generated tasks (``bench.tasks.load_task``) or a ParallelBench folder."""
    from .tasks import load_parallelbench, load_task, select_tasks

    if limit is not None and limit < 1:
        raise BenchError(f"--limit must be a positive integer, got {limit}.")
    if tasks_from is None:
        try:
            names = select_tasks(list(patterns) if patterns else ["offline"])
        except KeyError as e:
            raise BenchError(str(e.args[0]) if e.args else str(e)) from None
        out = {}
        for name in names:
            try:
                out[name] = load_task(name, split=split, limit=limit)
            except ValueError as e:
                raise BenchError(f"{e} (or select other tasks with --tasks).") from None
        return out
    root = Path(tasks_from)
    if not root.is_dir():
        raise BenchError(f"--tasks-from folder {str(root)!r} does not exist.")
    everything = load_parallelbench(root, tasks=None, limit=limit)
    if not everything:
        raise BenchError(f"--tasks-from {str(root)!r}: no task has a .jsonl file next to its task_config.yaml.")
    if not patterns:
        return everything
    chosen: dict[str, list] = {}
    for pat in patterns:
        hits = [t for t in everything
                if fnmatch.fnmatchcase(t, pat) or fnmatch.fnmatchcase(t.split("/", 1)[-1], pat)
                or _alias_match(t, pat)]
        if not hits:
            raise BenchError(f"--tasks {pat!r} matches no task of {str(root)!r} (tasks there: "
                             f"{', '.join(everything)}).")
        for t in hits:
            chosen[t] = everything[t]
    return {t: chosen[t] for t in everything if t in chosen}


def _alias_match(task: str, pattern: str) -> bool:
    from .tasks import TASKS

    spec = TASKS.get(task)
    return bool(spec) and any(fnmatch.fnmatchcase(a, pattern) for a in spec.aliases)


def task_gen_length(task: str, override: int | None = None) -> int:
    """Generation length of a task: ``override``, else the task's ``max_tokens`` (32 lists, 64 puzzles/text)."""
    if override is not None:
        return int(override)
    from .tasks import TASKS

    spec = TASKS.get(task)
    return spec.max_tokens if spec is not None else DEFAULT_GEN_LENGTH


def encode_messages(tokenizer, messages: Sequence[Mapping[str, str]], chat_template: bool = True
                    ) -> tuple[str, list[int]]:
    """``(prompt text, token ids)`` of a chat: the tokenizer's chat template with the generation prompt, or (no
    template / ``chat_template=False``) the turns' contents joined by blank lines."""
    if tokenizer is None:
        raise BenchError("the model folder has no tokenizer files; the benchmark needs a tokenizer.")
    if chat_template and getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    else:
        text = "\n\n".join(m["content"] for m in messages)
        ids = tokenizer(text)["input_ids"]
    return text, [int(t) for t in ids]


# ================================================================================================ plan
def plan_settings(opts: BenchOptions) -> list[Family]:
    """The strategy families of a run (validated; no model needed)."""
    strategies = [tuple(s) for s in opts.strategies]
    sweeps = list(opts.sweeps)
    if opts.config is not None:
        cfg_strats, cfg_sweeps = load_sweep_config(opts.config)
        strategies += cfg_strats
        sweeps += cfg_sweeps
    if not strategies:
        strategies = [("low_confidence", {})]
    return build_families(strategies, sweeps, block_length=opts.block_length, steps=opts.steps)


def _unique_settings(families: Sequence[Family]) -> dict[str, Setting]:
    """label -> setting, deduplicated by identity (the first label wins)."""
    out: dict[str, Setting] = {}
    keys: dict[str, str] = {}
    for fam in families:
        for s in fam.settings:
            if s.key in keys:
                continue
            keys[s.key] = s.label
            out[s.label] = s
    return out


def _family_labels(families: Sequence[Family]) -> dict[str, list[str]]:
    """family label -> the labels (after deduplication) of its settings."""
    first: dict[str, str] = {}
    for fam in families:
        for s in fam.settings:
            first.setdefault(s.key, s.label)
    return {fam.label: [first[s.key] for s in fam.settings] for fam in families}


def _decode_config(opts: BenchOptions, setting: Setting, gen_length: int):
    import dllm

    return dllm.DecodeConfig(
        gen_length=gen_length, block_length=setting.block_length, steps=setting.steps,
        strategy=dict(setting.strategy), temperature=opts.temperature, top_p=opts.top_p, top_k=opts.top_k,
        cfg_scale=opts.cfg_scale, stop_on_eos=opts.stop_on_eos, logits_eos_inf=opts.logits_eos_inf,
        confidence_eos_eot_inf=opts.confidence_eos_eot_inf, seed=opts.seed)


def sample_key(task: str, strategy: Mapping[str, Any], block_length: int, steps: int, index: int) -> str:
    """The resume key of one sample (canonical JSON)."""
    return json.dumps([task, dict(strategy), int(block_length), int(steps), int(index)], sort_keys=True)


# ================================================================================================ run folder
def _model_fingerprint(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {"path": None}
    path = Path(path)
    fp: dict[str, Any] = {"path": str(path.resolve())}
    cfg = path / "config.json"
    if cfg.is_file():
        fp["config_sha256"] = hashlib.sha256(cfg.read_bytes()).hexdigest()
    weights = sorted(p for p in path.glob("*.safetensors"))
    fp["weights_bytes"] = sum(p.stat().st_size for p in weights)
    return fp


def _run_config(opts: BenchOptions, model_path: Path | None) -> dict[str, Any]:
    """The settings that change results: a rerun into the same folder must match them."""
    cfg = {
        "model": _model_fingerprint(model_path),
        "dtype": opts.dtype,
        "data": {"tasks_from": str(Path(opts.tasks_from).resolve()) if opts.tasks_from else None,
                 "split": None if opts.tasks_from else opts.split},
        "decode": {"gen_length": opts.gen_length, "temperature": float(opts.temperature), "top_p": opts.top_p,
                   "top_k": opts.top_k, "cfg_scale": float(opts.cfg_scale), "stop_on_eos": opts.stop_on_eos,
                   "logits_eos_inf": opts.logits_eos_inf, "confidence_eos_eot_inf": opts.confidence_eos_eot_inf,
                   "seed": int(opts.seed)},
        "chat_template": bool(opts.chat_template),
    }
    if opts.backend != "torch":  # absent = torch, so run folders written before the option still resume
        cfg["backend"] = opts.backend
    return cfg


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            out += _diff(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [f"{prefix[:-1]}: {a!r} -> {b!r}"]


class RunStore:
    """A run folder's ``run.json`` and ``samples.jsonl`` (append-only, one flushed line per sample)."""

    def __init__(self, out: str | Path):
        self.dir = Path(out)
        self.samples_path = self.dir / SAMPLES_FILE
        self.records: dict[str, dict] = {}
        self._fh = None

    # ---- configuration ------------------------------------------------------------------------------------------
    def check_config(self, config: Mapping[str, Any]) -> bool:
        """Write ``run.json`` or compare with it; returns True when the folder already had a run.

        Raises:
            BenchError: the folder was written with a different configuration.
        """
        path = self.dir / RUN_FILE
        if path.is_file():
            try:
                old = json.loads(path.read_text()).get("config")
            except (ValueError, AttributeError):
                raise BenchError(f"{str(path)!r} is not valid JSON; use a new --out folder.") from None
            diffs = _diff(old, json.loads(json.dumps(config)))
            if diffs:
                raise BenchError(f"run folder {str(self.dir)!r} was written with a different configuration ("
                                 + "; ".join(diffs) + "); use another --out, or delete the folder to start over.")
            return True
        if self.samples_path.is_file() and self.samples_path.stat().st_size:
            raise BenchError(f"{str(self.samples_path)!r} exists without {RUN_FILE}; use another --out folder.")
        self.dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, json.dumps({"config": config, "created": time.strftime("%Y-%m-%dT%H:%M:%S")},
                                       indent=2) + "\n")
        return False

    # ---- samples ------------------------------------------------------------------------------------------------
    def load(self) -> int:
        """Read ``samples.jsonl`` (dropping unparsable lines, e.g. a line cut by a hard kill); returns the count."""
        self.records = {}
        if not self.samples_path.is_file():
            return 0
        raw = self.samples_path.read_text(encoding="utf-8")
        good, bad = [], 0
        for line in raw.splitlines():
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                key = sample_key(rec["task"], rec["strategy"], rec["block_length"], rec["steps"], rec["index"])
            except (ValueError, KeyError, TypeError):
                bad += 1
                continue
            if key not in self.records:
                self.records[key] = rec
                good.append(line)
        if bad or (raw and not raw.endswith("\n")):
            if bad:
                print(f"dllm bench: dropped {bad} unreadable line(s) of {self.samples_path}", file=sys.stderr)
            _atomic_write(self.samples_path, "".join(ln + "\n" for ln in good))
        return len(self.records)

    def append(self, records: Iterable[dict]) -> None:
        if self._fh is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.samples_path, "a", encoding="utf-8")
        for rec in records:
            key = sample_key(rec["task"], rec["strategy"], rec["block_length"], rec["steps"], rec["index"])
            self._fh.write(json.dumps(rec, default=_json_default) + "\n")
            self.records[key] = rec
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _json_default(o):
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# ================================================================================================ decoding
@dataclass
class BatchDecode:
    """One decoded batch: per row the generated ids ``[G]``, the forwards it took part in, its decoding order
    (0-based index of its own forward that committed each position for good, -1 never), the batch's NFE and
    (lookahead strategies) the sequences the batch forwarded per prompt."""

    sequences: list[list[int]]
    nfe: list[int]
    order: list[list[int]]
    nfe_batch: int
    wall_s: float
    branch_forwards: int | None = None
    row_branch_forwards: list[int] | None = None  # lookahead: per row, the sequences it would forward alone


def decode_batch(engine, rows: Sequence[Sequence[int]], config, strategy) -> BatchDecode:
    """Decode ``rows`` as one batch with per-row NFE accounting.

    A row is charged a forward when it would have run it decoded alone: for a ``fixed`` schedule every step of a
    block the row still had masks in at the block's start; for a ``dynamic`` one every step in which it still had
    masks in the block or changed a token (commit / remask). Padding is invisible to the model, so for a greedy
    strategy that is exactly the row's NFE in a batch of one. Lookahead steps charge what the engine reports per row
    (``StepEvent.row_forwards``): the batched verification also forwards rows whose anchor already filled the
    block, which they would have skipped alone.
    """
    import torch

    BL = config.block_len
    mask_id = config.mask_id if config.mask_id is not None else engine.mask_id
    schedule = getattr(strategy, "schedule", "fixed")
    actives: list = []
    forwards: list = []  # [B] forwards each step cost each row (a lookahead step may cost 2: bare canvas + branches)
    branches: list = []  # [B] sequences each lookahead step would forward for each row alone
    prev_nfe = 0
    block_active = None
    t0 = time.perf_counter()
    gen = engine.run(rows, config, strategy)
    while True:
        try:
            ev = next(gen)
        except StopIteration as stop:
            res = stop.value
            break
        cols = slice(ev.block * BL, (ev.block + 1) * BL)
        # masks before this step = still masked after it, or committed by it (commits only fill masks; edits of
        # committed tokens also mean the row took part)
        had = torch.as_tensor((ev.tokens[:, cols] == mask_id) | ev.committed[:, cols]).any(-1)  # numpy on JAX
        if schedule == "fixed":
            if ev.step_in_block == 0 or block_active is None:
                block_active = had
            active = block_active
        else:
            active = had | torch.as_tensor(ev.remasked).any(-1)
        actives.append(active)
        if ev.row_forwards is None:
            forwards.append(torch.full((ev.tokens.shape[0],), int(ev.nfe) - prev_nfe))
        else:
            forwards.append(torch.as_tensor(ev.row_forwards).cpu().long())
        if ev.row_branch_forwards is not None:
            branches.append(torch.as_tensor(ev.row_branch_forwards).cpu().long())
        prev_nfe = int(ev.nfe)
    seqs = torch.as_tensor(res.sequences).cpu().long()
    order = torch.as_tensor(res.decoding_order).cpu().long()
    wall = time.perf_counter() - t0
    B = seqs.shape[0]
    if actives:
        act = torch.stack(actives).cpu().long()              # [T, B]
        nfe = (act * torch.stack(forwards)).sum(0)           # [B] forwards of the steps the row took part in
        row_bf = (act * torch.stack(branches)).sum(0).tolist() if len(branches) == len(actives) else None
        local = (act.cumsum(0) - 1).T                         # [B, T] row-local index of each global step
        idx = order.clamp(min=0, max=act.shape[0] - 1)
        order = torch.where(order >= 0, torch.gather(local, 1, idx), torch.full_like(order, -1))
    else:
        nfe = torch.zeros(B, dtype=torch.long)
        row_bf = None
    bf = getattr(res, "branch_forwards", None)
    return BatchDecode(sequences=seqs.tolist(), nfe=nfe.tolist(), order=order.tolist(), nfe_batch=int(res.nfe),
                       wall_s=wall, branch_forwards=None if bf is None else int(bf), row_branch_forwards=row_bf)


# ================================================================================================ the run
def _batches(seq: Sequence, size: int) -> Iterator[Sequence]:
    for i in range(0, len(seq), size):
        yield seq[i:i + size]


@contextlib.contextmanager
def _progress(total: int, enabled: bool | None):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a core dependency
        tqdm = None
    if tqdm is None or enabled is False or total == 0:
        class _Null:
            def update(self, n=1): ...
            def set_postfix_str(self, s, refresh=True): ...
        yield _Null()
        return
    disable = None if enabled is None else False  # None: tqdm turns itself off when stderr is not a TTY
    bar = tqdm(total=total, unit="sample", desc="dllm bench", disable=disable, dynamic_ncols=True)
    try:
        yield bar
    finally:
        bar.close()


def run_bench(opts: BenchOptions, log=print) -> dict[str, Any] | None:
    """Run (or resume) a benchmark; returns the summary (None for a dry run).

    Raises:
        BenchError / ValueError: bad options or a run folder written with another configuration.
        KeyboardInterrupt: after closing the JSONL (every finished batch is kept; rerun to resume).
    """
    if not isinstance(opts.batch_size, int) or opts.batch_size < 1:
        raise BenchError(f"--batch-size must be a positive integer, got {opts.batch_size!r}.")
    if opts.backend not in ("torch", "jax"):
        raise BenchError(f"--backend must be 'torch' or 'jax', got {opts.backend!r}.")
    families = plan_settings(opts)
    settings = _unique_settings(families)
    fam_labels = _family_labels(families)
    items = load_items(opts.tasks, opts.tasks_from, opts.split, opts.limit)
    gen_lengths = {t: task_gen_length(t, opts.gen_length) for t in items}
    configs = {}
    for task in items:  # validate every (task, setting) before loading anything
        for lab, s in settings.items():
            try:
                configs[task, lab] = _decode_config(opts, s, gen_lengths[task])
            except ValueError as e:
                raise BenchError(f"setting {lab!r} on task {task!r} (gen_length {gen_lengths[task]}): {e}") from None

    store = RunStore(opts.out)
    if opts.dry_run:
        store.load()
        pending = _pending_counts(store, items, settings, configs)
        log(f"dllm bench (dry run): {len(items)} task(s) x {len(settings)} setting(s); "
            f"{sum(pending.values())} of {sum(len(v) for v in items.values()) * len(settings)} samples to compute")
        for fam, labels in fam_labels.items():
            log(f"  {fam}: " + ", ".join(labels))
        for task, its in items.items():
            log(f"  {task}: {len(its)} item(s), gen_length {gen_lengths[task]}, pending {pending[task]}")
        return None
    if opts.pipeline is not None:
        pipe = opts.pipeline
        model_path = getattr(pipe, "path", None) or (Path(opts.model) if opts.model else None)
    else:
        from dllm.api import default_model_path

        pipe = None
        model_path = Path(opts.model) if opts.model is not None else default_model_path()
        if not model_path.is_dir():
            raise BenchError(f"model folder {str(model_path)!r} does not exist.")
    run_config = _run_config(opts, model_path)
    resumed = store.check_config(run_config)
    done = store.load()
    if resumed and done:
        log(f"dllm bench: resuming {opts.out}: {done} sample(s) already done")

    plan = []  # (task, label, pending items)
    for task, its in items.items():
        for lab, s in settings.items():
            cfg = configs[task, lab]
            todo = []
            for it in its:
                rec = store.records.get(sample_key(task, s.strategy, cfg.block_len, cfg.total_steps, it.index))
                if rec is None:
                    todo.append(it)
            plan.append((task, lab, todo))
    total = sum(len(t) for _, _, t in plan)

    if total and pipe is None:
        import dllm

        pipe = dllm.load(model_path, backend=opts.backend, dtype=opts.dtype, device=opts.device,
                         trust_remote_code=opts.trust_remote_code)
    if pipe is not None:
        tokenizer = pipe.tokenizer
    else:  # everything is done already: the tokenizer alone checks the stored prompts
        from dllm.api import _quiet_transformers
        from dllm.models import load_tokenizer

        with _quiet_transformers():
            tokenizer = load_tokenizer(model_path, trust_remote_code=opts.trust_remote_code)
    if tokenizer is None:
        raise BenchError("the model folder has no tokenizer files; the benchmark needs a tokenizer.")
    prompts = {task: {it.index: encode_messages(tokenizer, it.messages, opts.chat_template) for it in its}
               for task, its in items.items()}
    _check_prompts(store, items, prompts)

    try:
        with _progress(total, opts.progress) as bar:
            for task, lab, todo in plan:
                if not todo:
                    continue
                s = settings[lab]
                cfg = configs[task, lab]
                from dllm.engine import resolve_strategy

                strat = resolve_strategy(dict(s.strategy))
                bar.set_postfix_str(f"{task} | {lab}")
                for batch in _batches(todo, opts.batch_size):
                    rows = [prompts[task][it.index][1] for it in batch]
                    out = decode_batch(pipe.engine, rows, cfg, strat)
                    recs = [_record(pipe, task, it, s, cfg, prompts[task][it.index][0], out, r, len(batch))
                            for r, it in enumerate(batch)]
                    store.append(recs)
                    bar.update(len(batch))
    finally:
        store.close()

    summary = summarize_store(store, items, settings, fam_labels, configs, opts.pbx)
    summary["run"] = {**run_config, "batch_size": opts.batch_size, "limit": opts.limit,
                      "block_length": opts.block_length, "steps": opts.steps,
                      "gen_lengths": gen_lengths}
    out = Path(opts.out)
    _atomic_write(out / SUMMARY_FILE, json.dumps(summary, indent=2, default=_json_default) + "\n")
    md = write_markdown(summary)
    _atomic_write(out / RESULTS_FILE, md)
    if opts.plots:
        from .plots import write_plots

        write_plots(summary, out)
    return summary


def _pending_counts(store: RunStore, items, settings, configs) -> dict[str, int]:
    out = {}
    for task, its in items.items():
        n = 0
        for lab, s in settings.items():
            cfg = configs[task, lab]
            n += sum(sample_key(task, s.strategy, cfg.block_len, cfg.total_steps, it.index) not in store.records
                     for it in its)
        out[task] = n
    return out


def _check_prompts(store: RunStore, items, prompts) -> None:
    """Stored samples must have been made from the same prompts (changed data / template -> refuse)."""
    for rec in store.records.values():
        cur = prompts.get(rec["task"], {}).get(rec["index"])
        if cur is not None and rec.get("prompt") is not None and rec["prompt"] != cur[0]:
            raise BenchError(f"item {rec['index']} of task {rec['task']!r} has a different prompt than the one "
                             f"stored in {str(store.samples_path)!r} (changed data or chat template); use another "
                             "--out folder.")


def _record(pipe, task, item, setting: Setting, cfg, prompt_text: str, out: BatchDecode, r: int, bsz: int) -> dict:
    from .scorers import score_prediction

    engine = pipe.engine
    ids = out.sequences[r]
    n_ans = metrics.answer_length(ids, [engine.eos_id, engine.eot_id])
    text = pipe.decode(ids[:n_ans])
    sc = score_prediction(item.metric, text, item.reference)
    nfe = int(out.nfe[r])
    tpf, tps = metrics.sample_speed(n_ans, nfe, cfg.gen_length)
    rec = {
        "task": task, "index": item.index, "strategy": dict(setting.strategy), "setting": setting.label,
        "gen_length": cfg.gen_length, "block_length": cfg.block_len, "steps": cfg.total_steps,
        "prompt": prompt_text, "output": text, "parsed": sc.parsed, "reference": item.reference,
        "score": float(sc.score), "score_strict": float(sc.score_strict),
        "nfe": nfe, "nfe_batch": out.nfe_batch, "answer_tokens": n_ans,
        "tokens_per_forward": tpf, "tokens_per_step": tps,
        "wall_s": out.wall_s / bsz, "batch_size": bsz,
        "order": out.order[r], "output_ids": ids,
    }
    if out.branch_forwards is not None and out.branch_forwards != out.nfe_batch:
        rec["branch_forwards_batch"] = out.branch_forwards  # lookahead strategies: sequences forwarded per prompt
    if out.row_branch_forwards is not None:
        rec["branch_forwards"] = out.row_branch_forwards[r]  # what this prompt would forward decoded alone
    if sc.details:
        rec["details"] = {k: v for k, v in sc.details.items() if isinstance(v, (int, float, bool))}
    return rec


def summarize_store(store: RunStore, items, settings: Mapping[str, Setting], fam_labels, configs,
                    xs=metrics.DEFAULT_PBX) -> dict[str, Any]:
    """The summary of the current plan's samples in ``store`` (records of other settings are ignored)."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for task, its in items.items():
        for lab, s in settings.items():
            cfg = configs[task, lab]
            recs = [store.records.get(sample_key(task, s.strategy, cfg.block_len, cfg.total_steps, it.index))
                    for it in its]
            recs = [r for r in recs if r is not None]
            if recs:
                groups[task, lab] = recs
    info = {lab: {"strategy": dict(s.strategy)} for lab, s in settings.items()}
    return metrics.summarize(groups, list(items), fam_labels, info, xs)


# ================================================================================================ Markdown
def _f(v: Any, digits: int = 2, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{100 * v:.1f}" if pct else f"{v:.{digits}f}"


def write_markdown(summary: Mapping[str, Any]) -> str:
    """``results.md``: per-task results, task averages, PBx and the oracle."""
    head = ("| setting | task | n | acc % | strict % | NFE | TPF | TPS | tok/s | s/sample |\n"
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    lines = ["# dllm bench results", "",
             "acc = lenient accuracy, strict = strict-format accuracy, NFE = forwards per sample, TPF = answer "
             "tokens per forward (EOS padding excluded), TPS = gen_length / NFE (ParallelBench tokens per step), "
             "tok/s = answer tokens per second of decoding.", "", "## Task averages", "", head.rstrip("\n")]

    def row(r, task):
        return (f"| {r['setting']} | {task} | {r['n']} | {_f(r['accuracy'], pct=True)} | "
                f"{_f(r['accuracy_strict'], pct=True)} | {_f(r['nfe'], 1)} | {_f(r['tokens_per_forward'])} | "
                f"{_f(r['tokens_per_step'])} | {_f(r['tokens_per_second'], 1)} | {_f(r['wall_s'], 3)} |")

    for r in summary.get("averages", []):
        lines.append(row(r, f"average of {r['n_tasks']}" + ("" if r.get("complete", True) else " (incomplete)")))
    xs = summary.get("pbx_thresholds", [])
    if summary.get("pbx"):
        names = [f"PB{metrics._fmt_x(x)}" for x in xs]
        lines += ["", "## PBx (highest task-average speed with accuracy ≥ x %)", "",
                  "| curve | " + " | ".join(f"{n} (TPF)" for n in names) + " | "
                  + " | ".join(f"{n} (TPS)" for n in names) + " |",
                  "|---|" + "---:|" * (2 * len(names))]
        for curve, vals in summary["pbx"].items():
            lines.append(f"| {curve} | " + " | ".join(_f(vals.get(n)) for n in names) + " | "
                         + " | ".join(_f(vals.get("tokens_per_step", {}).get(n)) for n in names) + " |")
    if summary.get("oracle"):
        lines += ["", "## Oracle (per sample, the fastest setting that solved it)", "",
                  "| family | task | n | settings | acc % | strict % | NFE | TPF | TPS |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in summary["oracle"]:
            lines.append(f"| {r['family']} | {r['task']} | {r['n']} | {r['n_settings']} | "
                         f"{_f(r['accuracy'], pct=True)} | {_f(r['accuracy_strict'], pct=True)} | {_f(r['nfe'], 1)} | "
                         f"{_f(r['tokens_per_forward'])} | {_f(r['tokens_per_step'])} |")
    lines += ["", "## Per task", "", head.rstrip("\n")]
    for r in summary.get("results", []):
        lines.append(row(r, r["task"]))
    return "\n".join(lines) + "\n"
