"""Shared fixtures: tiny random checkpoints in both real layouts (see ``dllm.testing``).

Fixtures (session-scoped, built once):

* ``make_checkpoint(layout="llada", sharded=False, tokenizer=True, dtype=None, seed=0) -> Path``: a factory,
  cached per argument set; folders are in the real format (config.json, safetensors under the real names,
  optional WordLevel tokenizer with a chat template).
* ``llada_dir`` / ``dream_dir``: single-file checkpoints with tokenizer.
* ``llada_sharded_dir`` / ``dream_sharded_dir``: sharded + ``model.safetensors.index.json``.
* ``no_tokenizer_dir``: a LLaDA folder with weights and config only.
* ``llada_pipe`` / ``dream_pipe``: loaded ``dllm.Pipeline`` objects (float32, CPU).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

try:  # the machine is shared: keep the tiny models on one thread
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass


@pytest.fixture
def leak_collate(monkeypatch):
    """``leak_collate(module, oracle)``: patch ``module.collate`` so each clean batch it builds is also handed to
    ``oracle.truth`` (the side channel a test model that "knows the answer" reads)."""
    def install(module, oracle):
        real_collate = module.collate

        def collate_and_leak(examples, pad_id):
            batch = real_collate(examples, pad_id)
            oracle.truth = batch["input_ids"]
            return batch

        monkeypatch.setattr(module, "collate", collate_and_leak)

    return install


@pytest.fixture(scope="session")
def make_checkpoint(tmp_path_factory):
    from dllm.testing import make_tiny_checkpoint

    cache: dict[tuple, Path] = {}

    def make(layout: str = "llada", sharded: bool = False, tokenizer: bool = True, dtype: str | None = None,
             seed: int = 0) -> Path:
        key = (layout, sharded, tokenizer, dtype, seed)
        if key not in cache:
            name = f"{layout}-{'sharded' if sharded else 'single'}-{'tok' if tokenizer else 'notok'}-{dtype}-{seed}"
            cache[key] = make_tiny_checkpoint(tmp_path_factory.mktemp(name), layout, sharded=sharded,
                                              tokenizer=tokenizer, dtype=dtype, seed=seed)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def llada_dir(make_checkpoint):
    return make_checkpoint("llada")


@pytest.fixture(scope="session")
def dream_dir(make_checkpoint):
    return make_checkpoint("dream")


@pytest.fixture(scope="session")
def llada_sharded_dir(make_checkpoint):
    return make_checkpoint("llada", sharded=True)


@pytest.fixture(scope="session")
def dream_sharded_dir(make_checkpoint):
    return make_checkpoint("dream", sharded=True)


@pytest.fixture(scope="session")
def no_tokenizer_dir(make_checkpoint):
    return make_checkpoint("llada", tokenizer=False)


@pytest.fixture(scope="session")
def llada_pipe(llada_dir):
    import dllm

    return dllm.load(llada_dir, device="cpu")


@pytest.fixture(scope="session")
def dream_pipe(dream_dir):
    import dllm

    return dllm.load(dream_dir, device="cpu")


@pytest.fixture(scope="session", params=["llada", "dream"])
def pipe(request, llada_pipe, dream_pipe):
    """Both layouts, loaded."""
    return llada_pipe if request.param == "llada" else dream_pipe


@pytest.fixture(scope="session")
def ref_tok():
    """The shipped reference model's word tokenizer, loaded by ``transformers.AutoTokenizer``."""
    from transformers import AutoTokenizer

    import dllm.api

    return AutoTokenizer.from_pretrained(str(dllm.api.default_model_path()))
