"""Which last names does a checkpoint copy wrongly, and as what? (``python -m distill.name_confusions``)

:mod:`distill.monitor` averages over names. This scores fresh ``copy_bare`` rows (:mod:`distill.aux_tasks`: a
bare list of 3–6 full names and the same list as the answer) with every answer first name visible and every last
name masked, in one forward, and reports the argmax accuracy *per last name* and the most frequent
(true -> predicted) pairs. A model whose copy works by position gets almost every last name right; the names it
does not get are the ones whose representation it confuses with another's. Session 12 found 25 such names on the
step-26,200 reference model, mostly confused in pairs (Harris <-> Rogers, Morris <-> Jenkins, ...), which became
``distill.aux_tasks.CONFUSABLE_LAST_NAMES``::

    python -m distill.name_confusions --model dllm/reference_model --rows 2560 --below 0.95
"""
from __future__ import annotations

import argparse
import json
import random
from collections import Counter

import torch

from .data import collate, list_opener_ids, name_positions


def score_last_names(model, tokenizer, rows: int, seed: int = 0, batch_size: int = 64) -> tuple[Counter, Counter,
                                                                                                    Counter]:
    """``(hits, totals, confusions)``: per last-name token string, the argmax hits and the scored slots, and
    ``Counter[(true, predicted)]`` of the misses, over ``rows`` fresh ``copy_bare`` rows drawn from ``seed``."""
    from .aux_tasks import AUX_TASKS

    openers = list_opener_ids(tokenizer, required_by="name_confusions")
    cfg, rng = model.config, random.Random(f"name-confusions:{seed}")
    hits, totals, confusions = Counter(), Counter(), Counter()
    for start in range(0, rows, batch_size):
        examples = [AUX_TASKS["copy_bare"](tokenizer, rng) for _ in range(min(batch_size, rows - start))]
        batch = collate(examples, cfg.pad_token_id)
        ids = batch["input_ids"]
        masked = torch.zeros_like(batch["answer_mask"])
        for b, ex in enumerate(examples):
            offset = ids.shape[1] - len(ex.answer_ids)
            masked[b, [offset + last for _, last in name_positions(ex.answer_ids, openers)]] = True
        with torch.no_grad():
            logits = model.raw_logits(torch.where(masked, cfg.mask_token_id, ids), batch["attention_mask"],
                                      batch["position_ids"])
        predicted = logits.argmax(-1)
        for b, c in masked.nonzero().tolist():
            truth = tokenizer.convert_ids_to_tokens(int(ids[b, c])).lstrip("\u0120")
            totals[truth] += 1
            if predicted[b, c] == ids[b, c]:
                hits[truth] += 1
            else:
                confusions[(truth, tokenizer.convert_ids_to_tokens(int(predicted[b, c])).lstrip("\u0120"))] += 1
    return hits, totals, confusions


def main(argv=None) -> int:
    import dllm

    p = argparse.ArgumentParser(prog="python -m distill.name_confusions", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="model folder (config.json, safetensors, tokenizer files)")
    p.add_argument("--rows", type=int, default=2560, help="fresh copy_bare rows to score")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--below", type=float, default=0.95, help="list the last names scored below this accuracy")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = p.parse_args(argv)
    if args.rows < 1 or not 0 < args.below <= 1:
        p.error(f"--rows must be >= 1 and --below in (0, 1]; got {args.rows} and {args.below}")
    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = dllm.load(args.model, device="cpu")
    hits, totals, confusions = score_last_names(pipe.model.eval(), pipe.tokenizer, args.rows, args.seed)
    accuracy = {name: hits[name] / totals[name] for name in totals}
    weak = sorted((n for n in accuracy if accuracy[n] < args.below), key=lambda n: (accuracy[n], n))
    overall = sum(hits.values()) / sum(totals.values())
    if args.json:
        print(json.dumps({"overall": round(overall, 4), "names": len(totals),
                          "below": {n: round(accuracy[n], 4) for n in weak},
                          "confusions": [[t, p_, c] for (t, p_), c in confusions.most_common(30)]}))
        return 0
    print(f"last-name accuracy {100 * overall:.1f}% over {sum(totals.values())} slots, {len(totals)} names; "
          f"{len(weak)} below {100 * args.below:.0f}%:")
    for name in weak:
        print(f"  {name:<12} {100 * accuracy[name]:5.1f}%  ({totals[name]} slots)")
    print("most frequent confusions (true -> predicted: count):")
    for (truth, guess), count in confusions.most_common(15):
        print(f"  {truth} -> {guess}: {count}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
