"""``python -m distill.attention_probe``: per-head attention from answer name slots to the prompt's items."""
import pytest
import torch

from distill import attention_probe as ap
from distill.reference import build_reference_tokenizer
from distill.train import TrainConfig, build_model


@pytest.fixture(scope="module")
def tiny():
    tok = build_reference_tokenizer()
    cfg = TrainConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)
    return build_model(cfg, tok).eval(), tok


def test_recomputed_maps_are_distributions_and_reproduce_the_forward(tiny):
    model, tok = tiny
    ids = torch.randint(8, len(tok), (2, 11))
    maps, hidden = ap.attention_maps(model, ids)
    assert len(maps) == 2 and maps[0].shape == (2, 2, 11, 11)
    assert torch.allclose(maps[1].sum(-1), torch.ones(2, 2, 11), atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(hidden, model.hidden_states(ids), atol=1e-5)


@pytest.mark.parametrize("task", ap.TASKS)
def test_planted_heads_are_found_on_the_right_items(tiny, monkeypatch, task):
    """Head 0 reads the previous token, head 1 the next one, head 2 the prompt token equal to the true one."""
    model, tok = tiny
    truth = {}
    real_encode = ap.encode_example

    def encode_and_leak(*args):
        ex = real_encode(*args)
        truth["ids"] = torch.tensor(ex.prompt_ids + ex.answer_ids)
        truth["prompt"] = len(ex.prompt_ids)
        return ex

    def planted(model, ids):
        L = ids.shape[1]
        eye = torch.eye(L)
        prev, nxt = eye.roll(-1, dims=1), eye.roll(1, dims=1)
        same = torch.zeros(L, L)
        true_ids, P = truth["ids"], truth["prompt"]
        for i in range(L):
            hits = [j for j in range(P) if true_ids[j] == true_ids[i]]
            same[i, hits[-1] if hits else i] = 1.0
        return [torch.stack([prev, nxt, same])[None]], None

    monkeypatch.setattr(ap, "encode_example", encode_and_leak)
    monkeypatch.setattr(ap, "attention_maps", planted)
    result = ap.head_attention(model, tok, task, per_task=4, mask="last")
    assert result["n_items"] == 4 and result["n_names"] >= 12
    prev, nxt, same = result["heads"]
    assert prev["L->aF"] == 1.0 and prev["pL->pF"] == 1.0 and prev["pF->pL"] == 0.0
    assert nxt["pF->pL"] == 1.0 and nxt["pL->pF"] == 0.0 and nxt["L->aF"] == 0.0
    assert same["F->pF"] == 1.0 and same["L->pL"] > 0.8  # a last name may repeat inside a list
    assert same["L->pF"] == 0.0 and same["F->pL"] == 0.0


def test_bad_arguments_are_named(tiny):
    model, tok = tiny
    with pytest.raises(ValueError, match="task"):
        ap.head_attention(model, tok, "waiting_line/insert_index", per_task=1)
    with pytest.raises(ValueError, match="mask"):
        ap.head_attention(model, tok, "waiting_line/copy", per_task=1, mask="some")


def test_cli_prints_the_table(tmp_path, tiny, capsys):
    from distill.train import export

    model, tok = tiny
    export(model, tok, tmp_path / "m")
    assert ap.main(["--model", str(tmp_path / "m"), "--per-task", "2", "--min-weight", "0"]) == 0
    out = capsys.readouterr().out
    assert "layer head" in out and len(out.strip().splitlines()) == 2 + 2 * 2
