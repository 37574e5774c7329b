"""Masked-diffusion training of the project's reference dLLM (``dllm train``).

Objective (LLaDA SFT, arXiv 2502.09992 §2.3): the prompt stays clean; each answer position (answer + EOS padding)
is masked independently with probability ``t``; the model predicts the masked tokens. Deliberate differences:

* ``t`` is *stratified* over the batch (``t_b = (b + u) / B``, clipped to ``[t_min, 1]``), and the loss is the
  mean cross-entropy over each row's masked positions, averaged over rows. This is a lower-variance weighting than
  LLaDA's ``1/t`` (which multiplies the loss of nearly-clean rows by up to ``1/t_min``); with small models it
  converges much faster on the list tasks.
* Positions are ``cumsum(attention_mask) - 1`` on left-padded rows, exactly as the engine decodes.

Everything is seeded: the batch of step ``s`` is a pure function of ``(seed, s)``, so a resumed run sees the same
data as an uninterrupted one. State (model, optimizer, scheduler, step, RNG) is saved atomically to
``OUT/train_state.pt`` every ``--save-every`` steps and on Ctrl-C; re-running the same command resumes.
The finished model is exported to ``OUT/model/`` in the LLaDA checkpoint layout with its tokenizer.
"""
from __future__ import annotations

import json
import math
import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from dllm.models.config import DLLMConfig
from dllm.models.torch_loader import save_torch_model
from dllm.models.torch_model import DiffusionTransformer

from .data import Example, batch_for_step, collate


#: TrainConfig fields a resumed run must keep (the architecture, the data stream).
FIXED_FIELDS = ("hidden_size", "num_layers", "num_heads", "intermediate_size", "rope_theta", "seed", "batch_size",
                "tasks", "init")

#: ``TrainConfig.init`` values: random weights, or random weights with the circuit of :mod:`distill.circuit_init`.
INIT_SCHEMES = ("normal", "binding_circuit")


