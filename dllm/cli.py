"""The ``dllm`` console script (also ``python -m dllm``).

Subcommands are plug-ins: a table of ``(name, "module:function", help)`` entries (:data:`SUBCOMMANDS`, extended by
:func:`register_subcommand` and by the ``dllm.subcommands`` entry-point group). The function receives the
subcommand's ``argparse.ArgumentParser``, adds its arguments and sets ``func=run`` with
``run(args: argparse.Namespace) -> int`` (the exit code)::

    def add_parser(parser):
        parser.add_argument("--tasks", help="...")
        parser.set_defaults(func=run)

Only the module of the subcommand being run is imported (``dllm strategies`` never imports torch); a subcommand
whose module is not there (not implemented yet, or an optional part not installed) is not listed.

Errors print one line ``dllm: error: ...`` on stderr and exit with code 2 (``--debug`` shows the traceback).
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from typing import Callable, Sequence


@dataclass(frozen=True)
class Subcommand:
    name: str
    target: str | Callable  # "package.module:function" (imported lazily) or the function itself
    help: str = ""

    def module_available(self) -> bool:
        if callable(self.target):
            return True
        module = self.target.partition(":")[0]
        try:
            return importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a parent package is missing
            return False

    def load(self) -> Callable:
        if callable(self.target):
            return self.target
        module, _, attr = self.target.partition(":")
        obj = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj


#: Built-in table. ``bench``, ``serve``, ``train`` and ``distill`` appear once their modules exist.
SUBCOMMANDS: dict[str, Subcommand] = {}


def register_subcommand(name: str, target: str | Callable, help: str = "") -> None:
    """Add (or replace) a subcommand: ``target`` is ``"module:function"`` or a function ``add_parser(parser)``."""
    SUBCOMMANDS[name] = Subcommand(name, target, help)


register_subcommand("generate", "dllm.cli:add_generate_parser", "generate with a checkpoint (text or token ids)")
register_subcommand("strategies", "dllm.cli:add_strategies_parser", "list the registered decoding strategies")
register_subcommand("bench", "bench.cli:add_parser", "run ParallelBench-style benchmarks")
register_subcommand("serve", "dllm.server:add_parser", "OpenAI-compatible HTTP server")
register_subcommand("train", "distill.cli:add_train_parser", "train / fine-tune a model")
register_subcommand("distill", "distill.cli:add_distill_parser", "dParallel certainty-forcing distillation")

ENTRY_POINT_GROUP = "dllm.subcommands"


def _all_subcommands() -> dict[str, Subcommand]:
    subs = dict(SUBCOMMANDS)
    try:
        from importlib.metadata import entry_points

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            subs.setdefault(ep.name, Subcommand(ep.name, ep.value, f"(plug-in {ep.value})"))
    except Exception:  # noqa: BLE001 - broken metadata must not break the CLI
        pass
    return subs


class CLIError(Exception):
    """A user error reported as one line on stderr (exit code 2)."""


# ================================================================================================ generate
def add_generate_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="DIR", default=None,
                   help="checkpoint folder (config.json + safetensors; tokenizer optional). "
                        "Default: the reference model dllm/reference_model/")
    src = p.add_argument_group("inputs (repeat for a batch; one kind per call)")
    src.add_argument("--prompt", metavar="TEXT", action="append", default=[],
                     help="a text prompt (needs tokenizer files); wrapped in the chat template unless "
                          "--no-chat-template")
    src.add_argument("--input-ids", metavar="1,2,3", action="append", default=[],
                     help="a prompt as comma-separated token ids (works without tokenizer files)")
    src.add_argument("--no-chat-template", action="store_true", help="do not apply the tokenizer's chat template")
    d = p.add_argument_group("decoding")
    d.add_argument("--gen-length", type=int, default=128, metavar="N", help="generated slots (default 128)")
    d.add_argument("--block-length", type=int, default=None, metavar="B",
                   help="semi-autoregressive block size, divides --gen-length (default: = gen length)")
    d.add_argument("--steps", type=int, default=None, metavar="S",
                   help="step budget, a multiple of the number of blocks (default: = gen length)")
    d.add_argument("--strategy", default="low_confidence", metavar="NAME",
                   help="decoding strategy (see `dllm strategies`; default low_confidence)")
    d.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="strategy parameter, e.g. --param threshold=0.9 (repeatable)")
    d.add_argument("--temperature", type=float, default=0.0, metavar="T", help="sampling temperature (0 = greedy)")
    d.add_argument("--top-p", type=float, default=None, metavar="P", help="nucleus filter (default off)")
    d.add_argument("--top-k", type=int, default=None, metavar="K", help="top-k filter (default off)")
    d.add_argument("--cfg-scale", type=float, default=0.0, metavar="W",
                   help="LLaDA unsupervised classifier-free guidance weight (0 = off)")
    d.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    d.add_argument("--mask-id", type=int, default=None, metavar="ID", help="mask token id (default: config.json)")
    d.add_argument("--eos-id", type=int, default=None, metavar="ID", help="EOS token id (default: config.json)")
    d.add_argument("--eot-id", type=int, default=None, metavar="ID",
                   help="end-of-turn token id (default: config.json eot_token_id)")
    d.add_argument("--logits-eos-inf", action="store_true", help="never generate EOS (LLaDA logits_eos_inf)")
    d.add_argument("--confidence-eos-eot-inf", action="store_true",
                   help="commit EOS / EoT candidates last (LLaDA confidence_eos_eot_inf)")
    d.add_argument("--llada-eos-quirk", action="store_true",
                   help="with --confidence-eos-eot-inf at T > 0, demote only EoT as the reference code does")
    d.add_argument("--stop-on-eos", action="store_true",
                   help="after a block containing EOS, fill the rest with EOS and stop that row")
    d.add_argument("--suppress-mask-token", action="store_true",
                   help="never propose the mask token (default: as the reference samplers, the mask id can win the "
                        "argmax and then leaves its position masked)")
    d.add_argument("--batch-size", type=int, default=None, metavar="N", help="prompts per batch (default: all)")
    m = p.add_argument_group("model")
    m.add_argument("--backend", choices=("torch", "jax"), default="torch",
                   help="model backend and engine (default torch); jax: flax model, whole decode loop compiled, "
                        "same tokens as torch (noise from the torch CPU generator)")
    m.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"),
                   help="weight dtype (default float32)")
    m.add_argument("--device", default=None,
                   help="torch device (default: cuda if available, else cpu; jax uses its default device)")
    p.add_argument("--json", action="store_true",
                   help='print one JSON object {"outputs": [{"output_ids", "text", "nfe", "steps"}]} on stdout')
    p.set_defaults(func=run_generate)


def decode_config_from_args(args: argparse.Namespace):
    """The :class:`dllm.DecodeConfig` of ``dllm generate``'s decoding flags, with the strategy resolved (an unknown
    strategy or parameter fails here, before any model is loaded)."""
    import dllm
    from .decoding import resolve_strategy

    cfg = dllm.DecodeConfig(
        gen_length=args.gen_length, block_length=args.block_length, steps=args.steps,
        strategy=_strategy_spec(args.strategy, args.param), temperature=args.temperature, top_p=args.top_p,
        top_k=args.top_k, cfg_scale=args.cfg_scale, mask_id=args.mask_id, eos_id=args.eos_id, eot_id=args.eot_id,
        logits_eos_inf=args.logits_eos_inf, confidence_eos_eot_inf=args.confidence_eos_eot_inf,
        llada_eos_quirk=args.llada_eos_quirk, stop_on_eos=args.stop_on_eos,
        suppress_mask_token=args.suppress_mask_token, seed=args.seed)
    resolve_strategy(cfg.strategy)
    return cfg


def _parse_ids(spec: str) -> list[int]:
    try:
        ids = [int(t) for t in spec.replace(" ", "").split(",") if t != ""]
    except ValueError:
        raise CLIError(f"--input-ids must be comma-separated integers, got {spec!r}.") from None
    if not ids:
        raise CLIError(f"--input-ids is empty, got {spec!r}.")
    return ids


def _strategy_spec(name: str, params: Sequence[str]):
    """``--strategy NAME --param k=v ...`` -> a ``{"type": name, **params}`` dict (or the bare name)."""
    raw = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CLIError(f"--param must look like key=value, got {item!r}.")
        raw[key.strip()] = value.strip()
    if not raw:
        return name
    try:
        from decoders import coerce_params
    except ImportError:  # no typed coercion available: JSON literals, else strings
        def coerce_params(_name, d):
            out = {}
            for k, v in d.items():
                try:
                    out[k] = json.loads(v)
                except ValueError:
                    out[k] = v
            return out
    return {"type": name, **coerce_params(name, raw)}


def run_generate(args: argparse.Namespace) -> int:
    import dllm

    if args.prompt and args.input_ids:
        raise CLIError("give either --prompt or --input-ids, not both.")
    if not args.prompt and not args.input_ids:
        raise CLIError("nothing to generate: give --prompt TEXT or --input-ids 1,2,3 (repeatable).")
    cfg = decode_config_from_args(args)
    ids = [_parse_ids(s) for s in args.input_ids]
    pipe = dllm.load(args.model, backend=args.backend, dtype=args.dtype, device=args.device)
    kw = dict(apply_chat_template=not args.no_chat_template, batch_size=args.batch_size)
    if ids:
        out = dllm.generate_from_config(pipe, cfg, input_ids=ids, **kw)
    else:
        out = dllm.generate_from_config(pipe, cfg, prompts=list(args.prompt), **kw)
    if args.json:
        rows = [{"output_ids": ids, "text": text, "nfe": nfe, "steps": steps}
                for ids, text, nfe, steps in zip(out.sequences, out.texts, out.nfe, out.steps)]
        sys.stdout.write(json.dumps({"outputs": rows}) + "\n")
        return 0
    for i, ids in enumerate(out.sequences):
        body = out.texts[i] if pipe.tokenizer is not None else " ".join(map(str, ids))
        if len(out.sequences) > 1:
            print(f"[{i}]")
        print(body)
        print(f"    NFE {out.nfe[i]} | steps {out.steps[i]} | answer tokens {out.num_answer_tokens[i]}/"
              f"{cfg.gen_length} | tokens per forward {out.tokens_per_forward[i]:.2f} (answer, up to EOS) | "
              f"tokens per step {out.tokens_per_step[i]:.2f} (all slots)")
    return 0


# ================================================================================================ strategies
def add_strategies_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help='print {"strategies": [...]} as one JSON object')
    p.set_defaults(func=run_strategies)


def run_strategies(args: argparse.Namespace) -> int:
    try:
        from decoders import list_strategies
    except ImportError as e:
        raise CLIError(f"the 'decoders' package is not importable: {e}.") from e
    records = list_strategies()
    if args.json:
        sys.stdout.write(json.dumps({"strategies": records}, default=str) + "\n")
        return 0
    for r in records:
        aliases = f" (aliases: {', '.join(r.get('aliases') or [])})" if r.get("aliases") else ""
        print(f"{r['name']}{aliases}  [{r.get('schedule', '?')}]")
        if r.get("summary"):
            print(f"    {r['summary']}")
        params = ", ".join(f"{p['name']}={p.get('default')!r}" for p in r.get("parameters", []))
        print(f"    parameters: {params or '(none)'}")
        if r.get("reproduces"):
            print(f"    reproduces: {r['reproduces']}")
    return 0


# ================================================================================================ main
def _first_positional(argv: Sequence[str], names) -> str | None:
    for tok in argv:
        if tok == "--":
            return None
        if tok.startswith("-"):
            continue
        return tok if tok in names else None
    return None


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser; only the module of the subcommand named in ``argv`` is imported."""
    parser = argparse.ArgumentParser(prog="dllm", description="Fast parallel decoding of masked diffusion LMs.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    subs = _all_subcommands()
    chosen = _first_positional(argv, subs)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors")
    for name, sc in subs.items():
        if chosen is not None and name != chosen:
            continue
        if chosen is None:  # listing: only what exists and loads
            if not sc.module_available():
                continue
            try:
                add = sc.load()
            except Exception:  # noqa: BLE001 - unimplemented / optional dependency missing: not listed
                continue
        else:
            try:
                add = sc.load()
            except Exception as e:  # noqa: BLE001
                raise CLIError(f"subcommand {name!r} is not available ({type(e).__name__}: {e}).") from e
        sp = sub.add_parser(name, help=sc.help, description=sc.help, parents=[common])
        add(sp)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        parser = build_parser(argv)
        args = parser.parse_args(argv)
        debug = debug or getattr(args, "debug", False)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return 2
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `dllm strategies | head`: the reader went away
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001 - one line, no traceback
        if debug:
            raise
        msg = str(e) or type(e).__name__
        print(f"dllm: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
