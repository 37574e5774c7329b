"""Python API: ``dllm.load``, ``dllm.generate``, ``dllm.iterate``.

>>> import dllm                                                       # doctest: +SKIP
>>> pipe = dllm.load("path/to/LLaDA-8B-Instruct", dtype="bfloat16")  # doctest: +SKIP
>>> out = dllm.generate(pipe, "What is 2 + 2?", gen_length=64, block_length=32, steps=64,
...                     strategy={"type": "threshold", "threshold": 0.9})  # doctest: +SKIP
>>> out.texts[0], out.nfe[0], out.tokens_per_forward[0]             # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from .config import DecodeConfig
from .decoding import run_to_end
from .outputs import GenerationOutput, StepEvent

#: Folder of the project's reference model, used when no model is given.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "reference_model"


def default_model_path() -> Path:
    """The reference model folder, or a clear error if it is not there."""
    if not (DEFAULT_MODEL_DIR / "config.json").is_file():
        raise FileNotFoundError(
            f"no model given and the default reference model folder {str(DEFAULT_MODEL_DIR)!r} does not exist "
            "(or has no config.json); pass a checkpoint folder (dllm.load(path) / --model DIR).")
    return DEFAULT_MODEL_DIR


@contextlib.contextmanager
def _quiet_transformers():
    """Silence transformers' 'model of type llada' notice while AutoTokenizer reads config.json."""
    try:
        from transformers.utils import logging as tlog
    except Exception:  # noqa: BLE001
        yield
        return
    old = tlog.get_verbosity()
    tlog.set_verbosity_error()
    try:
        yield
    finally:
        tlog.set_verbosity(old)


