"""HFModelAdapter: a transformers-style model (``.logits`` output, HF config) decodes like the native model."""
from types import SimpleNamespace

import pytest
import torch

import dllm
from dllm.models.hf_adapter import HFModelAdapter
from dllm.models.torch_loader import load_torch_model


class FakeHF(torch.nn.Module):
    """Stands in for ``AutoModel.from_pretrained(..., trust_remote_code=True)``: HF config attributes, raw
    (unshifted) logits in ``.logits``; ``with_positions=False`` mimics LLaDA's remote code (no position_ids)."""

    def __init__(self, inner, with_positions=True):
        super().__init__()
        self.inner = inner
        c = inner.config
        self.config = SimpleNamespace(vocab_size=c.vocab_size, mask_token_id=c.mask_token_id,
                                      eos_token_id=c.eos_token_id, pad_token_id=c.pad_token_id,
                                      model_type="Dream" if c.layout == "dream" else "llada")
        if not with_positions:
            self.forward = self._forward_no_positions

    def forward(self, input_ids, attention_mask=None, position_ids=None):
        mask = None if attention_mask is None else attention_mask.bool()
        return SimpleNamespace(logits=self.inner.raw_logits(input_ids, mask, position_ids))

    def _forward_no_positions(self, input_ids, attention_mask=None):
        return (self.inner.raw_logits(input_ids, None if attention_mask is None else attention_mask.bool()),)


@pytest.mark.parametrize("layout", ["llada", "dream"])
def test_adapter_decodes_like_the_native_model(make_checkpoint, layout):
    path = make_checkpoint(layout)
    native = load_torch_model(path)
    adapter = HFModelAdapter(FakeHF(native))
    assert adapter.shift_logits == (layout == "dream")
    ids = torch.tensor([[8, 9, 10, 11, 12]])
    torch.testing.assert_close(adapter(ids), native(ids))
    kw = dict(input_ids=[[8, 9, 10, 11], [12, 13]], gen_length=8, block_length=4, steps=8, strategy="low_confidence")
    assert dllm.generate(adapter, **kw).sequences == dllm.generate(native, **kw).sequences


def test_adapter_without_position_ids(make_checkpoint):
    native = load_torch_model(make_checkpoint("llada"))
    adapter = HFModelAdapter(FakeHF(native, with_positions=False))
    ids = torch.tensor([[8, 9, 10]])
    pos = torch.tensor([[0, 1, 2]])
    torch.testing.assert_close(adapter(ids, position_ids=pos), native(ids))  # positions not forwarded


def test_adapter_needs_a_mask_id(make_checkpoint):
    fake = FakeHF(load_torch_model(make_checkpoint("llada")))
    fake.config.mask_token_id = None
    with pytest.raises(ValueError, match="mask_token_id"):
        HFModelAdapter(fake)
    assert HFModelAdapter(fake, mask_token_id=5).config.mask_token_id == 5
