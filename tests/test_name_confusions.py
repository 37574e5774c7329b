"""``python -m distill.name_confusions``: per-last-name copy accuracy with the first names visible."""
import torch

from distill import name_confusions
from distill.reference import build_reference_tokenizer
from distill.train import TrainConfig, build_model


class _Knows(torch.nn.Module):
    """Logits peak at the clean token (leaked from collate), or at ``swap[token]`` where one is set."""

    def __init__(self, config, vocab):
        super().__init__()
        self.config, self.vocab, self.truth, self.swap = config, vocab, None, {}

    def raw_logits(self, ids, attention_mask, position_ids):
        guess = self.truth.clone()
        for a, b in self.swap.items():
            guess[self.truth == a] = b
        return torch.nn.functional.one_hot(guess, self.vocab).float() * 50


def test_per_name_accuracy_and_confusions_come_from_last_name_slots_only(leak_collate):
    tok = build_reference_tokenizer()
    model = _Knows(build_model(TrainConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64),
                               tok).config, len(tok))
    leak_collate(name_confusions, model)
    hits, totals, confusions = name_confusions.score_last_names(model, tok, rows=40)
    assert hits == totals and not confusions and len(totals) > 30
    assert all(name[0].isupper() and " " not in name for name in totals)  # last names, not framing
    harris, rogers = (tok.convert_tokens_to_ids("\u0120" + n) for n in ("Harris", "Rogers"))
    model.swap = {harris: rogers}
    hits, totals, confusions = name_confusions.score_last_names(model, tok, rows=400)
    assert hits["Harris"] == 0 < totals["Harris"] == confusions[("Harris", "Rogers")]
    assert hits["Rogers"] == totals["Rogers"] and len(confusions) == 1
    # ["A B", "C D"] with openers 14 ('["') and 9 (' "'): the last names sit two after an opener
    assert name_confusions.name_positions([14, 100, 101, 10, 9, 102, 103, 15], {14, 9}) == [(1, 2), (5, 6)]
