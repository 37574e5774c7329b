"""Engine and Python API on tiny random checkpoints and on hand-built mock models."""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import NamedTuple

import pytest
import torch

import dllm
from dllm import DecodeConfig
from dllm.engine import Engine, NullCache
from dllm.noise import NoiseSource

try:
    import decoders
except ImportError:  # the strategies package is developed separately
    decoders = None
needs_decoders = pytest.mark.skipif(decoders is None, reason="decoders package not importable")


# ---------------------------------------------------------------------------------------------- test strategies
class Out(NamedTuple):
    tokens: torch.Tensor
    commit: torch.Tensor
    remask: torch.Tensor
    state: object


def _rank_mask(score, maskable, k):
    """Commit the top-k maskable by score per row (k: [B]); ties -> lower index."""
    score = torch.where(maskable, score, float("-inf"))
    order = torch.argsort(-score, dim=-1, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(-1, order, torch.arange(score.shape[-1]).expand_as(order))
    return (rank < k[:, None]) & maskable


@dataclasses.dataclass(frozen=True)
class FixedTopK:
    """LLaDA-like: greedy / Gumbel candidates, untempered confidence, per-block quota schedule."""

    schedule = "fixed"
    seen: list = dataclasses.field(default_factory=list, compare=False)

    def needs_uniform_noise(self, sampling):
        return False

    def init_state(self, block_mask_count, steps_per_block):
        return block_mask_count

    def step(self, inp, state):
        self.seen.append(inp)
        l = inp.logits.double()
        noisy = l + inp.sampling.temperature * inp.gumbel if inp.gumbel is not None else l
        tokens = noisy.argmax(-1)
        conf = torch.softmax(inp.logits, -1).gather(-1, tokens[..., None])[..., 0]
        S = inp.steps_per_block
        k = state // S + (inp.step < state % S).long()
        commit = _rank_mask(conf, inp.maskable, k)
        return Out(tokens, commit, torch.zeros_like(commit), state)


@dataclasses.dataclass(frozen=True)
class Threshold:
    """Dynamic: commit confidence >= tau, at least the best one."""

    tau: float = 0.5
    schedule = "dynamic"

    def needs_uniform_noise(self, sampling):
        return False

    def init_state(self, block_mask_count, steps_per_block):
        return None

    def step(self, inp, state):
        p = torch.softmax(inp.logits, -1)
        conf, tokens = p.max(-1)
        best = _rank_mask(conf, inp.maskable, torch.ones(conf.shape[0], dtype=torch.long))
        return Out(tokens, best | ((conf >= self.tau) & inp.maskable), torch.zeros_like(best), state)


class RandomOrder:
    """Fixed schedule by the engine's uniform noise."""

    schedule = "fixed"

    def needs_uniform_noise(self, sampling):
        return True

    def init_state(self, block_mask_count, steps_per_block):
        return block_mask_count

    def step(self, inp, state):
        assert inp.uniform is not None and inp.uniform.dtype == torch.float64
        assert inp.uniform.shape == inp.canvas.shape
        S = inp.steps_per_block
        k = state // S + (inp.step < state % S).long()
        return Out(inp.logits.argmax(-1), _rank_mask(inp.uniform, inp.maskable, k),
                   torch.zeros_like(inp.maskable), state)


class Stuck(Threshold):
    def step(self, inp, state):
        out = super().step(inp, state)
        return out._replace(commit=torch.zeros_like(out.commit))


class Trespasser(Threshold):
    """Commits everything, prompt included."""

    def step(self, inp, state):
        out = super().step(inp, state)
        return out._replace(commit=torch.ones_like(out.commit))


class Lazy(FixedTopK):
    """Fixed schedule that never commits."""

    def step(self, inp, state):
        out = super().step(inp, state)
        return out._replace(commit=torch.zeros_like(out.commit))


# ---------------------------------------------------------------------------------------------- mock model
class MockModel:
    """Hand-built logits: ``table[j]`` are the logits of generated slot j (row-independent), prompt slots get
    uniform logits. Records every call's input shape."""

    def __init__(self, table, vocab=16, mask_id=15, eos_id=2, eot_id=3, pad_id=0):
        self.config = SimpleNamespace(vocab_size=vocab, mask_token_id=mask_id, eos_token_id=eos_id,
                                      eot_token_id=eot_id, pad_token_id=pad_id)
        self.table = torch.as_tensor(table, dtype=torch.float32)
        self.calls = []

    def __call__(self, input_ids, attention_mask=None, position_ids=None):
        self.calls.append((tuple(input_ids.shape), input_ids.clone()))
        N, L = input_ids.shape
        G = self.table.shape[0]
        out = torch.zeros(N, L, self.config.vocab_size)
        out[:, L - G:] = self.table
        return out


def _table(G, V=16, favourite=None, strength=None):
    """Slot j prefers token 4 + j % 8 with strength decreasing in j (so confidence order = left to right)."""
    t = torch.zeros(G, V)
    for j in range(G):
        tok = 4 + j % 8 if favourite is None else favourite[j]
        t[j, tok] = (strength[j] if strength is not None else 10.0 - 0.5 * j)
    return t


def _run(model, ids, config, strategy, **kw):
    gen = Engine(model).run(ids, config, strategy, **kw)
    events = []
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            return stop.value, events


# ---------------------------------------------------------------------------------------------- DecodeConfig
def test_decode_config_validation_names_parameter():
    with pytest.raises(ValueError, match=r"block_length \(5\).*gen_length \(16\)"):
        DecodeConfig(gen_length=16, block_length=5)
    with pytest.raises(ValueError, match=r"steps \(6\).*number of blocks \(4"):
        DecodeConfig(gen_length=16, block_length=4, steps=6)
    for bad, key in [({"temperature": -1.0}, "temperature"), ({"top_p": 1.5}, "top_p"), ({"top_k": 0}, "top_k"),
                     ({"gen_length": 0}, "gen_length"), ({"cfg_scale": -2.0}, "cfg_scale"),
                     ({"strategy": 3}, "strategy"), ({"seed": 1.5}, "seed")]:
        with pytest.raises(ValueError, match=key) as e:
            DecodeConfig(**bad)
        assert repr(next(iter(bad.values()))) in str(e.value)


def test_decode_config_round_trip():
    c = DecodeConfig(gen_length=64, block_length=16, steps=32, strategy={"type": "threshold", "threshold": 0.8},
                     temperature=0.5, top_p=0.9, cfg_scale=1.0, stop_on_eos=True, seed=3)
    assert (c.num_blocks, c.steps_per_block, c.block_len, c.total_steps) == (4, 8, 16, 32)
    assert DecodeConfig.from_dict(c.to_dict()) == c
    assert DecodeConfig().steps_per_block == 128 and DecodeConfig().num_blocks == 1
    with pytest.raises(ValueError, match="unknown DecodeConfig field"):
        DecodeConfig.from_dict({"gen_lenght": 3})


def test_generate_rejects_bad_schedule(llada_pipe):
    with pytest.raises(ValueError, match="block_length"):
        dllm.generate(llada_pipe, input_ids=[[5, 6]], gen_length=16, block_length=6, strategy=FixedTopK())
    with pytest.raises(ValueError, match="steps"):
        dllm.generate(llada_pipe, input_ids=[[5, 6]], gen_length=16, block_length=4, steps=10, strategy=FixedTopK())


# ---------------------------------------------------------------------------------------------- core loop
@pytest.mark.parametrize("gen,block,steps", [(16, 16, 16), (16, 4, 8), (12, 4, 12), (8, 8, 3)])
def test_fixed_nfe_equals_steps_and_blocks_respected(pipe, gen, block, steps):
    prompts = [[8, 9, 10, 11, 12], [13, 14]]
    out = dllm.generate(pipe, input_ids=prompts, gen_length=gen, block_length=block, steps=steps,
                        strategy=FixedTopK(), return_order=True, return_history=True)
    S = steps // (gen // block)
    assert out.nfe == [steps, steps] and out.steps == [steps, steps] and out.total_nfe == steps
    mask_id = pipe.config.mask_token_id
    for row, order in zip(out.sequences, out.decoding_order):
        assert len(row) == gen and mask_id not in row
        for j, o in enumerate(order):  # slot j of block b is committed during that block's steps
            b = j // block
            assert b * S <= o < (b + 1) * S
    assert len(out.history[0]) == steps
    assert out.tokens_per_step == [gen / steps] * 2


def test_prompt_untouched_and_commits_inside_block(llada_pipe):
    prompts = [[8, 9, 10, 11, 12, 13], [14, 15, 16]]
    mask_id = llada_pipe.config.mask_token_id
    cfg = DecodeConfig(gen_length=12, block_length=4, steps=6)
    res, events = _run(llada_pipe.model, prompts, cfg, FixedTopK())
    P = 6
    assert len(events) == res.nfe == 6
    for ev in events:
        assert ev.canvas[0, :P].tolist() == prompts[0]
        assert ev.canvas[1, P - 3:P].tolist() == prompts[1]
        lo, hi = ev.block * 4, (ev.block + 1) * 4
        cols = torch.nonzero(ev.committed)[:, 1]
        assert ((cols >= lo) & (cols < hi)).all()
        assert (ev.tokens[:, hi:] == mask_id).all()  # later blocks still masked
    assert sum(int(ev.committed.sum()) for ev in events) == 2 * 12


@pytest.mark.parametrize("strategy", [FixedTopK(), Threshold(0.3)], ids=["fixed", "dynamic"])
def test_padding_is_invisible(pipe, strategy):
    long, short = [8, 9, 10, 11, 12, 13, 14, 15], [20, 21, 22]
    kw = dict(gen_length=12, block_length=4, steps=12, strategy=strategy)
    batch = dllm.generate(pipe, input_ids=[long, short], **kw)
    assert batch.sequences[0] == dllm.generate(pipe, input_ids=[long], **kw).sequences[0]
    assert batch.sequences[1] == dllm.generate(pipe, input_ids=[short], **kw).sequences[0]
    two = dllm.generate(pipe, input_ids=[long, short], batch_size=1, **kw)
    assert two.sequences == batch.sequences and two.total_nfe == sum(two.nfe)


def test_dynamic_strategy_runs_until_block_full(dream_pipe):
    out = dllm.generate(dream_pipe, input_ids=[[8, 9, 10]], gen_length=16, block_length=8, steps=2,
                        strategy=Threshold(0.0), return_order=True)
    assert out.nfe == [2]  # tau = 0 commits a whole block per step
    out = dllm.generate(dream_pipe, input_ids=[[8, 9, 10]], gen_length=16, block_length=8, steps=2,
                        strategy=Threshold(1.1), return_order=True)
    assert out.nfe == [16] and sorted(out.decoding_order[0]) == list(range(16))  # one per step


def test_seed_determinism_and_temperature(llada_pipe):
    kw = dict(input_ids=[[8, 9, 10], [11, 12]], gen_length=16, block_length=8, steps=16, temperature=1.0)
    s = FixedTopK()
    a = dllm.generate(llada_pipe, strategy=s, seed=7, **kw)
    assert all(i.gumbel is not None and i.gumbel.dtype == torch.float64 and i.gumbel.shape == i.logits.shape
               for i in s.seen)
    b = dllm.generate(llada_pipe, strategy=FixedTopK(), seed=7, **kw)
    c = dllm.generate(llada_pipe, strategy=FixedTopK(), seed=8, **kw)
    assert a.sequences == b.sequences and a.sequences != c.sequences
    g = FixedTopK()
    greedy = dllm.generate(llada_pipe, strategy=g, seed=7, **{**kw, "temperature": 0.0})
    assert all(i.gumbel is None and i.uniform is None for i in g.seen)
    assert greedy.sequences == dllm.generate(llada_pipe, strategy=FixedTopK(), seed=99,
                                             **{**kw, "temperature": 0.0}).sequences


def test_uniform_noise_only_when_asked(llada_pipe):
    a = dllm.generate(llada_pipe, input_ids=[[8, 9]], gen_length=8, steps=8, strategy=RandomOrder(), seed=1,
                      return_order=True)
    b = dllm.generate(llada_pipe, input_ids=[[8, 9]], gen_length=8, steps=8, strategy=RandomOrder(), seed=2,
                      return_order=True)
    assert a.nfe == [8] and a.decoding_order != b.decoding_order


def test_noise_source_is_llada_gumbel():
    ns = NoiseSource(3)
    g = ns.gumbel((2, 3, 5))
    u = torch.rand((2, 3, 5), dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(g, -torch.log(-torch.log(u)))
    assert g.dtype == torch.float64


def test_cfg_batched_forward(llada_pipe):
    prompts = [[8, 9, 10, 11], [12, 13]]
    kw = dict(input_ids=prompts, gen_length=8, block_length=4, steps=8, strategy=FixedTopK())
    plain = dllm.generate(llada_pipe, **kw)
    tiny = dllm.generate(llada_pipe, cfg_scale=1e-6, **kw)
    assert tiny.sequences == plain.sequences  # w -> 0 gives the conditional logits back
    calls = []
    real = llada_pipe.model.forward

    def spy(input_ids, attention_mask=None, position_ids=None):
        calls.append((input_ids.clone(), attention_mask, position_ids))
        return real(input_ids, attention_mask, position_ids)

    pipe = dllm.Pipeline(model=_Callable(spy, llada_pipe.config))
    out = dllm.generate(pipe, cfg_scale=2.0, **kw)
    assert out.nfe == [8, 8] and len(calls) == 8  # one (batched) forward per step
    ids, mask, pos = calls[0]
    mask_id = llada_pipe.config.mask_token_id
    assert ids.shape == (4, 4 + 8) and mask.shape == (4, 12) and pos.shape == (4, 12)
    assert ids[0, :4].tolist() == prompts[0] and (ids[2, :4] == mask_id).all()  # uncond: prompt -> [MASK]
    assert ids[3, :2].tolist() == ids[1, :2].tolist() and (ids[3, 2:4] == mask_id).all()  # padding kept
    torch.testing.assert_close(mask[:2], mask[2:])


class _Callable:
    def __init__(self, fn, config):
        self.fn, self.config = fn, config

    def __call__(self, *a, **k):
        return self.fn(*a, **k)


def test_forward_accepts_any_leading_batch(llada_pipe):
    eng = Engine(llada_pipe.model)
    canvas = torch.randint(8, 60, (5, 9))
    out = eng._forward(canvas, None, None, NullCache())
    assert out.shape == (5, 9, 64) and out.dtype == torch.float32
    torch.testing.assert_close(out[3:4], eng._forward(canvas[3:4], None, None))


# ---------------------------------------------------------------------------------------------- guards
def test_guards(llada_pipe):
    kw = dict(input_ids=[[8, 9]], gen_length=8, block_length=4, steps=4)
    with pytest.raises(RuntimeError, match="committed nothing"):
        dllm.generate(llada_pipe, strategy=Stuck(), **kw)
    with pytest.raises(RuntimeError, match="outside the maskable"):
        dllm.generate(llada_pipe, strategy=Trespasser(), **kw)
    with pytest.raises(RuntimeError, match="left 4 masked"):
        dllm.generate(llada_pipe, strategy=Lazy(), **kw)
    with pytest.raises(ValueError, match="outside"):
        dllm.generate(llada_pipe, input_ids=[[8, 999]], gen_length=8, strategy=FixedTopK())
    with pytest.raises(ValueError, match="exactly one"):
        dllm.generate(llada_pipe, gen_length=8, strategy=FixedTopK())


# ---------------------------------------------------------------------------------------------- EOS controls
def test_suppress_mask_token():
    t = _table(4)
    t[:, 15] = 100.0  # the model loves [MASK]
    out = dllm.generate(MockModel(t), input_ids=[[5, 6]], gen_length=4, steps=4, strategy=FixedTopK(),
                        suppress_mask_token=True)
    assert 15 not in out.sequences[0] and out.sequences[0] == [4, 5, 6, 7]


def test_mask_token_candidates_stay_masked_by_default():
    """Reference quirk: a committed mask id leaves its slot masked; it stays a candidate in later blocks."""
    t = _table(4)
    t[1] = 0.0
    t[1, 15] = 1.0  # slot 1 predicts [MASK], with the lowest confidence of all slots
    out = dllm.generate(MockModel(t), input_ids=[[5, 6]], gen_length=4, block_length=2, steps=4,
                        strategy=FixedTopK(), return_order=True)
    assert out.sequences[0] == [4, 15, 6, 7]
    assert out.decoding_order[0][1] == -1 and min(out.decoding_order[0][0::2]) >= 0
    # the same model with the mask id still winning but a strategy that never commits: still an error
    with pytest.raises(RuntimeError, match="left 2 masked"):
        dllm.generate(MockModel(t), input_ids=[[5, 6]], gen_length=4, block_length=2, steps=4, strategy=Lazy())


def test_logits_eos_inf():
    t = _table(4)
    t[2, 2] = 50.0  # slot 2 wants EOS
    base = dllm.generate(MockModel(t), input_ids=[[5]], gen_length=4, steps=4, strategy=FixedTopK())
    assert base.sequences[0][2] == 2 and base.num_answer_tokens == [2] and base.tokens_per_forward == [0.5]
    out = dllm.generate(MockModel(t), input_ids=[[5]], gen_length=4, steps=4, strategy=FixedTopK(),
                        logits_eos_inf=True)
    assert 2 not in out.sequences[0] and out.num_answer_tokens == [4]


@pytest.mark.parametrize("temperature,quirk,eos_last,eot_last", [
    (0.0, False, True, True), (0.0, True, True, True),  # T = 0: both demoted either way
    (1e-3, False, True, True), (1e-3, True, False, True),  # T > 0: the reference's quirk demotes EoT only
])
def test_confidence_eos_eot_inf(temperature, quirk, eos_last, eot_last):
    # slot 0 wants EOS, slot 1 wants EoT, both very confidently; others less so
    t = _table(6, strength=[9.0, 8.0, 7.0, 6.0, 5.0, 4.0])
    t[0, 2], t[1, 3] = 40.0, 39.0
    kw = dict(input_ids=[[5]], gen_length=6, steps=6, strategy=FixedTopK(), temperature=temperature,
              return_order=True, confidence_eos_eot_inf=True, llada_eos_quirk=quirk)
    out = dllm.generate(MockModel(t), **kw)
    seq, order = out.sequences[0], out.decoding_order[0]
    assert seq[:2] == [2, 3]  # candidates keep their tokens
    assert (order[0] >= 4) == eos_last and (order[1] >= 4) == eot_last
    plain = dllm.generate(MockModel(t), **{**kw, "confidence_eos_eot_inf": False})
    assert plain.decoding_order[0][:2] == [0, 1]


def test_stop_on_eos_fills_and_stops():
    t = _table(8)
    t[1, 2] = 50.0  # EOS in block 0 (slots 0-3)
    m = MockModel(t)
    out = dllm.generate(m, input_ids=[[5]], gen_length=8, block_length=4, steps=8, strategy=FixedTopK(),
                        stop_on_eos=True, return_order=True)
    assert out.sequences[0] == [4, 2, 2, 2, 2, 2, 2, 2] and out.nfe == [4]  # block 1 never decoded
    assert out.decoding_order[0][2:] == [-1] * 6
    full = dllm.generate(MockModel(t), input_ids=[[5]], gen_length=8, block_length=4, steps=8,
                         strategy=FixedTopK())
    assert full.nfe == [8] and full.num_answer_tokens == [1]
    # a batch stops when every row has: the EOS-free row keeps going
    t2 = MockModel(t)
    both = dllm.generate(t2, input_ids=[[5], [6, 7]], gen_length=8, block_length=4, steps=8,
                         strategy=FixedTopK(), stop_on_eos=True)
    assert both.nfe == [4, 4]


# ---------------------------------------------------------------------------------------------- iterate / API
def test_iterate_events(llada_pipe):
    events = list(dllm.iterate(llada_pipe, input_ids=[[8, 9, 10]], gen_length=8, block_length=4, steps=4,
                               strategy=FixedTopK()))
    assert [e.step for e in events] == [0, 1, 2, 3] and [e.block for e in events] == [0, 0, 1, 1]
    assert [e.nfe for e in events] == [1, 2, 3, 4] and [e.step_in_block for e in events] == [0, 1, 0, 1]
    assert all(int(e.committed.sum()) == 2 for e in events)
    assert events[-1].tokens.shape == (1, 8) and events[-1].prompt_length == 3


def test_text_prompts_and_chat_template(llada_pipe):
    out = dllm.generate(llada_pipe, ["what is two plus two ?", "hello"], gen_length=8, steps=8,
                        strategy=FixedTopK())
    tok = llada_pipe.tokenizer
    assert out.prompt_ids[0][0] == tok.convert_tokens_to_ids("<|startoftext|>")
    assert out.prompt_ids[0][-1] == tok.convert_tokens_to_ids("<|end_header_id|>")
    assert isinstance(out.texts[0], str) and len(out.texts) == 2
    raw = dllm.generate(llada_pipe, "hello", gen_length=8, steps=8, strategy=FixedTopK(), apply_chat_template=False)
    assert raw.prompt_ids == [tok("hello")["input_ids"]]
    assert out.to_tuple()[0] == out.sequences and out.to_dict()["config"]["gen_length"] == 8


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        dllm.load(tmp_path / "missing")
    if not (dllm.DEFAULT_MODEL_DIR / "config.json").exists():
        with pytest.raises(FileNotFoundError, match="reference model"):
            dllm.load()


# ---------------------------------------------------------------------------------------------- with decoders
def _llada_reference(model, prompt, steps, gen_length, block_length, temperature, cfg_scale, mask_id):
    """LLaDA generate.py restated (low_confidence), including its quirk: the mask id may win the argmax."""
    x = torch.full((1, len(prompt) + gen_length), mask_id, dtype=torch.long)
    x[0, :len(prompt)] = torch.tensor(prompt)
    prompt_index = x != mask_id
    P, nb = len(prompt), gen_length // block_length
    S = steps // nb
    for b in range(nb):
        m = (x[:, P + b * block_length:P + (b + 1) * block_length] == mask_id).sum(1, keepdim=True)
        quota = (m // S).repeat(1, S)
        quota[:, : int(m % S)] += 1
        for i in range(S):
            mask_index = x == mask_id
            with torch.no_grad():
                if cfg_scale > 0:
                    un = x.clone()
                    un[prompt_index] = mask_id
                    both = model(torch.cat([x, un]))
                    logits = both[1:] + (cfg_scale + 1) * (both[:1] - both[1:])
                else:
                    logits = model(x)
            if temperature > 0:
                l64 = logits.to(torch.float64)
                noise = torch.rand_like(l64, dtype=torch.float64)
                x0 = torch.argmax(l64.exp() / (-torch.log(noise)) ** temperature, -1)
            else:
                x0 = logits.argmax(-1)
            p = torch.softmax(logits, -1).gather(-1, x0[..., None])[..., 0]
            p[:, P + (b + 1) * block_length:] = float("-inf")
            x0 = torch.where(mask_index, x0, x)
            conf = torch.where(mask_index, p, torch.tensor(float("-inf")))
            _, idx = torch.topk(conf[0], int(quota[0, i]))
            x[0, idx] = x0[0, idx]
    return x[0, P:].tolist()


@needs_decoders
@pytest.mark.parametrize("temperature,cfg", [(0.0, 0.0), (0.7, 0.0), (0.0, 1.5), (0.5, 0.5)])
def test_matches_llada_reference_loop(llada_pipe, temperature, cfg):
    prompt = [8, 9, 10, 11, 12]
    mask_id = llada_pipe.config.mask_token_id
    torch.manual_seed(11)  # the reference draws from the global generator; the engine from its own, same seed
    ref = _llada_reference(llada_pipe.model, prompt, 8, 16, 8, temperature, cfg, mask_id)
    out = dllm.generate(llada_pipe, input_ids=[prompt], gen_length=16, block_length=8, steps=8,
                        strategy="low_confidence", temperature=temperature, cfg_scale=cfg, seed=11)
    assert out.sequences[0] == ref and out.nfe == [8]


@needs_decoders
@pytest.mark.parametrize("name", ["low_confidence", "random", "threshold", "maskgit_plus", "origin",
                                  "entropy_threshold", "eb_sampler"])
def test_registered_strategies_run(pipe, name):
    s = decoders.get_strategy(name)
    out = dllm.generate(pipe, input_ids=[[8, 9, 10, 11], [12]], gen_length=8, block_length=4, steps=8,
                        strategy=name, temperature=0.5, return_order=True, suppress_mask_token=True)
    mask_id = pipe.config.mask_token_id
    assert all(mask_id not in r for r in out.sequences)
    if s.schedule == "fixed":
        assert out.nfe == [8, 8]
    else:
        assert 2 <= out.nfe[0] <= 8
    for order in out.decoding_order:
        assert max(order[:4]) < min(order[4:])  # block 0 is finished before block 1 starts