@dataclass
class Pipeline:
    """A loaded model with its tokenizer (``None`` when the folder has no tokenizer files).

    Attributes:
        model: the backend model (architecture.md §1 protocol); ``model.config`` is a ``DLLMConfig``.
        tokenizer: a ``transformers`` tokenizer or None.
        path: the checkpoint folder it was loaded from (None for an in-memory model).
        backend: ``"torch"`` (:class:`dllm.engine.Engine`) or ``"jax"`` (:class:`dllm.jax_engine.JaxEngine`).
        engine_options: keyword arguments of the backend's engine (JAX: ``mesh``, ``batch_axis``, ``noise``,
            ``compile_loop``).
    """

    model: Any = field(repr=False)
    tokenizer: Any = field(default=None, repr=False)
    path: Path | None = None
    backend: str = "torch"
    engine_options: dict = field(default_factory=dict, repr=False)
    _engine: Any = field(default=None, init=False, repr=False)
    _other_backends: dict = field(default_factory=dict, init=False, repr=False)

    @property
    def config(self):
        return self.model.config

    @property
    def engine(self):
        if self._engine is None:
            if self.backend == "jax":
                from .jax_engine import JaxEngine

                self._engine = JaxEngine(self.model, eot_id=self.eot_id, **self.engine_options)
            elif self.backend == "torch":
                from .engine import Engine

                self._engine = Engine(self.model, eot_id=self.eot_id, **self.engine_options)
            else:
                raise ValueError(f"backend must be 'torch' or 'jax', got {self.backend!r}.")
        return self._engine

    def with_backend(self, backend: str | None, **engine_options) -> "Pipeline":
        """This pipeline on another backend (cached): torch -> jax converts the weights in memory; jax -> torch
        reloads ``path``. ``backend=None`` or the same backend returns ``self``."""
        if backend is None or (backend == self.backend and not engine_options):
            return self
        if backend not in ("torch", "jax"):
            raise ValueError(f"backend must be 'torch' or 'jax', got {backend!r}.")
        key = (backend, tuple(sorted((k, id(v)) for k, v in engine_options.items())))
        if key not in self._other_backends:
            if backend == self.backend:
                model = self.model
            elif backend == "jax":
                from .jax_engine import jax_model_from_torch

                model = jax_model_from_torch(self.model)
            elif self.path is not None:
                from .models import load_model

                model = load_model(self.path, backend="torch", dtype=str(self.model.dtype), device="cpu")
            else:
                raise ValueError("a JAX pipeline without a checkpoint folder cannot be moved to backend 'torch'; "
                                 "load the folder with dllm.load(path, backend='torch').")
            self._other_backends[key] = Pipeline(model=model, tokenizer=self.tokenizer, path=self.path,
                                                 backend=backend, engine_options=dict(engine_options))
        return self._other_backends[key]

    @property
    def eot_id(self) -> int | None:
        """End-of-turn id: ``config.json``'s ``eot_token_id``, else the tokenizer's ``<|eot_id|>`` (LLaDA) or
        ``<|im_end|>`` (Dream), else LLaDA's 126348 for the real LLaDA vocabulary (strategies.md §7)."""
        cfg = self.model.config
        if getattr(cfg, "eot_token_id", None) is not None:
            return cfg.eot_token_id
        tok = self.tokenizer
        if tok is not None:
            vocab = tok.get_vocab()
            for name in ("<|eot_id|>", "<|im_end|>"):
                if name in vocab:
                    return int(vocab[name])
        if getattr(cfg, "layout", None) == "llada" and getattr(cfg, "vocab_size", None) == 126464:
            return 126348
        return None

    def encode(self, prompts, apply_chat_template: bool = True) -> list[list[int]]:
        """Token ids of each prompt.

        A prompt is a string (wrapped in the chat template as one user turn + generation prompt when
        ``apply_chat_template`` and the tokenizer has one) or a chat: a list of ``{"role", "content"}`` messages
        (e.g. a one-shot exchange followed by the question), always rendered with the chat template."""
        if self.tokenizer is None:
            raise ValueError("text prompts need a tokenizer, but the model folder has no tokenizer files; "
                             "pass token ids (input_ids=... / --input-ids) instead.")
        if isinstance(prompts, str) or _is_chat(prompts):
            prompts = [prompts]
        tok = self.tokenizer
        out = []
        for p in prompts:
            if _is_chat(p):
                if not getattr(tok, "chat_template", None):
                    raise ValueError("a chat prompt (list of messages) needs a tokenizer with a chat template.")
                text = tok.apply_chat_template(list(p), add_generation_prompt=True, tokenize=False)
                out.append(list(tok(text, add_special_tokens=False)["input_ids"]))
                continue
            if not isinstance(p, str):
                raise ValueError(f"prompts must be strings or chats (lists of {{'role', 'content'}} dicts), "
                                 f"got {type(p).__name__}: {p!r}.")
            if apply_chat_template and getattr(tok, "chat_template", None):
                text = tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                               tokenize=False)
                out.append(list(tok(text, add_special_tokens=False)["input_ids"]))
            else:
                out.append(list(tok(p)["input_ids"]))
        return out

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids`` without special tokens ("" without a tokenizer)."""
        if self.tokenizer is None:
            return ""
        return self.tokenizer.decode(list(ids), skip_special_tokens=True).strip()

    def generate(self, prompts=None, input_ids=None, **kwargs) -> GenerationOutput:
        """:func:`dllm.generate` on this pipeline."""
        return generate(self, prompts, input_ids, **kwargs)

    def iterate(self, prompts=None, input_ids=None, **kwargs) -> Iterator[StepEvent]:
        """:func:`dllm.iterate` on this pipeline."""
        return iterate(self, prompts, input_ids, **kwargs)


LoadedModel = Pipeline


def _is_chat(p) -> bool:
    return isinstance(p, (list, tuple)) and len(p) > 0 and all(isinstance(m, dict) and "role" in m for m in p)


def load(path: str | Path | None = None, backend: str = "torch", dtype: str = "float32", device: str | None = None,
         trust_remote_code: bool = False, mesh=None, engine_options: dict | None = None) -> Pipeline:
    """Load a LLaDA- or Dream-layout checkpoint folder and its tokenizer.

    Args:
        path: checkpoint folder (``config.json`` + safetensors, tokenizer files optional). ``None``: the project's
            reference model (``dllm/reference_model/``).
        backend: ``"torch"``, ``"jax"`` (flax.nnx model, decoded by :class:`dllm.jax_engine.JaxEngine`) or
            ``"hf"`` (the checkpoint's own ``transformers`` model, e.g. remote code, behind
            :class:`dllm.models.hf_adapter.HFModelAdapter`; decoded by the torch engine).
        dtype: ``"float32"`` | ``"bfloat16"`` | ``"float16"``.
        device: torch device; default ``"cuda"`` when available, else ``"cpu"`` (JAX uses its default device).
        trust_remote_code: forwarded to ``AutoTokenizer`` (Dream's tokenizer ships code) and, with backend
            ``"hf"``, to ``AutoModel``; only for trusted folders.
        mesh: JAX only: a ``jax.sharding.Mesh``; the batch axis is sharded over its ``"batch"`` axis.
        engine_options: more engine keyword arguments (JAX: ``noise="torch" | "jax"``, ``batch_axis``,
            ``compile_loop``).
    """
    from .models import load_model, load_tokenizer

    path = default_model_path() if path is None else Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"model folder {str(path)!r} does not exist.")
    if backend in ("torch", "hf") and device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_model(path, backend=backend, dtype=dtype, device=device, trust_remote_code=trust_remote_code)
    if backend == "hf":  # a transformers model behind the adapter: decoded by the torch engine
        backend = "torch"
    with _quiet_transformers():
        tokenizer = load_tokenizer(path, trust_remote_code=trust_remote_code)
    opts = dict(engine_options or {})
    if mesh is not None:
        if backend != "jax":
            raise ValueError(f"mesh is for backend 'jax', got backend={backend!r}.")
        opts["mesh"] = mesh
    return Pipeline(model=model, tokenizer=tokenizer, path=path, backend=backend, engine_options=opts)


def as_pipeline(model_or_path, backend: str | None = None) -> Pipeline:
    """A :class:`Pipeline` from a pipeline, a checkpoint folder, ``None`` (reference model) or a bare model.

    ``backend`` (``"torch"`` / ``"jax"``, None = as loaded / torch for folders) moves a pipeline to that backend
    (:meth:`Pipeline.with_backend`)."""
    if isinstance(model_or_path, Pipeline):
        return model_or_path.with_backend(backend)
    if model_or_path is None or isinstance(model_or_path, (str, Path)):
        return load(model_or_path, backend=backend or "torch")
    if callable(model_or_path) and hasattr(model_or_path, "config"):
        import sys

        is_jax = "flax" in sys.modules and type(model_or_path).__module__.startswith("dllm.models.jax_model")
        return Pipeline(model=model_or_path, backend="jax" if is_jax else "torch").with_backend(backend)
    raise ValueError(f"model_or_path must be a Pipeline, a checkpoint folder, None or a model with a config, "
                     f"got {type(model_or_path).__name__}.")


def _prompt_ids(pipe: Pipeline, prompts, input_ids, apply_chat_template: bool) -> list[list[int]]:
    if (prompts is None) == (input_ids is None):
        raise ValueError("pass exactly one of prompts (text) or input_ids (token ids).")
    if prompts is not None:
        return pipe.encode(prompts, apply_chat_template=apply_chat_template)
    if hasattr(input_ids, "tolist"):
        input_ids = input_ids.tolist()
    input_ids = list(input_ids)
    if not input_ids:
        raise ValueError("input_ids is empty.")
    if all(isinstance(t, int) and not isinstance(t, bool) for t in input_ids):
        input_ids = [input_ids]  # one prompt given as a flat list
    rows = []
    for i, r in enumerate(input_ids):
        if hasattr(r, "tolist"):
            r = r.tolist()
        if isinstance(r, (str, bytes)) or not all(isinstance(t, int) and not isinstance(t, bool) for t in r):
            raise ValueError(f"input_ids[{i}] must be a list of integer token ids, got {r!r}.")
        rows.append([int(t) for t in r])
    return rows


def _split_strategy(strategy):
    """(object for the engine, plain-data form for DecodeConfig)."""
    from .decoding import resolve_strategy, strategy_label

    obj = resolve_strategy(strategy)
    if isinstance(strategy, (str, dict)):
        return obj, strategy
    if hasattr(obj, "to_dict"):
        return obj, obj.to_dict()
    return obj, strategy_label(obj)


def generate_from_config(model_or_path, config: DecodeConfig, prompts=None, input_ids=None, *, strategy=None,
                         apply_chat_template: bool = True, return_order: bool = False, return_history: bool = False,
                         batch_size: int | None = None, backend: str | None = None) -> GenerationOutput:
    """:func:`generate` with the decoding parameters given as a :class:`~dllm.DecodeConfig`.

    ``strategy`` (an object) overrides ``config.strategy`` when given, e.g. for an unregistered strategy.
    """
    from .engine import answer_lengths

    pipe = as_pipeline(model_or_path, backend)
    rows = _prompt_ids(pipe, prompts, input_ids, apply_chat_template)
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}.")
    engine = pipe.engine
    strat = _split_strategy(config.strategy if strategy is None else strategy)[0]
    bs = batch_size or len(rows)
    eos = config.eos_id if config.eos_id is not None else engine.eos_id
    eot = config.eot_id if config.eot_id is not None else engine.eot_id
    seqs, nfe, steps, order, hist, bfw = [], [], [], [], [], []
    total = total_bfw = 0
    import torch

    def host(x):  # torch tensors (any device) / NumPy arrays (JAX engine) -> CPU tensors
        return x.cpu() if isinstance(x, torch.Tensor) else torch.as_tensor(x)

    for i in range(0, len(rows), bs):
        if pipe.backend == "jax":  # the whole decode loop compiled (no per-step events)
            res = engine.decode(rows[i:i + bs], config, strat, record_history=return_history)
        else:
            res = run_to_end(engine.run(rows[i:i + bs], config, strat, record_history=return_history))
        n = len(rows[i:i + bs])
        seqs.append(host(res.sequences))
        nfe += [res.nfe] * n
        steps += [res.steps] * n
        total += res.nfe
        b = res.nfe if getattr(res, "branch_forwards", None) is None else res.branch_forwards
        bfw += [b] * n
        total_bfw += b
        if return_order:
            order += host(res.decoding_order).tolist()
        if return_history:
            per_step = [h.tolist() for h in res.history]
            hist += [[h[r] for h in per_step] for r in range(n)]
    seq = torch.cat(seqs)
    n_ans = answer_lengths(seq, [eos, eot]).tolist()
    seq_list = seq.tolist()
    texts = [pipe.decode(s[:k]) for s, k in zip(seq_list, n_ans)]
    G = config.gen_length
    return GenerationOutput(
        sequences=seq_list, texts=texts, nfe=nfe, steps=steps, total_nfe=total, num_answer_tokens=n_ans,
        tokens_per_forward=[k / f if f else 0.0 for k, f in zip(n_ans, nfe)],
        tokens_per_step=[G / f if f else 0.0 for f in nfe],
        decoding_order=order if return_order else None, history=hist if return_history else None,
        prompt_ids=rows, config=config, branch_forwards=bfw, total_branch_forwards=total_bfw)


def _config(strategy, **fields):
    """A :class:`DecodeConfig` from the decoding keywords of :func:`generate` / :func:`iterate`, plus the strategy
    object when one was passed (it is not part of the serialisable config)."""
    obj, plain = _split_strategy(strategy)
    return DecodeConfig(strategy=plain, **fields), obj


def generate(model_or_path=None, prompts: str | Sequence[str] | None = None, input_ids=None, *,
             gen_length: int = 128, block_length: int | None = None, steps: int | None = None,
             strategy="low_confidence", temperature: float = 0.0, top_p: float | None = None,
             top_k: int | None = None, cfg_scale: float = 0.0, mask_id: int | None = None, eos_id: int | None = None,
             eot_id: int | None = None, logits_eos_inf: bool = False, confidence_eos_eot_inf: bool = False,
             llada_eos_quirk: bool = False, stop_on_eos: bool = False, suppress_mask_token: bool = False,
             seed: int = 0, apply_chat_template: bool = True, return_order: bool = False, return_history: bool = False,
             batch_size: int | None = None, backend: str | None = None) -> GenerationOutput:
    """Generate with a masked diffusion LM.

    Args:
        model_or_path: a :class:`Pipeline` (from :func:`load`), a checkpoint folder, or None (reference model).
        prompts: a text or list of texts (needs a tokenizer); wrapped in the chat template if there is one and
            ``apply_chat_template``.
        input_ids: token ids instead of text: one list or a list of lists (ragged; left-padded internally).
        gen_length, block_length, steps, temperature, top_p, top_k, cfg_scale, mask_id, eos_id, eot_id,
        logits_eos_inf, confidence_eos_eot_inf, llada_eos_quirk, stop_on_eos, suppress_mask_token, seed: see
            :class:`DecodeConfig`.
        strategy: registered name, ``{"type": name, ...}`` dict, or strategy object (``decoders``).
        return_order: fill ``decoding_order`` ``[B][gen_length]``.
        return_history: fill ``history`` ``[B][step][gen_length]``.
        batch_size: decode at most this many prompts per batch (default: all at once). Rows of one batch share
            forwards; greedy results do not depend on the batching (padding is invisible), sampled ones do.
        backend: ``"torch"`` / ``"jax"``: decode on that backend (a folder is loaded with it; a loaded pipeline is
            moved with :meth:`Pipeline.with_backend`); None: the pipeline's own backend (torch for folders).

    Returns:
        :class:`GenerationOutput` (``sequences``, ``texts``, ``nfe``, ``steps``, ``tokens_per_forward`` …).

    Raises:
        ValueError: bad parameters (naming the parameter and quoting the value).
    """
    cfg, obj = _config(strategy, gen_length=gen_length, block_length=block_length, steps=steps,
                       temperature=temperature, top_p=top_p, top_k=top_k, cfg_scale=cfg_scale, mask_id=mask_id,
                       eos_id=eos_id, eot_id=eot_id, logits_eos_inf=logits_eos_inf,
                       confidence_eos_eot_inf=confidence_eos_eot_inf, llada_eos_quirk=llada_eos_quirk,
                       stop_on_eos=stop_on_eos, suppress_mask_token=suppress_mask_token, seed=seed)
    return generate_from_config(model_or_path, cfg, prompts, input_ids, strategy=obj,
                                apply_chat_template=apply_chat_template, return_order=return_order,
                                return_history=return_history, batch_size=batch_size, backend=backend)


def iterate(model_or_path=None, prompts: str | Sequence[str] | None = None, input_ids=None, *,
            gen_length: int = 128, block_length: int | None = None, steps: int | None = None,
            strategy="low_confidence", temperature: float = 0.0, top_p: float | None = None,
            top_k: int | None = None, cfg_scale: float = 0.0, mask_id: int | None = None, eos_id: int | None = None,
            eot_id: int | None = None, logits_eos_inf: bool = False, confidence_eos_eot_inf: bool = False,
            llada_eos_quirk: bool = False, stop_on_eos: bool = False, suppress_mask_token: bool = False,
            seed: int = 0, apply_chat_template: bool = True, config: DecodeConfig | None = None,
            backend: str | None = None) -> Iterator[StepEvent]:
    """Decode all prompts as one batch, yielding a :class:`StepEvent` after every step (one per forward).

    Same arguments as :func:`generate`; ``config`` (a :class:`DecodeConfig`) replaces the decoding keywords when
    given. Stream the stable left prefix (up to the first mask) or per-block deltas from the events
    (strategies.md §6.4).

    >>> for ev in dllm.iterate(pipe, "Hi", gen_length=32, steps=32):   # doctest: +SKIP
    ...     print(ev.step, int(ev.committed.sum()), pipe.decode(ev.tokens[0].tolist()))
    """
    if config is None:
        config, obj = _config(strategy, gen_length=gen_length, block_length=block_length, steps=steps,
                              temperature=temperature, top_p=top_p, top_k=top_k, cfg_scale=cfg_scale,
                              mask_id=mask_id, eos_id=eos_id, eot_id=eot_id, logits_eos_inf=logits_eos_inf,
                              confidence_eos_eot_inf=confidence_eos_eot_inf, llada_eos_quirk=llada_eos_quirk,
                              stop_on_eos=stop_on_eos, suppress_mask_token=suppress_mask_token, seed=seed)
    else:
        obj = None
    pipe = as_pipeline(model_or_path, backend)
    rows = _prompt_ids(pipe, prompts, input_ids, apply_chat_template)
    # The engine's generator; its return value (StopIteration.value) is the engine's BatchResult.
    return pipe.engine.run(rows, config, obj)


__all__ = ["DEFAULT_MODEL_DIR", "Pipeline", "LoadedModel", "load", "generate", "generate_from_config", "iterate",
           "as_pipeline", "default_model_path"]
