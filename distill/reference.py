"""The project's reference dLLM: tokenizer corpus, training examples and the ``dllm train`` command.

Recipe (all defaults of :class:`distill.train.TrainConfig`): LLaDA layout (RoPE, SwiGLU, RMSNorm), trained with
the masked-diffusion SFT objective on the *train* split of the 12 offline ParallelBench tasks (which never
overlaps validation/test), prompts in the official one-shot chat format, answers padded with end-of-text to the
task's ``max_tokens`` (32 for lists, 64 for puzzles) — the canvas ``dllm bench`` decodes.

    dllm train --out runs/reference            # seeded, resumable (re-run the same command), progress bar
    dllm train --out runs/reference --steps 20 --batch-size 4   # smoke test
"""
from __future__ import annotations

import argparse
import itertools
import random
import string
from pathlib import Path

from .data import Example, encode_example
from .train import INIT_SCHEMES, TrainConfig, train

TOKENIZER_SEED = 1234


def offline_task_names() -> list[str]:
    from bench.tasks.registry import select_tasks

    return select_tasks("offline")


def tokenizer_corpus(n_items: int = 3000) -> list[str]:
    """Texts whose pre-tokens form the vocabulary: rendered chats and answers of train/validation/test items,
    plus every name and puzzle symbol in each spelling it can take (so unseen lists never hit ``<|unk|>``)."""
    from bench.tasks.generators import load_names
    from bench.tasks.splits import iter_train_items, load_task


    texts: list[str] = []
    items = list(itertools.islice(iter_train_items(offline_task_names(), seed=TOKENIZER_SEED), n_items))
    for name in offline_task_names():
        items += load_task(name, split="test") + load_task(name, split="validation")
    for it in items:
        for m in it.messages:
            texts.append(m["role"] + "\n\n" + m["content"])
        if it.target_text:
            texts.append(it.target_text)
    firsts, lasts = load_names()
    for f in firsts:
        texts.append(f'["{f} X", " {f} "{f}')
    for l in lasts:
        texts.append(f'["X {l}", "{l} {l}"')
    symbols = string.ascii_uppercase + string.digits
    texts.append(", ".join(symbols) + " " + " ".join(symbols) + "\n" + ",".join(symbols))
    texts.append("user\n\nassistant\n\n")
    return texts


def build_reference_tokenizer():
    from .word_tokenizer import build_word_tokenizer

    return build_word_tokenizer(tokenizer_corpus())


def parse_spec_entry(entry: str, field: str, key_word: str, value_word: str) -> tuple[str, float]:
    """``(key, value)`` of one ``KEY=NUMBER`` entry of a comma-separated CLI spec (``--task-weights``,
    ``--aux-tasks``); ``key`` keeps inner spaces, the entry's outer ones are stripped.

    Raises:
        ValueError: no ``=``, an empty key, or a value that is not a number; the message names ``field`` and the
            entry, e.g. ``task_weights entry 'copy' is not PATTERN=WEIGHT``.
    """
    key, sep, value = entry.strip().partition("=")
    if not sep or not key.strip():
        raise ValueError(f"{field} entry {entry!r} is not {key_word}={value_word.upper()}")
    try:
        return key, float(value)
    except ValueError:
        raise ValueError(f"{field} entry {entry!r}: {value_word} {value!r} is not a number") from None