@dataclass(frozen=True)
class TrainConfig:
    out: str = "runs/reference"
    steps: int = 2200
    batch_size: int = 48
    lr: float = 1.5e-3
    min_lr_ratio: float = 0.05
    warmup: int = 200
    decay_start: int = 0  # warmup-stable-decay: constant lr until this step, then the cosine (0: cosine after warmup)
    decay_end: int = 0  # the step the cosine reaches lr * min_lr_ratio (0: steps); lets a run stop mid-anneal
    weight_decay: float = 0.05
    scaled_init: bool = True  # residual output projections drawn at std 0.02 / sqrt(2 * num_layers) (GPT-2 style)
    embed_std: float = 0.02  # init std of the input embeddings (1.0: token identity dominates the residual stream)
    init: str = "normal"  # "binding_circuit": start from the previous-token / content-match circuit (circuit_init)
    grad_clip: float = 1.0
    t_min: float = 0.02
    seed: int = 0
    hidden_size: int = 192
    num_layers: int = 6
    num_heads: int = 6
    intermediate_size: int = 512
    rope_theta: float = 10000.0
    save_every: int = 250
    log_every: int = 25
    threads: int = 2
    bf16: bool = True
    tasks: str = "offline"
    zero_shot_fraction: float = 0.0  # curriculum: train rows without the one-shot turn (see distill.reference)
    lookup_fraction: float = 0.0  # curriculum: rows of the train-only last-name lookup task (distill.lookup)
    aux_tasks: str = ""  # curriculum: "NAME=FRACTION,..." rows of train-only short tasks (distill.aux_tasks)
    task_weights: str = ""  # curriculum: "PATTERN=W,..." sampling weights of the tasks (unlisted: 1; "": uniform)
    reinit_heads: str = ""  # "LAYER.HEAD,...": attention heads redrawn once, when a run first trains with this value
    length_buckets: int = 4  # rows sorted by length into up to this many padded micro-batches (same loss, less padding)
    device: str = "cpu"  # "cuda" (or "cuda:N") to train on a GPU; a run may be resumed on another device

    def __post_init__(self):
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {self.device!r}")
        if not 0.0 <= self.zero_shot_fraction <= 1.0:
            raise ValueError(f"zero_shot_fraction must be in [0, 1], got {self.zero_shot_fraction}")
        if not 0.0 <= self.lookup_fraction <= 1.0:
            raise ValueError(f"lookup_fraction must be in [0, 1], got {self.lookup_fraction}")
        from .aux_tasks import parse_aux_fractions

        parse_aux_fractions(self.aux_tasks)  # raises, naming the bad entry
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.length_buckets < 1:
            raise ValueError(f"length_buckets must be >= 1 (1: one padded batch), got {self.length_buckets}")
        if not 0.0 < self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must be in (0, 1] (1.0 keeps the lr constant), got {self.min_lr_ratio}")
        # a run stopped before its anneal (decay_end set) may end before decay_start
        if not 0 <= self.decay_start < max(1, self.decay_end or self.steps):
            raise ValueError(f"decay_start must be in [0, decay_end or steps) (0: decay right after warm-up), got "
                             f"{self.decay_start} with steps={self.steps}, decay_end={self.decay_end}")
        if self.decay_end and self.decay_end <= max(self.warmup, self.decay_start):
            raise ValueError(f"decay_end must be 0 (= steps) or above warmup and decay_start, got {self.decay_end} "
                             f"with warmup={self.warmup}, decay_start={self.decay_start}")
        parse_heads(self.reinit_heads, self.num_layers, self.num_heads)  # raises, naming the bad entry
        if self.embed_std <= 0:
            raise ValueError(f"embed_std must be > 0, got {self.embed_std}")
        if self.init not in INIT_SCHEMES:
            raise ValueError(f"init must be one of {INIT_SCHEMES}, got {self.init!r}")
        if self.lr <= 0 or self.steps < 0 or self.batch_size < 1:
            raise ValueError(f"need lr > 0, steps >= 0 and batch_size >= 1; got lr={self.lr}, steps={self.steps}, "
                             f"batch_size={self.batch_size}")

    def to_dict(self) -> dict:
        return asdict(self)


def parse_heads(spec: str, num_layers: int, num_heads: int,
                field: str = "reinit_heads") -> tuple[tuple[int, int], ...]:
    """``((layer, head), ...)`` from ``"LAYER.HEAD,..."`` (0-based; ``()`` for ``""``).

    Raises:
        ValueError: a malformed entry, or a layer/head outside the model; the message names the entry.
    """
    heads = []
    for entry in filter(None, (e.strip() for e in spec.split(","))):
        try:
            layer, head = (int(x) for x in entry.split("."))
        except ValueError:
            raise ValueError(f"{field} entry {entry!r} is not LAYER.HEAD (e.g. '1.4')") from None
        if not (0 <= layer < num_layers and 0 <= head < num_heads):
            raise ValueError(f"{field} entry {entry!r}: the model has layers 0-{num_layers - 1} and heads "
                             f"0-{num_heads - 1}")
        heads.append((layer, head))
    return tuple(heads)


