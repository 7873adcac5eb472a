"""attn_audit.audits.gradient: against per-instance jax.grad, and (with LOO) the PyTorch twin."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_audit import audits, batch_engine, models
from tests._fixtures import CASES, tiny_batch, tiny_model


@pytest.mark.parametrize("encoder, attention, task, num_classes", CASES)
def test_gradient_equals_a_loop_of_per_instance_gradients(encoder, attention, task, num_classes):
    model, params = tiny_model(encoder, attention, task, num_classes)
    batch = tiny_batch(questions=task == "qa")
    vmapped = np.asarray(audits.engine.gradient_batch(
        model, params, batch_engine.instances_from_batch(
            {k: jnp.asarray(v) for k, v in batch.items()})))  # fmt: skip
    for row, length in enumerate(batch["lengths"]):
        token_ids = jnp.asarray(batch["token_ids"][row])
        question = None
        if task == "qa":
            question = models.question_vector(
                params, model.config, jnp.asarray(batch["question_ids"][row]),
                batch["question_lengths"][row],
            )  # fmt: skip
        embedded = models.embed(params, model.config, token_ids)

        def predicted(e, length=length, question=question):
            logits, _ = models.forward_from_embedded(
                params, model.config, e, length, question, stop_attention_gradient="audited"
            )
            return models.probabilities(logits, model.config)

        c = int(np.argmax(predicted(embedded)))
        grads = jax.grad(lambda e, c=c: predicted(e)[c])(embedded)
        raw = np.abs(np.sum(np.asarray(grads) * np.asarray(embedded), axis=-1))
        raw[0], raw[length - 1 :] = 0.0, 0.0
        np.testing.assert_allclose(vmapped[row], raw / raw.sum(), atol=1e-6)


@pytest.mark.parametrize("encoder", models.ENCODERS)
def test_gradient_and_loo_match_the_pytorch_twin(encoder):
    import torch

    from attn_audit.interop import to_torch_state_dict
    from tests.reference.torch_model import load_torch_model

    model, params = tiny_model(encoder, "tanh")
    twin = load_torch_model(to_torch_state_dict(params, model.config), model.config)
    batch = tiny_batch()
    instances = batch_engine.instances_from_batch({k: jnp.asarray(v) for k, v in batch.items()})
    jax_gradient = np.asarray(audits.engine.gradient_batch(model, params, instances))
    jax_loo = np.asarray(audits.engine.loo_batch(model, params, instances))

    captured = {}

    def keep_embeddings(module, inputs, output):
        output.retain_grad()
        captured["embedded"] = output

    hooks = [
        twin.encoder.embedding.register_forward_hook(keep_embeddings),
        # Attention held fixed: detach the scores, so no gradient flows through α.
        twin.decoder.attention.register_forward_hook(lambda m, i, output: output.detach()),
    ]
    token_ids = torch.from_numpy(batch["token_ids"].astype(np.int64))
    lengths = torch.from_numpy(batch["lengths"].astype(np.int64))
    probabilities, _ = twin(token_ids, lengths)
    predicted = probabilities.argmax(dim=-1)
    probabilities.gather(1, predicted[:, None]).sum().backward()
    for hook in hooks:
        hook.remove()
    embedded = captured["embedded"]
    importance = (embedded.grad * embedded).sum(-1).abs().detach().numpy()
    for row, length in enumerate(batch["lengths"]):
        importance[row, 0], importance[row, length - 1 :] = 0.0, 0.0
    importance /= importance.sum(axis=1, keepdims=True)
    # float32 on both sides; 1e-5 absorbs summation-order differences.
    np.testing.assert_allclose(jax_gradient, importance, atol=1e-5)

    with torch.no_grad():
        original, _ = twin(token_ids, lengths)
        for row, length in enumerate(batch["lengths"]):
            for t in range(1, length - 1):
                shorter = torch.cat(
                    [token_ids[row, :t], token_ids[row, t + 1 :], torch.zeros(1, dtype=torch.int64)]
                )
                deleted, _ = twin(shorter[None], lengths[row : row + 1] - 1)
                expected = 0.5 * (deleted[0] - original[row]).abs().sum().item()
                assert jax_loo[row, t] == pytest.approx(expected, abs=1e-5)
