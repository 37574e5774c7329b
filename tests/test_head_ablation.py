"""``python -m distill.head_ablation``: loss increase per zeroed attention head."""
import json
import random

import pytest
import torch

from distill import head_ablation as ha
from distill.aux_tasks import AUX_TASKS
from distill.data import collate
from distill.reference import build_reference_tokenizer
from distill.train import TrainConfig, build_model


@pytest.fixture(scope="module")
def tiny():
    tok = build_reference_tokenizer()
    model = build_model(TrainConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64), tok).eval()
    return model, tok


def _batches(tok):
    rows = [AUX_TASKS["copy_short"](tok, random.Random(i)) for i in range(4)]
    return [collate(rows, tok.pad_token_id)]


def test_a_silent_head_costs_nothing_and_weights_are_restored(tiny):
    model, tok = tiny
    hd = model.config.head_dim
    with torch.no_grad():
        model.layers[1].o_proj.weight[:, hd:] = 0  # head 1.1 writes nothing
    before = {n: p.clone() for n, p in model.state_dict().items()}
    result = ha.head_ablation(model, _batches(tok), groups=["0.0,0.1"])
    assert result["heads"][1][1] == 0.0
    assert result["heads"][0][0] != 0.0 and result["groups"]["0.0,0.1"] != 0.0
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_cli_prints_one_row_per_layer(tiny, tmp_path, capsys):
    from dllm.models.torch_loader import save_torch_model

    model, tok = tiny
    save_torch_model(model, tmp_path / "m")
    tok.save_pretrained(str(tmp_path / "m"))
    assert ha.main(["--model", str(tmp_path / "m"), "--batches", "1", "--batch-size", "4", "--json",
                    "--group", "0.1,1.0"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["heads"]) == 2 and all(len(row) == 2 for row in out["heads"]) and "0.1,1.0" in out["groups"]
    with pytest.raises(ValueError, match="--group entry 'x' is not LAYER.HEAD"):
        ha.main(["--model", str(tmp_path / "m"), "--batches", "1", "--batch-size", "2", "--group", "x"])
