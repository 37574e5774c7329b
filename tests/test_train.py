"""The reference-model trainer (``dllm train``): a few-step smoke run, exact resume, and its building blocks."""
import json

import pytest
import torch
from safetensors.torch import load_file

import dllm
from distill import reference
from distill.data import Example, collate
from distill.train import masked_diffusion_loss
from distill.word_tokenizer import build_word_tokenizer, special_ids

TINY = ["--hidden-size", "32", "--num-layers", "1", "--num-heads", "2", "--intermediate-size", "64",
        "--batch-size", "2", "--save-every", "2", "--warmup", "2", "--no-progress", "--no-bf16"]


def _train(out, steps):
    assert reference.main(["--out", str(out), "--steps", str(steps)] + TINY) == 0
    return load_file(str(out / "model" / "model.safetensors"))


def test_smoke_run_exports_a_loadable_model(tmp_path):
    _train(tmp_path / "run", 3)
    log = [json.loads(line) for line in (tmp_path / "run" / "loss_log.jsonl").read_text().splitlines()]
    assert log and log[-1]["step"] == 3 and all(r["loss"] > 0 for r in log)
    pipe = dllm.load(tmp_path / "run" / "model", device="cpu")
    assert pipe.config.layout == "llada" and pipe.tokenizer.mask_token == "<|mdm_mask|>"
    out = pipe.generate([[{"role": "user", "content": "Generate a Latin square"}]], gen_length=8, steps=8)
    assert len(out.sequences[0]) == 8 and out.nfe == [8]


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    straight = _train(tmp_path / "a", 4)
    _train(tmp_path / "b", 2)
    resumed = _train(tmp_path / "b", 4)  # same command, more steps: resumes from train_state.pt at step 2
    assert straight.keys() == resumed.keys()
    for k in straight:
        torch.testing.assert_close(resumed[k], straight[k], rtol=0, atol=0)
    # The logged loss EMA carries over the resume, and the clock counts both sessions.
    logs = {run: [json.loads(x) for x in (tmp_path / run / "loss_log.jsonl").read_text().splitlines()]
            for run in "ab"}
    assert logs["b"][-1]["step"] == logs["a"][-1]["step"] == 4
    assert logs["b"][-1]["loss_ema"] == pytest.approx(logs["a"][-1]["loss_ema"], rel=1e-6)
    assert logs["b"][-1]["elapsed_s"] >= logs["b"][0]["elapsed_s"]


def test_resume_refuses_another_architecture(tmp_path):
    _train(tmp_path / "c", 2)
    args = ["--out", str(tmp_path / "c"), "--steps", "3"] + TINY
    args[args.index("--hidden-size") + 1] = "48"
    with pytest.raises(ValueError, match="--hidden-size"):
        reference.main(args)


def test_rope_theta_and_embed_std_reach_the_model_and_resume_refuses_another_rope_theta(tmp_path):
    import json

    out = tmp_path / "r"
    assert reference.main(["--out", str(out), "--steps", "1", "--rope-theta", "500000", "--embed-std", "1.0"]
                          + TINY) == 0
    assert json.loads((out / "model" / "config.json").read_text())["rope_theta"] == 500000.0
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["rope_theta"] == 500000.0 and saved["embed_std"] == 1.0
    with pytest.raises(ValueError, match="--rope-theta"):
        reference.main(["--out", str(out), "--steps", "2"] + TINY)


def test_word_tokenizer_is_lossless_with_llada_specials():
    text = '["Anna Smith", "Bob Jones"]\nA,B\n1234'
    tok = build_word_tokenizer([text, "user\n\nassistant\n\n"])
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids) == text and tok.unk_token_id not in ids
    sid = special_ids(tok)
    assert len(set(sid.values())) == len(sid) and tok.convert_ids_to_tokens(sid["mask"]) == "<|mdm_mask|>"
    chat = tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False)
    assert chat.startswith("<|startoftext|><|start_header_id|>user") and chat.endswith("<|end_header_id|>\n\n")


class _Recorder(torch.nn.Module):
    """A model stub recording which positions the loss masked."""

    def __init__(self, vocab):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(vocab))
        self.seen = None

    def raw_logits(self, ids, attention_mask, position_ids):
        self.seen = ids.clone()
        return self.w.expand(*ids.shape, -1)