def parse_task_weights(spec: str, names: list[str]) -> list[float] | None:
    """Sampling weight of each task in ``names`` from ``"PATTERN=W,PATTERN=W"`` (``None`` for ``""``: uniform).

    A pattern is anything :func:`bench.tasks.registry.select_tasks` accepts (a name, an alias, a glob such as
    ``waiting_line/*``); later entries override earlier ones, and tasks no entry matches keep weight 1.

    Raises:
        ValueError: a malformed entry, a negative or non-numeric weight, a pattern outside ``names``, or all
            weights zero; the message names the entry.
    """
    from bench.tasks.registry import select_tasks

    if not spec.strip():
        return None
    weights = dict.fromkeys(names, 1.0)
    for entry in spec.split(","):
        pattern, weight = parse_spec_entry(entry, "task_weights", "PATTERN", "weight")
        if not weight >= 0:
            raise ValueError(f"task_weights entry {entry!r}: weight must be >= 0")
        try:
            hits = select_tasks(pattern)
        except KeyError:
            raise ValueError(f"task_weights entry {entry!r}: {pattern!r} matches no task") from None
        outside = [h for h in hits if h not in weights]
        if outside:
            raise ValueError(f"task_weights entry {entry!r}: {outside} are not among the train tasks {names}")
        weights.update(dict.fromkeys(hits, weight))
    if not any(weights.values()):
        raise ValueError(f"task_weights {spec!r} gives every task weight 0")
    return [weights[n] for n in names]


