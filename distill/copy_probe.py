"""A fast synthetic probe of the copy transition the reference model has to make.

The list tasks need the model to copy names from the prompt into the answer. The full reference run spends
~1.7 s per step on 200-token chats, so this probe asks the same question on short synthetic rows in well under a
second per step: *does a given recipe (width, depth, tied embeddings, learning rate, masking scheme) learn to copy a
list, and after how many steps?*

A row is ``BOS USER [one-shot list, its copy] USER list SUFFIX ANSWER_HEADER`` followed by the answer canvas
(the list, then EOS up to ``gen_length``), mimicking the chat format with symbolic tokens:

* ``--item-tokens 2`` items are ``first last`` pairs framed by separator tokens like the word tokenizer's
  ``["`` / ``",`` / ``Ġ"`` / ``"]`` (``--no-separators``: only the list's open/close tokens, same canvas length;
  ``--item-tokens 1``: bare tokens, no separators);
* ``--first-names`` / ``--last-names`` set the content vocabulary (92 / 192 in ParallelBench's name lists);
* ``--distractor P``: probability that the one-shot turn is present (a second, unrelated list before the test
  one).

Masking and loss are the trainer's own functions (stratified ``t``, answer slots only, per-row mean CE),
optionally with a fraction of rows masked as a contiguous suffix (``--suffix-rows``). Weights are drawn from
N(0, 0.02) without the trainer's 1/sqrt(2·layers) scaling of the residual output projections, and the optimiser
uses a constant learning rate without weight decay. The log line is the mean CE over masked answer slots;
a model that cannot copy stays at about ``name_fraction * log(#names)``; a copying model goes to ~0.

    python -m distill.copy_probe --steps 1000 --tie           # the task-like setting (plateaus, see docs)
    python -m distill.copy_probe --item-tokens 1 --distractor 0 --first-names 50 --last-names 0
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from dllm.models.config import DLLMConfig
from dllm.models.torch_model import DiffusionTransformer

from .data import Example, collate
from .train import draw_masked_answer_slots, ensure_one_masked, masked_ce

# Symbolic token ids after the content vocabulary.
_SPECIALS = ("pad", "bos", "eos", "mask", "user", "assistant", "list_open", "item_sep", "item_open", "list_close",
             "suffix_a", "suffix_b")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m distill.copy_probe", description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--tie", action="store_true", help="tie input and output embeddings")
    p.add_argument("--item-tokens", type=int, choices=(1, 2), default=2)
    p.add_argument("--first-names", type=int, default=92)
    p.add_argument("--last-names", type=int, default=192)
    p.add_argument("--min-items", type=int, default=3)
    p.add_argument("--max-items", type=int, default=6)
    p.add_argument("--no-separators", action="store_true",
                   help="two-token items without the separator tokens between them (same canvas length)")
    p.add_argument("--distractor", type=float, default=1.0, help="probability of the one-shot turn")
    p.add_argument("--suffix-rows", type=float, default=0.0, help="fraction of rows masked as a suffix")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast, as `dllm train` does by default")
    p.add_argument("--weight-decay", type=float, default=0.0,
                   help="AdamW weight decay on the 2-D weights (embeddings included), as `dllm train` (0.05)")
    p.add_argument("--real-rows", action="store_true",
                   help="train on distill.aux_tasks' copy_bare rows (reference tokenizer, real names, chat template) "
                        "instead of symbolic ones: separates the data from the trainer's recipe")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--log", help="append JSON lines {step, answer_ce, elapsed_s} here")
    return p


class ProbeData:
    """Draws synthetic rows; every draw comes from one ``torch.Generator`` (reproducible)."""

    def __init__(self, args: argparse.Namespace):
        if args.item_tokens == 1 and args.last_names:
            raise ValueError("--item-tokens 1 uses --first-names only; pass --last-names 0.")
        if args.item_tokens == 2 and args.last_names < args.max_items:
            raise ValueError(f"--last-names must be >= --max-items ({args.max_items}) for two-token items.")
        if args.item_tokens == 1 and args.no_separators:
            raise ValueError("--no-separators applies to --item-tokens 2 (single-token items have none).")
        if args.first_names < args.max_items:
            raise ValueError(f"--first-names must be >= --max-items ({args.max_items}).")
        self.args = args
        content = args.first_names + args.last_names
        self.tok = {name: content + i for i, name in enumerate(_SPECIALS)}
        self.vocab_size = content + len(_SPECIALS)
        longest = 4 * args.max_items if args.item_tokens == 2 else args.max_items + 2
        self.gen_length = longest + 2  # room for end-of-text after the longest list
        self.gen = torch.Generator().manual_seed(args.seed)

    def _randint(self, lo: int, hi: int) -> int:
        return int(torch.randint(lo, hi + 1, (), generator=self.gen))

    def _list(self) -> list[int]:
        a, t = self.args, self.tok
        n = self._randint(a.min_items, a.max_items)
        firsts = torch.randperm(a.first_names, generator=self.gen)[:n].tolist()
        if a.item_tokens == 1:
            return [t["list_open"], *firsts, t["list_close"]]
        lasts = (torch.randperm(a.last_names, generator=self.gen)[:n] + a.first_names).tolist()
        out = [t["list_open"]]
        for i in range(n):
            sep = [t["item_sep"], t["item_open"]] if not a.no_separators else []
            out += [firsts[i], lasts[i]] + (sep if i < n - 1 else [t["list_close"]])
        return out

    def row(self) -> tuple[list[int], list[int]]:
        t = self.tok
        turn_end = [t["suffix_a"], t["suffix_b"], t["assistant"]]
        prompt = [t["bos"]]
        if float(torch.rand((), generator=self.gen)) < self.args.distractor:
            shot = self._list()
            prompt += [t["user"], *shot, *turn_end, *shot]
        target = self._list()
        prompt += [t["user"], *target, *turn_end]
        return prompt, target + [t["eos"]] * (self.gen_length - len(target))


class RealRows:
    """``copy_bare`` rows of :mod:`distill.aux_tasks` with the reference tokenizer, in :class:`ProbeData`'s interface."""

    def __init__(self, args: argparse.Namespace):
        import random

        from transformers import AutoTokenizer

        from dllm.api import default_model_path

        from .aux_tasks import AUX_TASKS, COPY_GEN_LENGTH
        from .word_tokenizer import special_ids

        self.tokenizer = AutoTokenizer.from_pretrained(str(default_model_path()))
        self.tok = special_ids(self.tokenizer)  # the roles main() reads: pad, mask, eos, bos
        self.vocab_size, self.gen_length = len(self.tokenizer), COPY_GEN_LENGTH
        self.gen = torch.Generator().manual_seed(args.seed)
        self._rng, self._make = random.Random(args.seed), AUX_TASKS["copy_bare"]

    def row(self) -> tuple[list[int], list[int]]:
        ex = self._make(self.tokenizer, self._rng)
        return list(ex.prompt_ids), list(ex.answer_ids)


