"""Per-task denoising quality of a checkpoint on the validation split: is training past the copy plateau?

``dllm train`` logs one loss averaged over the task mixture, which hides *which* task has started to learn. This
scores a saved model folder (e.g. ``runs/reference/model``, exported every ``--save-every`` steps while training
runs) on fixed validation items of each task: every answer slot is masked independently with probability ``t``
(the training corruption, fixed seed, so successive checkpoints see the same masks) and the model predicts them in
one forward. Reported per task: mean cross-entropy over masked slots, argmax accuracy over masked *content*
slots (answer tokens before the end-of-text padding, which is trivially predictable), and ``item_acc``, the same
accuracy over only the content slots whose token is *not* shared by every scored answer of the task: the names
of a list answer, without the ``["`` / ``",`` framing that is about half of its tokens (``None`` where every
answer token is shared, as in the 4×4 puzzles). ``item_first_acc`` / ``item_later_acc`` split it into the first
token of each name (after framing) and the tokens that follow it inside the name (the last names).
``edit_acc`` (list tasks) is the accuracy over the content slots whose token differs from the *input list copied
as the answer* at the same place: the replaced name, the inserted name and everything it shifts, the reordered
items. A model that copies the input whatever the instruction says scores ~100 % on ``item_acc`` slots it shares
with the copy and 0 % here. ``novel_acc`` narrows it to the slots whose token is nowhere in the input list (the
inserted or replacing name, which only the instruction line holds).

``t = 1`` is the first step of a decode (nothing committed yet); small ``t`` is the end of a decode, where a model
that copies from the prompt is near 100 % and one on the "marginal names" plateau is not.

    python -m distill.monitor --model runs/reference/model --per-task 16 --t 0.3 --t 1.0

``--aux copy_bare,lookup_bare`` scores the train-only rows of :mod:`distill.aux_tasks` the same way, on fresh
items (``--zero-shot`` does not apply to them: they have no one-shot turn). ``--copy-frames 400`` splits fresh
``copy_framed`` items by the number of text lines before and after the list: does the copy find the list by its
content, or only where the training rows put it? ``--later-only`` masks only the last names, the first names
visible: on copy and reverse a model can read a last name by the item's position, on sort and shuffle only by
finding the first name before it in the input list (the binding step; session 12).
"""
from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F

from .data import Example, collate, encode_example, list_punctuation_ids


def score_tasks(model, tokenizer, task_names: list[str], per_task: int, t: float, seed: int = 0,
                zero_shot: bool = False, later_only: bool = False) -> list[dict]:
    """One row per task: ``{"task", "t", "n", "masked_ce", "content_acc", "item_acc", ...}`` (plus
    ``"zero_shot": True`` when set) on its first ``per_task`` validation items. Masks are drawn from ``seed`` per
    task, so the same call on another checkpoint sees the same masks.

    ``zero_shot`` drops the one-shot turn (as ``dllm train --zero-shot-fraction`` does): a model that scores far
    better without it has the copy mechanism but copies from the wrong list; one that scores the same lacks it.
    The answer canvas keeps its length, so the masks are the same as in the one-shot call."""
    from bench.tasks.registry import get_task
    from bench.tasks.splits import load_task

    _check_args(t, per_task)
    rows = []
    for name in task_names:
        gen_len = get_task(name).max_tokens
        items = load_task(name, split="validation", limit=per_task)
        one_shot = [encode_example(tokenizer, name, it.messages, it.target_text, gen_len) for it in items]
        inputs = one_shot if not zero_shot else [
            encode_example(tokenizer, name, it.messages[-1:], it.target_text, gen_len) for it in items]
        copies = None
        if all(isinstance(it.input, dict) and str(it.input.get("context", "")).startswith("[") for it in items):
            copies = [encode_example(tokenizer, name, it.messages, it.input["context"], gen_len).answer_ids
                      for it in items]
        row = score_examples(model, name, one_shot, inputs, t, seed, copy_answers=copies, later_only=later_only,
                             punctuation=list_punctuation_ids(tokenizer))
        rows.append({**row, "zero_shot": True} if zero_shot else row)
    return rows