def reinit_heads(model: DiffusionTransformer, opt: torch.optim.Optimizer, heads, generator: torch.Generator) -> None:
    """Redraw the query/key/value rows and output-projection columns of the given ``(layer, head)`` attention heads
    at the init std (0.02) and zero their AdamW moments; the rest of the model and optimizer state is untouched.

    Frees heads a trained model barely uses (small loss increase when zeroed) so that training can grow a new
    circuit there, e.g. the early previous-token head an induction step needs (docs/reference_model.md,
    session 13). The redrawn heads add a small perturbation; the trained heads they feed adapt.
    """
    hd = model.config.head_dim
    for layer, head in heads:
        block = model.layers[layer]
        rows = slice(head * hd, (head + 1) * hd)
        for weight, index in ((block.q_proj.weight, (rows,)), (block.k_proj.weight, (rows,)),
                              (block.v_proj.weight, (rows,)), (block.o_proj.weight, (slice(None), rows))):
            with torch.no_grad():
                fresh = torch.randn(weight[index].shape, generator=generator) * 0.02
                weight[index] = fresh.to(weight.device, weight.dtype)
            state = opt.state.get(weight, {})
            for key in ("exp_avg", "exp_avg_sq"):
                if key in state:
                    state[key][index] = 0


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, then constant until ``decay_start`` (the stable phase of a warmup-stable-decay schedule,
    Hägele et al. 2024, arXiv 2405.18392; lets a long constant-lr run be resumed and annealed at the end), then a
    cosine down to ``lr * min_lr_ratio`` at ``decay_end`` (0: at ``steps``). A ``decay_end`` past ``steps`` keeps
    the schedule of the longer run when a run is stopped and resumed with other flags mid-anneal (recipe phases)."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    begin = max(cfg.warmup, cfg.decay_start)
    end = cfg.decay_end or cfg.steps
    progress = min(1.0, max(0, step - begin) / max(1, end - begin))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def draw_masked_answer_slots(answer_mask: torch.Tensor, t_min: float, generator: torch.Generator) -> torch.Tensor:
    """Mask each answer slot with its row's stratified rate ``t_b = (b + u) / B`` (clipped to ``t_min``).

    ``answer_mask [B, T]`` bool → ``masked [B, T]`` bool. Draws ``rand(B)`` then ``rand(B, T)`` from
    ``generator`` (callers that add their own draws rely on this order).
    """
    B = answer_mask.shape[0]
    t = ((torch.arange(B) + torch.rand(B, generator=generator)) / B).clamp(min=t_min)[:, None]
    return (torch.rand(answer_mask.shape, generator=generator) < t) & answer_mask


def ensure_one_masked(masked: torch.Tensor, answer_mask: torch.Tensor) -> torch.Tensor:
    """Every row trains on at least one position: mask its first answer slot if nothing was drawn."""
    first = answer_mask & (answer_mask.long().cumsum(-1) == 1)
    return masked | (first & ~masked.any(-1, keepdim=True))


def draw_training_masks(answer_mask: torch.Tensor, unmasked: torch.Tensor, t_min: float,
                        generator: torch.Generator) -> torch.Tensor:
    """The training masks ``[B, T]`` bool: :func:`draw_masked_answer_slots` (the same draws whatever ``unmasked``
    holds, so rows without given slots see the masks they always had), minus the ``unmasked [B, T]`` slots, then
    :func:`ensure_one_masked` over the slots that may be masked."""
    maskable = answer_mask & ~unmasked
    return ensure_one_masked(draw_masked_answer_slots(answer_mask, t_min, generator) & maskable, maskable)