def test_loss_masks_only_answer_slots_and_at_least_one_per_row():
    batch = collate([Example("t", (5, 6, 7), (8, 9, 3, 3)), Example("t", (5,), (8, 3, 3, 3))], pad_id=0)
    model = _Recorder(16)
    loss = masked_diffusion_loss(model, batch, mask_id=15, t_min=1e-9, generator=torch.Generator().manual_seed(0))
    masked = model.seen == 15
    assert not (masked & ~batch["answer_mask"]).any()          # prompt and padding are never masked
    assert masked.any(-1).all()                                  # every row trains on something
    torch.testing.assert_close(loss, torch.log(torch.tensor(16.0)))  # uniform logits: CE = log V


def test_lr_schedule_warms_up_then_decays_to_the_floor_or_stays_constant():
    from distill.train import TrainConfig, lr_at

    cosine = TrainConfig(steps=100, warmup=10, lr=1e-3, min_lr_ratio=0.1)
    assert lr_at(cosine, 0) == pytest.approx(1e-4) and lr_at(cosine, 9) == pytest.approx(1e-3)
    assert lr_at(cosine, 100) == pytest.approx(1e-4) and lr_at(cosine, 55) < lr_at(cosine, 20)
    constant = TrainConfig(steps=100, warmup=10, lr=1e-3, min_lr_ratio=1.0)
    assert {round(lr_at(constant, s), 12) for s in range(10, 101)} == {1e-3}
    with pytest.raises(ValueError, match="min_lr_ratio"):
        TrainConfig(min_lr_ratio=0.0)
    wsd = TrainConfig(steps=100, warmup=10, lr=1e-3, min_lr_ratio=0.1, decay_start=60)
    assert {round(lr_at(wsd, s), 12) for s in range(10, 61)} == {1e-3}          # stable until decay_start
    assert lr_at(wsd, 61) < 1e-3 and lr_at(wsd, 80) == pytest.approx(lr_at(cosine, 55))  # half-way down
    assert lr_at(wsd, 100) == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="decay_start"):
        TrainConfig(steps=100, decay_start=100)
    # a run stopped at step 70 of that anneal (then resumed with other flags) keeps the 100-step schedule
    stopped = TrainConfig(steps=70, warmup=10, lr=1e-3, min_lr_ratio=0.1, decay_start=60, decay_end=100)
    assert [lr_at(stopped, s) for s in range(71)] == [lr_at(wsd, s) for s in range(71)]
    assert lr_at(TrainConfig(steps=70, warmup=10, lr=1e-3, min_lr_ratio=0.1, decay_start=60), 70) == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="decay_end"):
        TrainConfig(steps=100, decay_start=60, decay_end=60)
    # ... and one stopped at step 50, still in the constant part
    early = TrainConfig(steps=50, warmup=10, lr=1e-3, min_lr_ratio=0.1, decay_start=60, decay_end=100)
    assert [lr_at(early, s) for s in range(51)] == [lr_at(wsd, s) for s in range(51)]


def test_zero_shot_fraction_drops_only_the_one_shot_turn_and_keeps_the_data_stream():
    import random

    from transformers import AutoTokenizer

    from distill.train import TrainConfig

    tok = AutoTokenizer.from_pretrained(str(dllm.api.default_model_path()))
    official, curriculum = reference.example_maker(tok, 0, 0.0), reference.example_maker(tok, 0, 0.5)
    pairs = [(official(random.Random(i)), curriculum(random.Random(i))) for i in range(24)]
    shorter = [c for o, c in pairs if len(c.prompt_ids) < len(o.prompt_ids)]
    assert 0 < len(shorter) < len(pairs)                       # about half the rows, not none or all
    for o, c in pairs:
        assert (o.task, o.answer_ids) == (c.task, c.answer_ids)  # same items in the same order
        assert c.prompt_ids == o.prompt_ids or c.prompt_ids == o.prompt_ids[:1] + o.prompt_ids[-len(c.prompt_ids) + 1:]
    bos = tok.bos_token_id
    assert all(c.prompt_ids[0] == bos and c.prompt_ids.count(bos) == 1 for c in shorter)
    with pytest.raises(ValueError, match="zero_shot_fraction"):
        TrainConfig(zero_shot_fraction=1.5)