def score_aux_tasks(model, tokenizer, aux_names: list[str], per_task: int, t: float, seed: int = 0,
                    later_only: bool = False) -> list[dict]:
    """:func:`score_tasks` rows for the train-only rows of :mod:`distill.aux_tasks` (``task`` is ``"aux/NAME"``).

    Their items are drawn from ``random.Random(f"eval:{i}")``, a stream training never uses (it seeds items with
    ``aux-item:...``), so they are fresh lists of names; a model that copies scores near 100 % on the later-name
    slots, one on the marginal-names plateau near chance."""
    import random

    from .aux_tasks import AUX_TASKS, TextAuxTask

    _check_args(t, per_task)
    unknown = [n for n in aux_names if n not in AUX_TASKS]
    if unknown:
        raise ValueError(f"aux task(s) {unknown} unknown; known: {sorted(AUX_TASKS)}")
    rows, punctuation = [], list_punctuation_ids(tokenizer)
    for name in aux_names:
        task = AUX_TASKS[name]
        if not isinstance(task, TextAuxTask):
            examples = [task(tokenizer, random.Random(f"eval:{i}")) for i in range(per_task)]
            rows.append(score_examples(model, f"aux/{name}", examples, examples, t, seed, later_only=later_only,
                                       punctuation=punctuation))
            continue
        items = [task.item(random.Random(f"eval:{i}")) for i in range(per_task)]
        examples = [task.encode(tokenizer, prompt, answer) for prompt, answer in items]
        # Rows with one input list (copy_*, insert_bare, replace_bare) also get edit/novel slots against it.
        lists = [[line for line in prompt.splitlines() if line.startswith("[")] for prompt, _ in items]
        copies = None
        if all(len(found) == 1 for found in lists):
            copies = [task.encode(tokenizer, prompt, found[0]).answer_ids for (prompt, _), found in zip(items, lists)]
        rows.append(score_examples(model, f"aux/{name}", examples, examples, t, seed, copy_answers=copies,
                                   later_only=later_only, punctuation=punctuation))
    return rows


def score_copy_by_frame(model, tokenizer, n_items: int, t: float, seed: int = 0) -> list[dict]:
    """:func:`score_tasks` rows for ``n_items`` fresh ``copy_framed`` items, one row per (lines before, lines after)
    the list, ``task`` = ``"aux/copy_framed[before=B,after=A]"`` (plus ``"lines_before"``/``"lines_after"``).

    A copy that finds the list by its content scores the same in every row; one tied to the list's place in the row
    (e.g. "the list ends where the answer begins") scores only where that place is the trained one."""
    import random

    from .aux_tasks import AUX_TASKS

    _check_args(t, n_items)
    framed = AUX_TASKS["copy_framed"]
    groups: dict[tuple[int, int], list[Example]] = {}
    for i in range(n_items):
        prompt, answer = framed.item(random.Random(f"eval:{i}"))
        before, after = prompt.split(answer)
        key = (before.count("\n"), after.count("\n") - 1)  # minus the list's own line break
        groups.setdefault(key, []).append(framed.encode(tokenizer, prompt, answer))
    return [{**score_examples(model, f"aux/copy_framed[before={b},after={a}]", ex, ex, t, seed,
                              punctuation=list_punctuation_ids(tokenizer)),
             "lines_before": b, "lines_after": a} for (b, a), ex in sorted(groups.items())]


def _check_args(t: float, per_task: int) -> None:
    if not 0.0 < t <= 1.0:
        raise ValueError(f"t (the masking rate) must be in (0, 1], got {t}")
    if per_task < 1:
        raise ValueError(f"per_task must be >= 1, got {per_task}")


