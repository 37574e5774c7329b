"""Where do the answer's name slots look? Per-head attention of a checkpoint on the list tasks that reorder the input.

``distill.monitor`` says *whether* names are copied; this says *how far* the copy circuit got. For each validation
item of ``waiting_line/copy`` (or ``reverse``, ``sort``, ``shuffle``) the answer is masked, either entirely
(``--mask all``: the first step of a decode) or only at the later name tokens (``--mask last``: the first name of
every item is visible, so a model with an induction step could finish each name). Every attention head of every
layer then reports the mean attention weight, averaged over the items' names, from

* an answer first-name slot (``F``) or last-name slot (``L``) to the prompt's first-name (``pF``) or last-name
  (``pL``) token of the *same* item (the prompt-list item with the same name: item ``k`` for copy, ``n-1-k`` for
  reverse, wherever it is for sort and shuffle), and from ``L`` to its own item's answer first name (``aF``: a
  previous-token head);
* a prompt first name to its own last name (``pF->pL``: a next-token head that could carry the last name to where
  the item is found) and back (``pL->pF``).

A model that locates the item but reads only its first name shows ``L->pF`` high and ``L->pL`` ≈ 0 with no head
writing ``pF->pL`` (the reference model at step 16,000; docs/reference_model.md, session 6). On sort and shuffle
(``--mask last``) a model with the binding step shows some head with ``L->pF`` or ``L->pL`` high; one that finds
items only by position cannot (session 12).

    python -m distill.attention_probe --model runs/reference/model --mask last --per-task 16
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict

import torch
import torch.nn.functional as F

from .data import encode_example, list_opener_ids, name_positions

KEYS = ("F->pF", "F->pL", "L->pF", "L->pL", "L->aF", "pF->pL", "pL->pF")
# tasks whose answer is a reordering of the prompt's list: answer items are matched to prompt items by name
TASKS = ("waiting_line/copy", "waiting_line/reverse", "waiting_line/shuffle", "waiting_line/sort")


def attention_maps(model, input_ids: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Attention probabilities of every layer for one unpadded batch, recomputed from the block weights.

    Args:
        model: a :class:`dllm.models.torch_model.DiffusionTransformer`.
        input_ids: ``[B, L]`` token ids (no padding: every position attends everywhere).

    Returns:
        ``(maps, hidden)``: ``maps[layer]`` is ``[B, H, L, L]`` (rows sum to 1; ``maps[l][b, h, i, j]`` is how
        much position ``i`` reads position ``j``) and ``hidden`` ``[B, L, D]`` the final normed hidden states,
        equal to ``model.hidden_states(input_ids)``.
    """
    from dllm.models.torch_model import apply_rope, rope_cos_sin

    cfg = model.config
    B, L = input_ids.shape
    pos = torch.arange(L).expand(B, L)
    cos, sin = rope_cos_sin(pos, cfg.head_dim, cfg.rope_theta)
    x = model.embed(input_ids)
    maps = []
    for layer in model.layers:
        hx = layer.attn_norm(x)
        q = layer.q_proj(hx).view(B, L, cfg.num_heads, cfg.head_dim).transpose(1, 2)
        k = layer.k_proj(hx).view(B, L, cfg.num_kv_heads, cfg.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        k = k.repeat_interleave(cfg.num_heads // cfg.num_kv_heads, dim=1)
        maps.append(F.softmax((q @ k.transpose(-1, -2)) / cfg.head_dim ** 0.5, dim=-1))
        x = layer(x, cos, sin, None)
    return maps, model.final_norm(x)


def head_attention(model, tokenizer, task: str, per_task: int, mask: str = "all", zero_shot: bool = True) -> dict:
    """Mean attention per ``(layer, head)`` for the :data:`KEYS` (see the module docstring).

    Returns:
        ``{"task", "mask", "n_items", "n_names", "heads": [{"layer", "head", KEY: weight, ...}, ...]}``.

    Raises:
        ValueError: ``task`` is not one of :data:`TASKS`, ``mask`` not ``all``/``last``, or an item whose answer
            names are not those of the prompt's list (a tokenizer that splits names).
    """
    from bench.tasks.registry import get_task
    from bench.tasks.splits import load_task

    if task not in TASKS:
        raise ValueError(f"task must be one of {list(TASKS)} (answer items are prompt items reordered), got {task!r}")
    if mask not in ("all", "last"):
        raise ValueError(f"mask must be 'all' or 'last', got {mask!r}")
    openers = list_opener_ids(tokenizer)
    mask_id = model.config.mask_token_id
    totals: dict[tuple[int, int], dict[str, float]] = defaultdict(lambda: dict.fromkeys(KEYS, 0.0))
    items = load_task(task, split="validation", limit=per_task)
    n_names = 0
    for item in items:
        messages = item.messages[-1:] if zero_shot else item.messages
        ex = encode_example(tokenizer, task, messages, item.target_text, get_task(task).max_tokens)
        prompt, answer = list(ex.prompt_ids), list(ex.answer_ids)
        answer_names = [(f + len(prompt), l + len(prompt)) for f, l in name_positions(answer, openers)]
        ids_at = prompt + answer
        listed = {(ids_at[f], ids_at[l]): (f, l) for f, l in name_positions(prompt, openers)[-len(answer_names):]}
        prompt_names = [listed.get((ids_at[f], ids_at[l])) for f, l in answer_names]
        if None in prompt_names or not answer_names:
            raise ValueError(f"{task} item {item.index}: the answer names are not the prompt list's; names must be "
                             f"one first-name and one last-name token each")
        ids = torch.tensor([prompt + answer])
        if mask == "all":
            ids[0, len(prompt):] = mask_id
        else:
            ids[0, [l for _, l in answer_names]] = mask_id
        with torch.no_grad():
            maps, _ = attention_maps(model, ids)
        for layer, m in enumerate(maps):
            for head in range(m.shape[1]):
                w, acc = m[0, head], totals[(layer, head)]
                for (f, l), (pf, pl) in zip(answer_names, prompt_names):
                    for key, (i, j) in {"F->pF": (f, pf), "F->pL": (f, pl), "L->pF": (l, pf), "L->pL": (l, pl),
                                        "L->aF": (l, f), "pF->pL": (pf, pl), "pL->pF": (pl, pf)}.items():
                        acc[key] += w[i, j].item()
        n_names += len(answer_names)
    heads = [{"layer": layer, "head": head, **{k: round(v / n_names, 4) for k, v in acc.items()}}
             for (layer, head), acc in sorted(totals.items())]
    return {"task": task, "mask": mask, "zero_shot": zero_shot, "n_items": len(items), "n_names": n_names,
            "heads": heads}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m distill.attention_probe", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="model folder (tokenizer files alongside)")
    p.add_argument("--task", default="waiting_line/copy", choices=TASKS)
    p.add_argument("--mask", default="all", choices=("all", "last"),
                   help="all: whole answer masked; last: only the last names (first names visible)")
    p.add_argument("--per-task", type=int, default=16, help="validation items")
    p.add_argument("--one-shot", action="store_true", help="keep the one-shot turn (default: zero-shot prompt)")
    p.add_argument("--min-weight", type=float, default=0.15, help="print heads with some weight above this")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    args = p.parse_args(argv)
    import dllm

    torch.set_num_threads(args.threads)
    pipe = dllm.load(args.model, device="cpu")
    result = head_attention(pipe.model, pipe.tokenizer, args.task, args.per_task, args.mask, zero_shot=not args.one_shot)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['task']}, mask={result['mask']}, {result['n_items']} items / {result['n_names']} names: "
          f"mean attention weight per head (heads with a weight > {args.min_weight})")
    print("layer head " + " ".join(f"{k:>7}" for k in KEYS))
    for row in result["heads"]:
        if max(row[k] for k in KEYS) > args.min_weight:
            print(f"{row['layer']:>5} {row['head']:>4} " + " ".join(f"{row[k]:7.2f}" for k in KEYS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
