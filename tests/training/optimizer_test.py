"""attn_audit.training.optimizer: AMSGrad with coupled L2 decay (off a classifier's
attention), a frozen MiniLM encoder, and one optimiser object per setting."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from attn_audit import models, training
from tests._fixtures import initial_params, tiny_config

# A qa model: encoder, question encoder, attention and decoder subtrees.
CONFIG = tiny_config("average", "tanh", "qa", 4)
CLASSIFIER = tiny_config("average", "tanh", "classification", 2)


def updates_of(optimizer, gradients, params):
    updates, _ = optimizer.update(gradients, optimizer.init(params), params)
    return updates


@pytest.mark.parametrize("config", [CLASSIFIER, CONFIG], ids=["classifier", "qa"])
def test_decay_moves_every_parameter_but_a_classifiers_attention(config):
    """With zero gradients only the decay moves a parameter: a classifier's attention not
    at all (JW's two optimisers), every other non-zero parameter towards 0 (the qa model's
    attention too: JW's one optimiser there)."""
    params = initial_params(config)
    optimizer = training.make_optimizer(training.TrainConfig(weight_decay=1e-3))
    zeros = jax.tree.map(jnp.zeros_like, params)
    updates = updates_of(optimizer, zeros, params)
    if config.task == "classification":
        for leaf in jax.tree.leaves(updates["attention"]):
            np.testing.assert_array_equal(leaf, 0.0)
        decayed = {name: subtree for name, subtree in updates.items() if name != "attention"}
    else:
        decayed = updates
    for update, param in zip(
        jax.tree.leaves(decayed),
        jax.tree.leaves({name: params[name] for name in decayed}),
        strict=True,
    ):
        moved = np.asarray(param) != 0.0
        assert moved.any()
        np.testing.assert_array_equal(np.sign(update)[moved], -np.sign(param)[moved])


def test_decay_is_coupled_before_the_amsgrad_moments():
    """PyTorch's Adam(weight_decay=λ): AMSGrad sees g + λθ off a classifier's attention and
    g on it."""
    params = initial_params(CLASSIFIER)
    config = training.TrainConfig(learning_rate=0.01, weight_decay=0.1)
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    gradients = jax.tree.unflatten(
        tree, [jax.random.normal(k, leaf.shape) for k, leaf in zip(keys, leaves, strict=True)]
    )
    got = updates_of(training.make_optimizer(config), gradients, params)
    coupled = jax.tree.map(
        lambda g, p, decays: g + 0.1 * p if decays else g,
        gradients, params, models.weight_decay_mask(params),
    )  # fmt: skip
    torch_amsgrad = training.torch_amsgrad(0.01)
    expected = updates_of(torch_amsgrad, coupled, params)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
    # Without the mask the attention would have moved differently.
    uncoupled = updates_of(torch_amsgrad, gradients, params)["attention"]
    for a, b in zip(jax.tree.leaves(got["attention"]), jax.tree.leaves(uncoupled), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("finetune", [False, True])
def test_a_frozen_minilm_encoder_gets_no_update(finetune):
    config = training.TrainConfig(
        encoder="minilm", attention="self", finetune_encoder=finetune,
        **training.MINILM_TRAIN_SIZES,
    )  # fmt: skip
    assert training.freezes_encoder(config) == (not finetune)
    params = initial_params(CONFIG)
    ones = jax.tree.map(jnp.ones_like, params)
    updates = updates_of(training.make_optimizer(config), ones, params)
    for leaf in jax.tree.leaves(updates["encoder"]):
        assert bool(np.all(np.asarray(leaf) == 0.0)) == (not finetune)
    for name in ("question_encoder", "attention", "decoder"):
        assert all(np.all(np.asarray(leaf) < 0.0) for leaf in jax.tree.leaves(updates[name]))


def test_equal_settings_share_one_optimizer():
    config = training.TrainConfig()
    same = dataclasses.replace(config, seed=3, epochs=2)
    assert training.make_optimizer(config) is training.make_optimizer(same)
    other = dataclasses.replace(config, learning_rate=0.02)
    assert training.make_optimizer(config) is not training.make_optimizer(other)
    assert not training.freezes_encoder(config)


def test_matches_torch_adam_amsgrad_with_weight_decay_over_many_steps():
    """JW's torch.optim.Adam(lr, weight_decay, amsgrad=True), step by step, with gradients
    that start large and shrink (where optax.amsgrad, which keeps the maximum of the
    bias-corrected moment, takes steps several times smaller)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    start = rng.normal(size=(5, 3)).astype(np.float32)
    gradients = [rng.normal(size=(5, 3)).astype(np.float32) * 10.0 / (1 + t) for t in range(60)]
    parameter = torch.nn.Parameter(torch.tensor(start))
    reference = torch.optim.Adam([parameter], lr=0.01, weight_decay=0.1, amsgrad=True)
    optimizer = training.make_optimizer(training.TrainConfig(learning_rate=0.01, weight_decay=0.1))
    params = {"encoder": {"w": jnp.asarray(start)}}  # decayed, as every encoder parameter
    state = optimizer.init(params)
    for gradient in gradients:
        parameter.grad = torch.tensor(gradient)
        reference.step()
        updates, state = optimizer.update({"encoder": {"w": jnp.asarray(gradient)}}, state, params)
        params = optax.apply_updates(params, updates)
    np.testing.assert_allclose(params["encoder"]["w"], parameter.detach().numpy(), atol=2e-6)
    # optax.amsgrad ends elsewhere on the same gradients.
    optax_params, optax_state = {"w": jnp.asarray(start)}, None
    optax_optimizer = optax.chain(optax.add_decayed_weights(0.1), optax.amsgrad(0.01))
    optax_state = optax_optimizer.init(optax_params)
    for gradient in gradients:
        updates, optax_state = optax_optimizer.update(
            {"w": jnp.asarray(gradient)}, optax_state, optax_params
        )
        optax_params = optax.apply_updates(optax_params, updates)
    assert np.abs(optax_params["w"] - parameter.detach().numpy()).max() > 1e-3
