"""The binding-circuit initialisation (distill/circuit_init.py): at step 0, before any training, layer 0 copies each
token's predecessor and the model answers "the token after this one" lookups."""
import pytest
import torch

from distill.circuit_init import install_binding_circuit, residual_layout
from distill.train import TrainConfig
from dllm.models.torch_model import DiffusionTransformer, rope_cos_sin
from dllm.testing import tiny_config

VOCAB = 160


def _model(init_circuit: bool, **overrides):
    kw = dict(vocab_size=VOCAB, hidden_size=128, num_layers=2, num_heads=4, intermediate_size=64, rope_theta=5e5)
    kw.update(overrides)
    torch.manual_seed(0)
    model = DiffusionTransformer(tiny_config(**kw))
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(std=0.02)
    if init_circuit:
        install_binding_circuit(model, torch.Generator().manual_seed(0))
    return model.eval()


def _lookup_rows(n_rows: int, pairs: int, mask_id: int, seed: int = 0):
    """Rows ``a1 b1 , a2 b2 , ... , ak [mask]`` of distinct random word ids; returns (ids [n, L], answers [n])."""
    g = torch.Generator().manual_seed(seed)
    rows, answers = [], []
    for _ in range(n_rows):
        words = (8 + torch.randperm(VOCAB - 9, generator=g)[:2 * pairs]).tolist()  # ids 8.. are plain words
        sep = VOCAB - 1
        row = []
        for a, b in zip(words[::2], words[1::2]):
            row += [a, b, sep]
        k = int(torch.randint(pairs, (1,), generator=g))
        rows.append(row + [words[2 * k], mask_id])
        answers.append(words[2 * k + 1])
    return torch.tensor(rows), torch.tensor(answers)


def test_layer0_writes_the_previous_tokens_identity():
    model = _model(True)
    tok, _, prev = residual_layout(model.config.hidden_size)
    ids, _ = _lookup_rows(4, 5, model.config.mask_token_id)
    L = ids.shape[1]
    cos, sin = rope_cos_sin(torch.arange(L).expand(4, L), model.config.head_dim, model.config.rope_theta)
    with torch.no_grad():
        x = model.embed(ids)
        after = model.layers[0](x, cos, sin, None)
    copied = after[:, 1:, prev][..., :tok.stop]
    similarity = torch.nn.functional.cosine_similarity(copied, x[:, :-1, tok], dim=-1)
    assert similarity.min() > 0.99


@pytest.mark.parametrize("init_circuit", [True, False])
def test_untrained_model_binds_only_with_the_circuit(init_circuit):
    model = _model(init_circuit)
    ids, answers = _lookup_rows(64, 5, model.config.mask_token_id)
    with torch.no_grad():
        predicted = model(ids)[:, -1].argmax(-1)
    accuracy = float((predicted == answers).float().mean())
    if init_circuit:
        assert accuracy >= 0.75  # 0.875 here (16 matching dims per head); chance among the 5 pairs: 0.2
    else:
        assert accuracy < 0.2


def test_too_narrow_or_tied_models_are_refused():
    with pytest.raises(ValueError, match="num_heads"):
        install_binding_circuit(_model(False, hidden_size=128, num_heads=1))
    with pytest.raises(ValueError, match="untied lm_head"):
        install_binding_circuit(_model(False, tie_word_embeddings=True))


def test_train_config_names_a_bad_init():
    with pytest.raises(ValueError, match="init must be one of"):
        TrainConfig(init="mimetic")


def test_dllm_train_records_the_init_and_a_resume_keeps_it(tmp_path):
    import json

    from distill import reference
    from tests.test_train import TINY

    args = ["--out", str(tmp_path / "r"), "--steps", "1"] + TINY
    args[args.index("--num-layers") + 1] = "2"
    assert reference.main(args + ["--init", "binding_circuit"]) == 0
    assert json.loads((tmp_path / "r" / "train_config.json").read_text())["init"] == "binding_circuit"
    args[args.index("--steps") + 1] = "2"
    with pytest.raises(ValueError, match="--init"):
        reference.main(args)
