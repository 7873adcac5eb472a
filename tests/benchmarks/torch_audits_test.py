"""The eager PyTorch audits of the benchmark agree with the JAX engine on the same weights."""

import jax.numpy as jnp
import numpy as np
import pytest
import torch

from attn_audit import audits, batch_engine
from attn_audit.interop import to_torch_state_dict
from benchmarks.torch_audits import BatchedStyle, OriginalStyle
from tests._fixtures import tiny_batch, tiny_model
from tests.reference.torch_model import load_torch_model


@pytest.mark.parametrize("encoder", ["lstm", "cnn", "average"])
def test_both_styles_match_the_jax_engine(encoder):
    model, params = tiny_model(encoder, "tanh", num_classes=3 if encoder == "cnn" else 2)
    twin = load_torch_model(to_torch_state_dict(params, model.config), model.config)
    batch = tiny_batch()
    instances = batch_engine.instances_from_batch({k: jnp.asarray(v) for k, v in batch.items()})
    expected = {
        "gradient": np.asarray(audits.engine.gradient_batch(model, params, instances)),
        "loo": np.asarray(audits.engine.loo_batch(model, params, instances)),
    }
    token_ids = torch.from_numpy(batch["token_ids"].astype(np.int64))
    lengths = torch.from_numpy(batch["lengths"].astype(np.int64))
    for style in (OriginalStyle(twin), BatchedStyle(twin)):
        # float32 on both sides; 1e-5 absorbs summation-order differences.
        np.testing.assert_allclose(style.gradient(token_ids, lengths), expected["gradient"],
                                   atol=1e-5)  # fmt: skip
        np.testing.assert_allclose(style.loo(token_ids, lengths), expected["loo"], atol=1e-5)
        medians = style.permutation(token_ids, lengths)
        assert medians.shape == (3,) and np.all(medians >= 0) and np.all(medians <= 1)
    jsd = OriginalStyle(twin).adversarial(token_ids, lengths, steps=30)
    assert jsd.shape == (3,) and np.all((jsd >= 0) & (jsd <= np.log(2) + 1e-6))


def test_batched_loo_in_chunks_equals_loop():
    model, params = tiny_model("lstm", "dot")
    twin = load_torch_model(to_torch_state_dict(params, model.config), model.config)
    batch = tiny_batch((5, 9, 12, 3), width=12)
    token_ids = torch.from_numpy(batch["token_ids"].astype(np.int64))
    lengths = torch.from_numpy(batch["lengths"].astype(np.int64))
    loop = OriginalStyle(twin).loo(token_ids, lengths)
    for chunk in (1, 3, 64):
        np.testing.assert_allclose(BatchedStyle(twin).loo(token_ids, lengths, chunk), loop,
                                   atol=1e-6)  # fmt: skip