def test_task_weights_shift_the_task_draw_and_default_keeps_the_old_stream():
    import random
    from collections import Counter

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(dllm.api.default_model_path()))
    names = reference.offline_task_names()
    assert reference.parse_task_weights("", names) is None
    weights = reference.parse_task_weights("waiting_line/*=0,waiting_line/copy=3", names)
    assert weights == [3.0 if n == "waiting_line/copy" else 1.0 if n.startswith("puzzle/") else 0.0 for n in names]

    uniform, default = reference.example_maker(tok, 0), reference.example_maker(tok, 0, task_weights="")
    tasks = [uniform(random.Random(i)).task for i in range(12)]
    assert tasks == [default(random.Random(i)).task for i in range(12)]
    assert tasks == [names[random.Random(i).randrange(len(names))] for i in range(12)]  # the pre-weights draw

    copy_only = reference.example_maker(tok, 0, task_weights="offline=0,waiting_line/copy=1")
    assert {copy_only(random.Random(i)).task for i in range(10)} == {"waiting_line/copy"}
    heavy = reference.example_maker(tok, 0, task_weights="waiting_line/copy=11")  # copy: 11 of 22
    counts = Counter(heavy(random.Random(i)).task for i in range(60))
    assert 18 <= counts["waiting_line/copy"] <= 42 and len(counts) > 3


@pytest.mark.parametrize("spec, word", [("copy", "PATTERN=WEIGHT"), ("nope=1", "matches no task"),
                                        ("waiting_line/copy=x", "not a number"), ("waiting_line/copy=-1", ">= 0"),
                                        ("offline=0", "weight 0"), ("sort_last_name=2", "not among")])
def test_bad_task_weights_name_the_entry(spec, word):
    with pytest.raises(ValueError, match=word):
        reference.parse_task_weights(spec, reference.offline_task_names())


def test_device_is_validated_and_a_missing_gpu_is_named(tmp_path):
    from distill.train import TrainConfig

    with pytest.raises(ValueError, match="device"):
        TrainConfig(device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="--device cuda"):
            reference.main(["--out", str(tmp_path / "gpu"), "--steps", "1", "--device", "cuda"] + TINY)
        assert not (tmp_path / "gpu" / "train_state.pt").exists()