def score_examples(model, name: str, mask_examples: list[Example], input_examples: list[Example], t: float,
                   seed: int, copy_answers: list[list[int]] | None = None, later_only: bool = False,
                   punctuation: set[int] = frozenset()) -> dict:
    """One row scoring ``input_examples`` with masks drawn over the collated ``mask_examples`` (the same answers,
    possibly longer prompts: the answer canvas is the last ``gen_len`` columns of both batches).

    ``copy_answers`` (one ``gen_len`` id list per example): the answer canvas of the input copied unchanged; the
    slots where the true answer differs from it are scored as ``edit_acc`` (``None`` without it).

    ``later_only``: only the later-name slots (the last names) may be masked, every first name stays visible: the
    accuracy of binding a last name to the first name before it (``item_later_acc``; the row gets
    ``"later_only": True``). Slots an example gives (:attr:`~distill.data.Example.unmasked`) are never masked.

    Item (name) slots are the content tokens not shared by every answer of the batch and not in ``punctuation``
    (:func:`~distill.data.list_punctuation_ids`): without it, the separators of the 2-name rows of a 1–2-name
    batch (``copy_short``, ``insert_short``, ...) counted as names, and as new names in ``novel_acc``."""
    cfg = model.config
    gen_len = len(input_examples[0].answer_ids)
    mask_batch = collate(mask_examples, cfg.pad_token_id)
    batch = mask_batch if input_examples is mask_examples else collate(input_examples, cfg.pad_token_id)
    ids, answer = batch["input_ids"], batch["answer_mask"]
    g = torch.Generator().manual_seed(seed)
    drawn = (torch.rand(mask_batch["input_ids"].shape, generator=g) < t) & mask_batch["answer_mask"]
    masked = torch.zeros_like(answer)
    masked[:, -gen_len:] = drawn[:, -gen_len:]
    content = answer & (ids != cfg.eos_token_id)
    answers = [set(ids[b][answer[b]].tolist()) for b in range(ids.shape[0])]
    shared = torch.tensor(sorted(set.intersection(*answers) | set(punctuation)), dtype=ids.dtype)
    item = content & ~torch.isin(ids, shared)
    # A name's first token (after framing) vs its later ones (the last name): copying the later ones needs the
    # induction step "the token that follows this first name in the prompt", a separate mechanism.
    after_item = torch.zeros_like(item)
    after_item[:, 1:] = item[:, :-1]
    masked &= ~batch["answer_unmasked"]
    if later_only:
        masked &= item & after_item
    with torch.no_grad():
        logits = model.raw_logits(torch.where(masked, cfg.mask_token_id, ids), batch["attention_mask"],
                                  batch["position_ids"]).float()
    ce = F.cross_entropy(logits[masked], ids[masked]) if masked.any() else torch.tensor(float("nan"))
    hit = (logits.argmax(-1) == ids) & masked & content
    edit, novel = torch.zeros_like(content), torch.zeros_like(content)
    if copy_answers is not None:
        copied = torch.tensor(copy_answers, dtype=ids.dtype)
        edit[:, -gen_len:] = content[:, -gen_len:] & (ids[:, -gen_len:] != copied)
        in_input = (ids[:, -gen_len:, None] == copied[:, None, :]).any(-1)  # [B, gen_len]: token is in the row's input
        novel[:, -gen_len:] = item[:, -gen_len:] & ~in_input  # new-name slots (not a new separator)
    row = {"task": name, "t": t, "n": len(input_examples), "masked_ce": round(float(ce), 4)}
    if later_only:
        row["later_only"] = True
    for key, slots in (("content_acc", content), ("item_acc", item), ("item_first_acc", item & ~after_item),
                       ("item_later_acc", item & after_item), ("edit_acc", edit), ("novel_acc", novel)):
        n = int((masked & slots).sum())
        row[key] = round(int((hit & slots).sum()) / n, 4) if n else None
    return row


def main(argv=None) -> int:
    import dllm
    from bench.tasks.registry import select_tasks

    p = argparse.ArgumentParser(prog="python -m distill.monitor", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="model folder (config.json, safetensors, tokenizer files)")
    p.add_argument("--per-task", type=int, default=16, help="validation items per task")
    p.add_argument("--t", type=float, action="append", help="masking rate(s); repeatable (default 0.3 and 1.0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tasks", default="offline",
                   help="comma-separated task names/globs (default: the 12 offline tasks; '' for none)")
    p.add_argument("--aux", default="", help="comma-separated train-only aux tasks to score too (copy_bare, ...)")
    p.add_argument("--zero-shot", action="store_true",
                   help="drop the one-shot turn from the prompts (does the model copy from the wrong list?)")
    p.add_argument("--copy-frames", type=int, default=0, metavar="N",
                   help="also score N fresh copy_framed items split by the frame lines before/after the list")
    p.add_argument("--later-only", action="store_true",
                   help="mask only the last names (first names visible): can the model bind a last name to the "
                        "first name before it when the order is not a fixed function of position (sort, shuffle)?")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    # The project's loader: names a missing folder, and silences transformers' "model of type llada" notice.
    pipe = dllm.load(args.model, device="cpu")
    model, tokenizer = pipe.model.eval(), pipe.tokenizer
    patterns = [x.strip() for x in args.tasks.split(",") if x.strip()]
    tasks = select_tasks(patterns) if patterns else []
    aux = [a.strip() for a in args.aux.split(",") if a.strip()]
    for t in args.t or [0.3, 1.0]:
        rows = score_tasks(model, tokenizer, tasks, args.per_task, t, args.seed, args.zero_shot, args.later_only)
        rows += score_aux_tasks(model, tokenizer, aux, args.per_task, t, args.seed, args.later_only)
        if args.copy_frames:
            rows += score_copy_by_frame(model, tokenizer, args.copy_frames, t, args.seed)
        if args.json:
            for r in rows:
                print(json.dumps(r))
            continue
        print(f"t = {t}{' (zero-shot prompts)' if args.zero_shot else ''}"
              f"{' (last names only)' if args.later_only else ''}: task, masked-slot CE, accuracy on "
              "content / name / first-name-token / later-name-token / edited (vs the input copied) / new-name slots")
        for r in rows:
            accs = ("n/a" if r[k] is None else f"{100 * r[k]:.1f}%"
                    for k in ("content_acc", "item_acc", "item_first_acc", "item_later_acc", "edit_acc",
                              "novel_acc"))
            print(f"  {r['task']:<36} {r['masked_ce']:>7.3f} " + " ".join(f"{a:>7}" for a in accs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