def answer_ce(model, data: ProbeData, batch_size: int, suffix_rows: float,
              bf16: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss to optimise, mean CE over masked answer slots) of one fresh batch, masked as the trainer does."""
    examples = [Example("copy_probe", tuple(p), tuple(a)) for p, a in (data.row() for _ in range(batch_size))]
    batch = collate(examples, data.tok["pad"])
    answer, g, G = batch["answer_mask"], data.gen, data.gen_length
    masked = draw_masked_answer_slots(answer, 0.02, g)
    # Suffix rows: answer slots from a random cut onwards, like a left-to-right decode's state.
    slot = torch.arange(answer.shape[1]) - (answer.shape[1] - G)  # answer slot index, negative in the prompt
    cut = torch.randint(0, G, (batch_size,), generator=g)
    suffix = torch.rand(batch_size, generator=g) < suffix_rows
    masked = torch.where(suffix[:, None], (slot[None] >= cut[:, None]) & answer, masked)
    loss, ce = masked_ce(model, batch, ensure_one_masked(masked, answer), data.tok["mask"], bf16=bf16)
    return loss, ce.mean().detach()


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data = RealRows(args) if args.real_rows else ProbeData(args)
    t = data.tok
    cfg = DLLMConfig(layout="llada", vocab_size=data.vocab_size, hidden_size=args.width, num_layers=args.layers,
                     num_heads=args.heads, num_kv_heads=args.heads, intermediate_size=args.width * 8 // 3,
                     max_position_embeddings=512, rope_theta=1e4, rms_norm_eps=1e-5, mask_token_id=t["mask"],
                     eos_token_id=t["eos"], pad_token_id=t["pad"], bos_token_id=t["bos"],
                     tie_word_embeddings=args.tie)
    model = DiffusionTransformer(cfg)
    for p in model.parameters():
        if p.dim() == 2:
            torch.nn.init.normal_(p, std=0.02)
    params = list(model.parameters())
    opt = torch.optim.AdamW([{"params": [p for p in params if p.dim() == 2], "weight_decay": args.weight_decay},
                             {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.98))
    log = open(args.log, "a") if args.log else None
    t0, ema = time.time(), None
    for step in range(args.steps):
        loss, ce = answer_ce(model, data, args.batch_size, args.suffix_rows, args.bf16)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema = float(ce) if ema is None else 0.9 * ema + 0.1 * float(ce)
        if step % args.log_every == 0 or step == args.steps - 1:
            record = {"step": step, "answer_ce": round(ema, 4), "elapsed_s": round(time.time() - t0, 1)}
            print(json.dumps(record), flush=True)
            if log:
                log.write(json.dumps(record) + "\n")
                log.flush()  # a probe stopped early keeps every logged step
    if log:
        log.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
