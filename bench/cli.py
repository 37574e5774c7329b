"""``dllm bench`` (also ``python -m bench``): ParallelBench-style accuracy-vs-parallelism runs.

Examples::

    dllm bench --tasks 'waiting_line/*' --limit 20 --out runs/wl \\
        --strategy low_confidence --sweep low_confidence:k=1,2,4,8 \\
        --strategy threshold --sweep threshold=0.5:1.0:0.05
    dllm bench --tasks-from ParallelBench/dataset/parallel_bench/data/output/test/waiting_line --out runs/pb
    dllm bench --config sweep.yaml --out runs/yaml --dry-run

Strategies: ``--strategy NAME`` (repeatable; see ``dllm strategies``) starts a strategy family; each ``--param
KEY=VALUE`` after it fixes a parameter of that family. ``--sweep [STRATEGY:]PARAM=VALUES`` (``START:STOP:STEP``
inclusive, or ``V1,V2,...``) applies to every family whose strategy has PARAM, or only to STRATEGY's families
with the prefix; ``block_length`` and ``steps`` can be swept for every strategy. Top-k with a fixed number of
tokens per step is the ``k`` parameter of ``low_confidence`` / ``random`` / ``topk`` / ``left_to_right``.

Contract for external harnesses (stable): ``--tasks-from DIR`` reads ParallelBench-format folders, ``--out DIR``
names the run folder, and ``DIR/summary.json`` holds ``{"results": [{"task", "strategy": {"type", ...params},
"n", "accuracy", "accuracy_strict", "nfe", "tokens_per_forward", "tokens_per_step", "wall_s", ...}, ...],
"pbx": {...}, ...}`` with accuracies in [0, 1] and means over samples (see ``bench.runner`` / ``bench.metrics``).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

__all__ = ["add_parser", "run", "main"]


class _StrategyAction(argparse.Action):
    """``--strategy NAME``: start a new family (its ``--param`` flags follow it)."""

    def __call__(self, parser, namespace, values, option_string=None):
        items = list(getattr(namespace, self.dest, None) or [])
        items.append([values, []])
        setattr(namespace, self.dest, items)


class _ParamAction(argparse.Action):
    """``--param KEY=VALUE``: a fixed parameter of the most recent ``--strategy``."""

    def __call__(self, parser, namespace, values, option_string=None):
        items = list(getattr(namespace, "strategies", None) or [])
        if not items:
            raise argparse.ArgumentError(self, f"--param {values!r} must follow a --strategy NAME it belongs to.")
        items[-1] = [items[-1][0], items[-1][1] + [values]]
        setattr(namespace, "strategies", items)


def _pbx_list(text: str) -> list[float]:
    try:
        xs = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--pbx must be comma-separated percentages, got {text!r}.") from None
    if not xs or any(not 0 < x <= 100 for x in xs):
        raise argparse.ArgumentTypeError(f"--pbx values must be in (0, 100], got {text!r}.")
    return [int(x) if x.is_integer() else x for x in xs]


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}.") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}.")
    return v


def add_parser(p: argparse.ArgumentParser) -> None:
    """Add the ``bench`` arguments to ``p`` (the ``dllm`` CLI's subcommand plug-in hook)."""
    p.description = ("Run ParallelBench-style tasks with one or more decoding strategies (and parameter sweeps); "
                     "write per-sample JSONL, summary.json, results.md and accuracy-vs-tokens-per-forward plots.")
    m = p.add_argument_group("model")
    m.add_argument("--model", metavar="DIR", default=None,
                   help="checkpoint folder with tokenizer (default: the reference model dllm/reference_model/)")
    m.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"),
                   help="weight dtype (default float32)")
    m.add_argument("--backend", default="torch", choices=("torch", "jax"),
                   help="decoding engine (default torch; jax: the flax.nnx model on JAX's default device)")
    m.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    m.add_argument("--trust-remote-code", action="store_true",
                   help="let transformers run the tokenizer code shipped in the model folder (Dream); trusted "
                        "folders only")

    t = p.add_argument_group("tasks")
    t.add_argument("--tasks", nargs="+", metavar="PATTERN", default=None,
                   help="task names, aliases or globs, e.g. 'waiting_line/*' sudoku (comma-separated also "
                        "accepted; default: the 12 offline tasks, or every task of --tasks-from)")
    t.add_argument("--tasks-from", metavar="DIR", default=None,
                   help="ParallelBench-format folder: task_config.yaml + <task>.jsonl (a group folder such as "
                        "dataset/parallel_bench/data/output/test/waiting_line, or the split folder above it)")
    t.add_argument("--split", default="test", choices=("test", "validation"),
                   help="split of the generated tasks (default test; ignored with --tasks-from)")
    t.add_argument("--limit", type=_positive_int, default=None, metavar="N", help="first N items of every task")

    s = p.add_argument_group("strategies and sweeps")
    s.add_argument("--strategy", dest="strategies", action=_StrategyAction, metavar="NAME", default=None,
                   help="a decoding strategy (repeatable, one curve each; default low_confidence); see "
                        "`dllm strategies`")
    s.add_argument("--param", action=_ParamAction, metavar="KEY=VALUE",
                   help="fixed parameter of the preceding --strategy, e.g. --strategy topk --param score=margin")
    s.add_argument("--sweep", action="append", default=[], metavar="[STRATEGY:]PARAM=VALUES",
                   help="sweep PARAM over START:STOP:STEP (inclusive, exact decimals) or V1,V2,...; applies to "
                        "every --strategy having PARAM, or only to STRATEGY with the prefix (repeatable; several "
                        "sweeps of one strategy form a grid). block_length and steps can be swept too")
    s.add_argument("--config", metavar="YAML", default=None,
                   help="sweep file: {strategies: [{type: NAME, PARAM: VALUE, sweep: {PARAM: VALUES}}], "
                        "sweep: ['[STRATEGY:]PARAM=VALUES']}; added after the --strategy flags")

    d = p.add_argument_group("decoding")
    d.add_argument("--gen-length", type=_positive_int, default=None, metavar="N",
                   help="generated slots for every task (default: the task's max_tokens, 32 lists / 64 puzzles)")
    d.add_argument("--block-length", type=_positive_int, default=None, metavar="B",
                   help="semi-autoregressive block size, must divide the gen length (default: = gen length)")
    d.add_argument("--steps", type=_positive_int, default=None, metavar="S",
                   help="step budget of fixed-schedule strategies (default: = gen length, one token per step)")
    d.add_argument("--batch-size", type=_positive_int, default=8, metavar="N",
                   help="items of one task decoded together (default 8)")
    d.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    d.add_argument("--temperature", type=float, default=0.0, metavar="T", help="sampling temperature (0 = greedy)")
    d.add_argument("--top-p", type=float, default=None, metavar="P", help="nucleus filter (default off)")
    d.add_argument("--top-k", type=_positive_int, default=None, metavar="K", help="top-k filter (default off)")
    d.add_argument("--cfg-scale", type=float, default=0.0, metavar="W", help="classifier-free guidance (0 = off)")
    d.add_argument("--stop-on-eos", action="store_true", help="stop a row after a block that produced EOS")
    d.add_argument("--logits-eos-inf", action="store_true", help="never generate EOS")
    d.add_argument("--confidence-eos-eot-inf", action="store_true", help="commit EOS / EoT candidates last")
    d.add_argument("--no-chat-template", action="store_true",
                   help="join the item's messages with blank lines instead of the tokenizer's chat template")

    o = p.add_argument_group("output")
    o.add_argument("--out", metavar="DIR", default=None,
                   help="run folder (default bench_runs/<date-time>); rerunning with the same folder resumes")
    o.add_argument("--pbx", type=_pbx_list, default=[90, 80, 70], metavar="X,Y,...",
                   help="PBx accuracy levels in percent (default 90,80,70)")
    o.add_argument("--no-plots", action="store_true", help="do not write PNG plots (no matplotlib needed)")
    prog = o.add_mutually_exclusive_group()
    prog.add_argument("--progress", dest="progress", action="store_true", default=None,
                      help="always show the progress bar (default: only on a terminal)")
    prog.add_argument("--no-progress", dest="progress", action="store_false", help="never show the progress bar")
    o.add_argument("--dry-run", action="store_true",
                   help="validate the flags, print the settings and the samples still to compute, load no model")
    p.set_defaults(func=run)