def masked_ce(model, batch: dict, masked: torch.Tensor, mask_id: int,
              bf16: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace ``masked [B, T]`` slots of ``batch["input_ids"]`` by ``mask_id`` and score the model on them.

    Returns ``(loss, ce)``: ``loss`` is the mean CE over each row's masked slots, averaged over rows (rows with
    no masked slot count as 0); ``ce [M]`` is the CE of every masked slot in row-major order.
    """
    ids = batch["input_ids"]
    masked = masked.to(ids.device)
    noisy = torch.where(masked, torch.full_like(ids, mask_id), ids)
    with torch.autocast(ids.device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = model.raw_logits(noisy, batch["attention_mask"], batch["position_ids"])
    ce = F.cross_entropy(logits[masked].float(), ids[masked], reduction="none")
    row = torch.nonzero(masked)[:, 0]
    per_row = torch.zeros(ids.shape[0], device=ids.device).index_add_(0, row, ce) / masked.sum(-1).clamp(min=1)
    return per_row.mean(), ce


def masked_diffusion_loss(model, batch: dict, mask_id: int, t_min: float, generator: torch.Generator,
                          bf16: bool = False) -> torch.Tensor:
    """Mean CE over masked answer positions per row, averaged over rows (see module docstring).

    Masks are drawn on the CPU ``generator`` whatever the batch's device, so a run is the same data and masks on
    CPU and GPU."""
    masked = draw_training_masks(batch["answer_mask"].cpu(), batch["answer_unmasked"].cpu(), t_min, generator)
    return masked_ce(model, batch, masked, mask_id, bf16=bf16)[0]


def length_buckets(examples: Sequence[Example], n_buckets: int) -> list[list[int]]:
    """Row indices sorted by ``prompt + answer`` length and cut into ``n_buckets`` near-equal chunks (ties keep
    batch order), so each chunk is padded only to its own longest row."""
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].prompt_ids) + len(examples[i].answer_ids))
    size, extra = divmod(len(order), n_buckets)
    chunks, start = [], 0
    for k in range(n_buckets):
        end = start + size + (k < extra)
        if end > start:
            chunks.append(order[start:end])
        start = end
    return chunks


def bucketed_loss_backward(model, examples: Sequence[Example], pad_id: int, mask_id: int, t_min: float,
                           generator: torch.Generator, n_buckets: int, device: torch.device,
                           bf16: bool = False) -> float:
    """:func:`masked_diffusion_loss` of the whole batch, back-propagated bucket by bucket; returns its value.

    The masks are drawn once on the full left-padded batch ``[B, T]`` (the same draws as the unbucketed loss);
    answer slots are the last columns of every row, so a bucket padded to ``T_k <= T`` takes the last ``T_k``
    columns of its rows' masks. Each bucket's row-mean loss is weighted by ``rows_k / B``: the summed gradient
    is the full batch's, with about 30 % less padding on the one-shot/zero-shot mixture (lengths ~95-275).
    """
    full = collate(examples, pad_id)
    masked = draw_training_masks(full["answer_mask"], full["answer_unmasked"], t_min, generator)
    total = 0.0
    for rows in length_buckets(examples, n_buckets):
        batch = collate([examples[i] for i in rows], pad_id)
        batch = {k: v.to(device) for k, v in batch.items()}
        width = batch["input_ids"].shape[1]
        loss = masked_ce(model, batch, masked[rows][:, -width:], mask_id, bf16=bf16)[0] * (len(rows) / len(examples))
        loss.backward()
        total += loss.item()
    return total


def build_model(cfg: TrainConfig, tokenizer) -> DiffusionTransformer:
    from .word_tokenizer import special_ids

    ids = special_ids(tokenizer)
    mcfg = DLLMConfig(
        layout="llada", vocab_size=len(tokenizer), hidden_size=cfg.hidden_size, num_layers=cfg.num_layers,
        num_heads=cfg.num_heads, num_kv_heads=cfg.num_heads, intermediate_size=cfg.intermediate_size,
        max_position_embeddings=1024, rope_theta=cfg.rope_theta, rms_norm_eps=1e-5,
        mask_token_id=ids["mask"], eos_token_id=ids["eos"], pad_token_id=ids["pad"], bos_token_id=ids["bos"],
        eot_token_id=ids["eot"],
    )
    torch.manual_seed(cfg.seed)
    model = DiffusionTransformer(mcfg)
    for name, p in model.named_parameters():
        if p.dim() == 2:
            torch.nn.init.normal_(p, std=cfg.embed_std if name == "embed.weight" else 0.02)
            if cfg.scaled_init and name.endswith(("o_proj.weight", "down_proj.weight")):
                p.data.mul_(1 / math.sqrt(2 * cfg.num_layers))
    if cfg.init == "binding_circuit":
        from .circuit_init import install_binding_circuit

        install_binding_circuit(model, torch.Generator().manual_seed(cfg.seed))
    return model


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train(cfg: TrainConfig, make_example, tokenizer, progress: bool = True) -> Path:
    """Run (or resume) training; returns the exported model folder."""
    from tqdm import tqdm

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    state_path = out / "train_state.pt"
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {cfg.device}: this torch build sees no CUDA device; use --device cpu.")
    model = build_model(cfg, tokenizer).to(device)
    decay = [p for n, p in model.named_parameters() if p.dim() == 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98))
    step, ema, elapsed_before, reinit_done = 0, None, 0.0, []
    if state_path.exists():
        state = torch.load(state_path, weights_only=False, map_location="cpu")
        saved = state["config"]
        for key in FIXED_FIELDS:
            was = saved.get(key, getattr(TrainConfig, key))  # a state older than the field: its default
            if was != getattr(cfg, key):
                raise ValueError(f"--{key.replace('_', '-')} is {getattr(cfg, key)!r} but the run in {out} was "
                                 f"started with {was!r}; use another --out or the same setting.")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step = state["step"]
        # Older states lack these: the log's EMA and clock then restart at the resume.
        ema, elapsed_before = state.get("loss_ema"), state.get("elapsed_s", 0.0)
        reinit_done = state.get("reinit_heads", [])
    if cfg.reinit_heads and cfg.reinit_heads not in reinit_done:  # once per value, at the step it is first seen
        reinit_heads(model, opt, parse_heads(cfg.reinit_heads, cfg.num_layers, cfg.num_heads),
                     torch.Generator().manual_seed(cfg.seed * 1_000_003 + step + 7))
        reinit_done = [*reinit_done, cfg.reinit_heads]
        print(f"step {step}: redrew attention heads {cfg.reinit_heads}")
    (out / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    tokenizer.save_pretrained(str(out / "tokenizer"))
    mask_id, pad_id = model.config.mask_token_id, model.config.pad_token_id

    def save(step_done: int):
        _atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step_done,
                      "config": cfg.to_dict(), "loss_ema": ema, "elapsed_s": elapsed(),
                      "reinit_heads": reinit_done}, state_path)

    def elapsed() -> float:  # training wall time over all sessions of this run
        return round(elapsed_before + time.time() - t0, 1)

    interrupted = {"flag": False}

    def on_sigint(signum, frame):
        interrupted["flag"] = True

    old = signal.signal(signal.SIGINT, on_sigint)
    log = open(out / "loss_log.jsonl", "a")
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, desc="train", dynamic_ncols=True)
    model.train()
    t0 = time.time()
    try:
        while step < cfg.steps and not interrupted["flag"]:
            examples = batch_for_step(make_example, step, cfg.batch_size, cfg.seed)
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
            for g in opt.param_groups:
                g["lr"] = lr_at(cfg, step)
            opt.zero_grad(set_to_none=True)
            value = bucketed_loss_backward(model, examples, pad_id, mask_id, cfg.t_min, gen, cfg.length_buckets,
                                           device, bf16=cfg.bf16)
            gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            step += 1
            ema = value if ema is None else 0.98 * ema + 0.02 * value
            bar.update(1)
            bar.set_postfix(loss=f"{ema:.4f}", lr=f"{lr_at(cfg, step - 1):.2e}")
            if step % cfg.log_every == 0 or step == cfg.steps:
                log.write(json.dumps({"step": step, "loss": value, "loss_ema": ema, "grad_norm": float(gnorm),
                                      "lr": lr_at(cfg, step - 1), "elapsed_s": elapsed()}) + "\n")
                log.flush()
            if step % cfg.save_every == 0:
                save(step)
                export(model, tokenizer, out / "model")
    finally:
        signal.signal(signal.SIGINT, old)
        bar.close()
        log.close()
        save(step)
    export(model, tokenizer, out / "model")
    if interrupted["flag"]:
        print(f"interrupted at step {step}; re-run the same command to resume from {state_path}")
    return out / "model"


def saved_step(out: str | Path) -> int:
    """The step of the training state saved in run folder ``out`` (0 if there is none yet)."""
    state_path = Path(out) / "train_state.pt"
    if not state_path.exists():
        return 0
    return int(torch.load(state_path, weights_only=False, map_location="cpu")["step"])


def export(model: DiffusionTransformer, tokenizer, path: Path) -> None:
    save_torch_model(model, path)
    tokenizer.save_pretrained(str(path))