def test_length_bucketed_backward_gives_the_full_batch_loss_and_gradient():
    from dllm.models.config import DLLMConfig
    from dllm.models.torch_model import DiffusionTransformer
    from distill.train import bucketed_loss_backward, length_buckets

    examples = [Example("t", tuple(range(4, 4 + n)), (20, 21, 3, 3)) for n in (9, 2, 5, 1, 7, 3, 4)]
    assert sorted(sum(length_buckets(examples, 3), [])) == list(range(7))
    assert [len(b) for b in length_buckets(examples, 3)] == [3, 2, 2]
    assert [len(examples[i].prompt_ids) for i in length_buckets(examples, 3)[0]] == [1, 2, 3]
    cfg = DLLMConfig(layout="llada", vocab_size=32, hidden_size=16, num_layers=1, num_heads=2, num_kv_heads=2,
                     intermediate_size=24, max_position_embeddings=64, mask_token_id=31, eos_token_id=3,
                     pad_token_id=0, bos_token_id=1, eot_token_id=2)
    torch.manual_seed(0)
    model = DiffusionTransformer(cfg)
    grads = []
    for n_buckets in (1, 3):
        model.zero_grad()
        value = bucketed_loss_backward(model, examples, pad_id=0, mask_id=31, t_min=0.02,
                                       generator=torch.Generator().manual_seed(5), n_buckets=n_buckets,
                                       device=torch.device("cpu"))
        grads.append((value, [p.grad.clone() for p in model.parameters()]))
    full = masked_diffusion_loss(model, collate(examples, 0), 31, 0.02, torch.Generator().manual_seed(5))
    assert grads[0][0] == pytest.approx(full.item(), rel=1e-5)
    assert grads[1][0] == pytest.approx(grads[0][0], rel=1e-5)
    for a, b in zip(grads[0][1], grads[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="length_buckets"):
        from distill.train import TrainConfig
        TrainConfig(length_buckets=0)
    assert [len(b) for b in length_buckets(examples[:2], 4)] == [1, 1]  # more buckets than rows: one row each


def test_scaled_init_and_weight_decay_are_settable_and_validated():
    from distill.train import TrainConfig, build_model

    tok = reference.build_reference_tokenizer()
    small = dict(hidden_size=64, num_layers=8, num_heads=2, intermediate_size=128)
    for scaled, expected in ((True, 0.02 / 4), (False, 0.02)):  # 1 / sqrt(2 * 8 layers) = 1 / 4
        model = build_model(TrainConfig(scaled_init=scaled, **small), tok)
        o_proj = [p for n, p in model.named_parameters() if n.endswith("o_proj.weight")][0]
        assert float(o_proj.detach().std()) == pytest.approx(expected, rel=0.1)
    with pytest.raises(ValueError, match="weight_decay"):
        TrainConfig(weight_decay=-0.1)
    for embed_std in (0.02, 1.0):
        model = build_model(TrainConfig(embed_std=embed_std, **small), tok)
        assert float(model.embed.weight.detach().std()) == pytest.approx(embed_std, rel=0.1)
        assert float(model.lm_head.weight.detach().std()) == pytest.approx(0.02, rel=0.1)
    with pytest.raises(ValueError, match="embed_std"):
        TrainConfig(embed_std=0)


def test_unmasked_answer_slots_are_never_masked_and_other_rows_keep_their_masks():
    from distill.data import Example, collate
    from distill.train import draw_masked_answer_slots, draw_training_masks, ensure_one_masked

    plain = [Example("t", (5, 6), (8, 9, 10, 11, 3, 3)), Example("t", (5, 6, 7), (8, 9, 10, 3, 3, 3))]
    given = Example("aux/bind", (5,), (8, 9, 10, 11, 12, 3), unmasked=(1, 3))
    batch = collate(plain + [given], pad_id=0)
    assert batch["answer_unmasked"][2].nonzero().flatten().tolist() == [batch["input_ids"].shape[1] - 6 + 1,
                                                                         batch["input_ids"].shape[1] - 6 + 3]
    for seed in range(30):
        masked = draw_training_masks(batch["answer_mask"], batch["answer_unmasked"], 0.02,
                                     torch.Generator().manual_seed(seed))
        old = ensure_one_masked(draw_masked_answer_slots(batch["answer_mask"], 0.02,
                                                         torch.Generator().manual_seed(seed)), batch["answer_mask"])
        assert not (masked & batch["answer_unmasked"]).any() and masked.any(-1).all()
        assert torch.equal(masked[:2], old[:2])  # rows without given slots: the masks they always had


def test_reinit_heads_redraws_only_those_heads_and_their_moments():
    from distill.train import TrainConfig, build_model, reinit_heads

    tok = reference.build_reference_tokenizer()
    model = build_model(TrainConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64), tok)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.tensor([[5, 6, 7]])).sum().backward()
    opt.step()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    reinit_heads(model, opt, [(1, 0)], torch.Generator().manual_seed(0))
    hd = model.config.head_dim
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == {f"layers.1.{m}.weight" for m in ("q_proj", "k_proj", "v_proj", "o_proj")}
    block = model.layers[1]
    for weight, head, rest in ((block.q_proj.weight, (slice(0, hd),), (slice(hd, None),)),
                               (block.o_proj.weight, (slice(None), slice(0, hd)), (slice(None), slice(hd, None)))):
        name = next(n for n, p in model.named_parameters() if p is weight)
        assert not torch.equal(weight[head], before[name][head]) and torch.equal(weight[rest], before[name][rest])
        moments = opt.state[weight]
        assert not moments["exp_avg"][head].any() and moments["exp_avg"][rest].abs().sum() > 0


@pytest.mark.parametrize("spec, message", [("1", "not LAYER.HEAD"), ("a.b", "not LAYER.HEAD"),
                                           ("1.2", "heads 0-1"), ("2.0", "layers 0-0")])
def test_reinit_heads_spec_is_validated(spec, message):
    from distill.train import TrainConfig

    with pytest.raises(ValueError, match=message):
        TrainConfig(num_layers=1, num_heads=2, reinit_heads=spec)


def test_reinit_heads_applies_once_per_value_across_resumes(tmp_path, capsys):
    out = tmp_path / "h"
    TWO_LAYERS = ["2" if i and TINY[i - 1] == "--num-layers" else a for i, a in enumerate(TINY)]
    assert reference.main(["--out", str(out), "--steps", "2"] + TWO_LAYERS) == 0
    assert reference.main(["--out", str(out), "--steps", "3", "--reinit-heads", "1.1"] + TWO_LAYERS) == 0
    assert "step 2: redrew attention heads 1.1" in capsys.readouterr().out
    assert reference.main(["--out", str(out), "--steps", "4", "--reinit-heads", "1.1"] + TWO_LAYERS) == 0
    assert "redrew" not in capsys.readouterr().out  # resumed: already done
    assert torch.load(out / "train_state.pt", weights_only=False)["reinit_heads"] == ["1.1"]