def _tasks(values):
    if not values:
        return None
    return [t.strip() for v in values for t in v.split(",") if t.strip()]


def options_from_args(args: argparse.Namespace):
    """:class:`bench.runner.BenchOptions` from parsed arguments."""
    from .runner import BenchOptions
    from .sweeps import parse_param

    strategies = []
    for name, params in args.strategies or []:
        fixed = {}
        for item in params:
            k, v = parse_param(item)
            if k in fixed:
                raise ValueError(f"--param {k!r} is given twice for --strategy {name!r}.")
            fixed[k] = v
        strategies.append((name, fixed))
    out = args.out or str(Path("bench_runs") / time.strftime("%Y%m%d-%H%M%S"))
    return BenchOptions(
        out=out, model=args.model, tasks=_tasks(args.tasks), tasks_from=args.tasks_from, split=args.split,
        limit=args.limit, strategies=strategies, sweeps=list(args.sweep), config=args.config,
        gen_length=args.gen_length, block_length=args.block_length, steps=args.steps, batch_size=args.batch_size,
        seed=args.seed, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k, cfg_scale=args.cfg_scale,
        stop_on_eos=args.stop_on_eos, logits_eos_inf=args.logits_eos_inf,
        confidence_eos_eot_inf=args.confidence_eos_eot_inf, chat_template=not args.no_chat_template,
        backend=args.backend, dtype=args.dtype, device=args.device, trust_remote_code=args.trust_remote_code, pbx=args.pbx, plots=not args.no_plots, progress=args.progress,
        dry_run=args.dry_run)


def run(args: argparse.Namespace) -> int:
    from .runner import SAMPLES_FILE, run_bench, write_markdown

    opts = options_from_args(args)
    if opts.plots and not opts.dry_run:  # fail before any decoding when the plots cannot be drawn
        from .plots import require_matplotlib

        require_matplotlib()
    try:
        summary = run_bench(opts, log=lambda msg: print(msg, file=sys.stderr))
    except KeyboardInterrupt:
        print(f"\ndllm bench: interrupted; finished samples are in {Path(opts.out) / SAMPLES_FILE}. Rerun the same "
              "command to resume.", file=sys.stderr)
        return 130
    if summary is None:  # dry run
        return 0
    md = write_markdown(summary)
    head = md.split("\n## Per task", 1)[0]
    print(head.split("\n", 2)[2].strip() if head.count("\n") > 2 else head)
    print(f"\nrun folder: {opts.out} (summary.json, results.md, {SAMPLES_FILE}"
          + (", plot_*.png)" if opts.plots else ")"))
    return 0


def main(argv=None) -> int:
    """``python -m bench ARGS`` == ``dllm bench ARGS``."""
    from dllm.cli import main as dllm_main

    return dllm_main(["bench", *(sys.argv[1:] if argv is None else list(argv))])