def example_maker(tokenizer, seed: int, zero_shot_fraction: float = 0.0, task_weights: str = "",
                  lookup_fraction: float = 0.0, aux_tasks: str = ""):
    """``make_example(step_rng)``: a train item of a task drawn uniformly, or by ``task_weights``.

    ``zero_shot_fraction`` of the items (decided by a hash of the item's seed, so the step RNG stream and hence
    every other row are unchanged) drop the one-shot turn: the row is just the test question and its answer. It
    is a curriculum aid, not the evaluation format — ``dllm bench`` always prompts one-shot. Shorter rows with a
    single list make the copy-from-prompt mechanism the list tasks need easier to find (session 4 of
    docs/reference_model.md). ``task_weights`` (see :func:`parse_task_weights`) is the other curriculum aid: a
    larger share of the tasks that teach a missing mechanism (session 6). With ``""`` the task draw is the one
    earlier runs used, so their data streams are unchanged. ``lookup_fraction`` of the rows (again by a hash of
    the item seed) are replaced by the train-only last-name lookup task of :mod:`distill.lookup`, which only an
    induction step solves. ``aux_tasks`` (``"NAME=FRACTION,..."``, :mod:`distill.aux_tasks`) replaces those
    fractions of the rows, by a third hash, with short train-only rows (session 7).
    """
    from bench.tasks.registry import get_task
    from bench.tasks.splits import iter_train_items

    from .aux_tasks import AUX_TASKS, parse_aux_fractions, pick_aux_task
    from .lookup import lookup_example

    names = offline_task_names()
    gen_len = {n: get_task(n).max_tokens for n in names}
    weights = parse_task_weights(task_weights, names)
    aux = parse_aux_fractions(aux_tasks)

    def make(rng) -> Example:
        # A fresh train stream per example, seeded from the step's RNG: the data of step s depends on (seed, s)
        # only, so a resumed run trains on exactly the examples an uninterrupted one would.
        name = names[rng.randrange(len(names))] if weights is None else rng.choices(names, weights)[0]
        item_seed = seed * 2**32 + rng.getrandbits(32)
        if lookup_fraction and random.Random(f"lookup:{item_seed}").random() < lookup_fraction:
            return lookup_example(tokenizer, random.Random(f"lookup-item:{item_seed}"))
        aux_name = aux and pick_aux_task(aux, random.Random(f"aux:{item_seed}").random())
        if aux_name:
            return AUX_TASKS[aux_name](tokenizer, random.Random(f"aux-item:{aux_name}:{item_seed}"))
        item = next(iter_train_items([name], seed=item_seed))
        messages = item.messages
        if zero_shot_fraction and random.Random(f"zero-shot:{item_seed}").random() < zero_shot_fraction:
            messages = messages[-1:]
        return encode_example(tokenizer, name, messages, item.target_text, gen_len[name])

    return make


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    from .aux_tasks import AUX_TASKS

    d = TrainConfig()
    p.add_argument("--out", default=d.out, help="run folder (state, loss log, exported model/); re-run to resume")
    p.add_argument("--steps", type=int, default=d.steps, help="total optimizer steps (may be raised on resume)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="examples per step")
    p.add_argument("--lr", type=float, default=d.lr, help="peak AdamW learning rate (cosine decay to --min-lr-ratio)")
    p.add_argument("--warmup", type=int, default=d.warmup, help="linear warm-up steps")
    p.add_argument("--min-lr-ratio", type=float, default=d.min_lr_ratio,
                   help="final lr as a fraction of --lr (1.0: constant lr after warm-up)")
    p.add_argument("--decay-start", type=int, default=d.decay_start, metavar="STEP",
                   help="keep the lr constant until STEP, then cosine to --min-lr-ratio at --steps or --decay-end "
                        "(anneal a resumed constant-lr run; default 0: decay right after warm-up)")
    p.add_argument("--decay-end", type=int, default=d.decay_end, metavar="STEP",
                   help="the step the cosine ends at (default 0: --steps); set it to stop a run mid-anneal and resume "
                        "it with other flags on the same schedule")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help="AdamW weight decay of the 2-D weights")
    p.add_argument("--no-scaled-init", action="store_true",
                   help="draw every 2-D weight at std 0.02 (default: residual output projections / sqrt(2*layers))")
    p.add_argument("--embed-std", type=float, default=d.embed_std,
                   help="init std of the input embeddings (the other 2-D weights: 0.02)")
    p.add_argument("--init", choices=INIT_SCHEMES, default=d.init,
                   help="binding_circuit: start layers 0-1 as previous-token and content-matching heads "
                        "(distill.circuit_init; use with a large --rope-theta, e.g. 500000)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of data order, init and masking")
    p.add_argument("--hidden-size", type=int, default=d.hidden_size, help="model width")
    p.add_argument("--num-layers", type=int, default=d.num_layers, help="transformer blocks")
    p.add_argument("--num-heads", type=int, default=d.num_heads, help="attention heads")
    p.add_argument("--intermediate-size", type=int, default=d.intermediate_size, help="SwiGLU hidden size")
    p.add_argument("--rope-theta", type=float, default=d.rope_theta,
                   help="RoPE base (LLaDA-8B: 500000; a larger base leaves more slowly rotating head dims, which "
                        "match tokens by content at any distance)")
    p.add_argument("--zero-shot-fraction", type=float, default=d.zero_shot_fraction,
                   help="curriculum: fraction of train rows without the one-shot turn (evaluation stays one-shot)")
    p.add_argument("--task-weights", default=d.task_weights, metavar="PATTERN=W,...",
                   help="curriculum: task sampling weights, e.g. 'waiting_line/copy=10' (unlisted tasks: 1)")
    p.add_argument("--lookup-fraction", type=float, default=d.lookup_fraction,
                   help="curriculum: fraction of rows from the train-only last-name lookup task (distill.lookup)")
    p.add_argument("--aux-tasks", default=d.aux_tasks, metavar="NAME=FRACTION,...",
                   help="curriculum: fractions of rows from short train-only tasks, e.g. 'copy_bare=0.6,lookup_bare=0.2' "
                        f"(distill.aux_tasks: {', '.join(AUX_TASKS)})")
    p.add_argument("--reinit-heads", default=d.reinit_heads, metavar="LAYER.HEAD,...",
                   help="redraw these attention heads (0-based) once, when a run first trains with this value, and "
                        "zero their optimizer moments (frees little-used heads for a new circuit)")
    p.add_argument("--length-buckets", type=int, default=d.length_buckets,
                   help="sort each batch by row length into this many micro-batches (same loss, less padding)")
    p.add_argument("--save-every", type=int, default=d.save_every, help="checkpoint + export interval (steps)")
    p.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads (0: torch default)")
    p.add_argument("--device", default=d.device, help="cpu, or cuda[:N] to train on a GPU (resumable across devices)")
    p.add_argument("--no-bf16", action="store_true", help="train in float32 instead of bf16 autocast")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--recipe", metavar="FILE|NAME",
                   help="train the phases of a recipe YAML (distill.recipe; shipped: 'reference', the shipped model's "
                        "history) instead of the flags above; only --out, --device, --threads, --save-every and "
                        "--no-progress apply with it. Re-run to resume.")


