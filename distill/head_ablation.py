"""Which attention heads does a checkpoint use? Loss increase when a head's output is zeroed.

For every ``(layer, head)`` the head's slice of the output projection (``o_proj`` input columns
``head * head_dim : (head + 1) * head_dim``) is set to zero, the masked-diffusion loss of the trainer
(:func:`distill.train.masked_diffusion_loss`: stratified ``t``, answer slots only) is computed on fixed train-stream
batches, and the increase over the intact model is reported. Heads whose increase is near zero are free capacity:
``dllm train --reinit-heads`` can redraw them so that training grows a new circuit there (session 13,
docs/reference_model.md).

    python -m distill.head_ablation --model dllm/reference_model
    python -m distill.head_ablation --model dllm/reference_model --group 1.1,1.4,2.3,2.4   # several at once
"""
from __future__ import annotations

import argparse
import json
from contextlib import contextmanager

import torch

from .train import masked_diffusion_loss, parse_heads


@contextmanager
def heads_zeroed(model, heads):
    """Zero the output-projection columns of ``heads`` (``[(layer, head), ...]``) inside the block; restore after."""
    hd = model.config.head_dim
    saved = []
    with torch.no_grad():
        for layer, head in heads:
            weight = model.layers[layer].o_proj.weight
            cols = slice(head * hd, (head + 1) * hd)
            saved.append((weight, cols, weight[:, cols].clone()))
            weight[:, cols] = 0
    try:
        yield
    finally:
        with torch.no_grad():
            for weight, cols, value in saved:
                weight[:, cols] = value


def batch_loss(model, batches, t_min: float = 0.02) -> float:
    """Mean :func:`~distill.train.masked_diffusion_loss` over collated ``batches`` (masks seeded by batch index)."""
    mask_id = model.config.mask_token_id
    with torch.no_grad():
        return sum(masked_diffusion_loss(model, b, mask_id, t_min, torch.Generator().manual_seed(i)).item()
                   for i, b in enumerate(batches)) / len(batches)


def head_ablation(model, batches, groups=None) -> dict:
    """``{"base": loss, "heads": [[increase per head] per layer], "groups": {spec: increase}}``."""
    base = batch_loss(model, batches)
    cfg = model.config
    table = []
    for layer in range(cfg.num_layers):
        row = []
        for head in range(cfg.num_heads):
            with heads_zeroed(model, [(layer, head)]):
                row.append(batch_loss(model, batches) - base)
        table.append(row)
    together = {}
    for spec in groups or []:
        with heads_zeroed(model, parse_heads(spec, cfg.num_layers, cfg.num_heads, "--group")):
            together[spec] = batch_loss(model, batches) - base
    return {"base": base, "heads": table, "groups": together}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m distill.head_ablation", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="model folder (config.json, safetensors, tokenizer files)")
    p.add_argument("--batches", type=int, default=3, help="train-stream batches to score")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=123, help="seed of the train stream (not the training seed 0)")
    p.add_argument("--zero-shot-fraction", type=float, default=0.5)
    p.add_argument("--group", action="append", default=[], metavar="LAYER.HEAD,...",
                   help="also zero these heads together (repeatable)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    from transformers import AutoTokenizer

    from dllm.models.torch_loader import load_torch_model

    from .data import batch_for_step, collate
    from .reference import example_maker

    torch.set_num_threads(args.threads)
    tok = AutoTokenizer.from_pretrained(args.model)
    model = load_torch_model(args.model).eval()
    make = example_maker(tok, args.seed, args.zero_shot_fraction, "puzzle/*=0.25")
    batches = [collate(batch_for_step(make, s, args.batch_size, args.seed), tok.pad_token_id)
               for s in range(args.batches)]
    result = head_ablation(model, batches, args.group)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"loss {result['base']:.4f}; increase when one head is zeroed (rows: layers, columns: heads)")
    for layer, row in enumerate(result["heads"]):
        print(f"  layer {layer}: " + " ".join(f"{x:+.4f}" for x in row))
    for spec, value in result["groups"].items():
        print(f"  together {spec}: {value:+.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