#: ``dllm train`` options that describe the run environment; every other option is part of a recipe.
_ENVIRONMENT_OPTIONS = ("out", "device", "threads", "save_every", "no_progress", "recipe")


def _reference_tokenizer_for(out: str):
    tok_dir = Path(out) / "tokenizer"
    if (tok_dir / "tokenizer.json").is_file():  # resuming: the vocabulary must not change
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(tok_dir))
    return build_reference_tokenizer()


def _maker_for(cfg: TrainConfig, tokenizer):
    return example_maker(tokenizer, cfg.seed, cfg.zero_shot_fraction, cfg.task_weights, cfg.lookup_fraction,
                         cfg.aux_tasks)


def run_recipe(args: argparse.Namespace) -> int:
    """Train every phase of ``args.recipe`` in turn, resuming from the run folder's state (see distill.recipe)."""
    import yaml

    from .recipe import load_recipe
    from .train import saved_step

    defaults = argparse.ArgumentParser()
    add_train_arguments(defaults)
    defaults = vars(defaults.parse_args([]))
    clashing = [k for k, v in vars(args).items()
                if k in defaults and k not in _ENVIRONMENT_OPTIONS and v != defaults[k]]
    if clashing:
        flags = ", ".join("--" + k.replace("_", "-") for k in clashing)
        raise ValueError(f"{flags} cannot be combined with --recipe (the recipe sets them); edit the recipe instead")
    recipe = load_recipe(args.recipe)
    configs = recipe.configs(out=args.out, device=args.device, threads=args.threads, save_every=args.save_every)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "recipe.yaml").write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))
    tokenizer = _reference_tokenizer_for(args.out)
    done = saved_step(args.out)
    for i, cfg in enumerate(configs):
        if done >= cfg.steps:
            continue
        print(f"recipe phase {i + 1}/{len(configs)}: steps to {cfg.steps}")
        train(cfg, _maker_for(cfg, tokenizer), tokenizer, progress=not args.no_progress)
        done = saved_step(args.out)
        if done < cfg.steps:  # interrupted: train() saved the state; the next run resumes here
            return 0
    print(f"recipe finished at step {recipe.steps}; model in {Path(args.out) / 'model'}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    if getattr(args, "recipe", None):
        return run_recipe(args)
    cfg = TrainConfig(out=args.out, steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup=args.warmup,
                      min_lr_ratio=args.min_lr_ratio, decay_start=args.decay_start,
                      decay_end=args.decay_end, weight_decay=args.weight_decay,
                      scaled_init=not args.no_scaled_init, embed_std=args.embed_std, init=args.init,
                      seed=args.seed, hidden_size=args.hidden_size, num_layers=args.num_layers,
                      num_heads=args.num_heads, intermediate_size=args.intermediate_size, rope_theta=args.rope_theta,
                      save_every=args.save_every, threads=args.threads, bf16=not args.no_bf16,
                      zero_shot_fraction=args.zero_shot_fraction, task_weights=args.task_weights,
                      lookup_fraction=args.lookup_fraction, aux_tasks=args.aux_tasks,
                      length_buckets=args.length_buckets, reinit_heads=args.reinit_heads,
                      device=args.device)
    tokenizer = _reference_tokenizer_for(cfg.out)
    model_dir = train(cfg, _maker_for(cfg, tokenizer), tokenizer, progress=not args.no_progress)
    print(f"model written to {model_dir}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="dllm train", description=__doc__.split("\n\n")[0])
    add_train_arguments(p)
    return run_train(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
