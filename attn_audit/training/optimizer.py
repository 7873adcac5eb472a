"""JW's optimiser: PyTorch's AMSGrad with coupled L2 weight decay (SPEC §2).

PyTorch's ``Adam(weight_decay=...)``: ``g ← g + λθ`` before the moments, on every
parameter except a classifier's attention (``models.weight_decay_mask``: JW's QA/NLI model
decays its attention too); a frozen (pretrained) encoder gets no update at all.

PyTorch's AMSGrad keeps the maximum of the *raw* second moment and divides it by the bias
correction afterwards; ``optax.amsgrad`` keeps the maximum of the bias-corrected moment,
which holds the first steps' large gradients for the whole run (``scale_by_torch_amsgrad``).
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from attn_audit import models
from attn_audit.training.config import TrainConfig


def freezes_encoder(train_config: TrainConfig) -> bool:
    """Whether only the classifier trains: MiniLM without ``finetune_encoder``."""
    return train_config.encoder == "minilm" and not train_config.finetune_encoder


def make_optimizer(train_config: TrainConfig) -> optax.GradientTransformation:
    """AMSGrad with coupled weight decay (off a classifier's attention); cached, so runs
    with the same settings share one optimiser object and hence one compiled ``train_step``.

    A frozen encoder gets zero updates (no decay either) and no optimiser state.
    """
    return _optimizer(
        train_config.learning_rate, train_config.weight_decay, freezes_encoder(train_config)
    )


@functools.cache
def _optimizer(
    learning_rate: float, weight_decay: float, freeze_encoder: bool = False
) -> optax.GradientTransformation:
    optimizer = optax.chain(
        optax.add_decayed_weights(weight_decay, mask=models.weight_decay_mask),
        torch_amsgrad(learning_rate),
    )
    if freeze_encoder:
        optimizer = optax.multi_transform(
            {"train": optimizer, "freeze": optax.set_to_zero()}, _encoder_frozen_labels
        )
    return optimizer


def _encoder_frozen_labels(params):
    return {
        name: jax.tree.map(lambda _, n=name: "freeze" if n == "encoder" else "train", subtree)
        for name, subtree in params.items()
    }


def torch_amsgrad(learning_rate: float) -> optax.GradientTransformation:
    """``torch.optim.Adam(lr=learning_rate, amsgrad=True)`` without weight decay."""
    return optax.chain(scale_by_torch_amsgrad(), optax.scale(-learning_rate))


class TorchAmsgradState(NamedTuple):
    count: jax.Array  # int32 []
    mu: optax.Updates
    nu: optax.Updates
    nu_max: optax.Updates


def scale_by_torch_amsgrad(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> optax.GradientTransformation:
    """``torch.optim.Adam(amsgrad=True)``'s step direction (before the learning rate).

    With ``m_t = b1·m + (1 − b1)·g``, ``v_t = b2·v + (1 − b2)·g²`` and
    ``v_max = max(v_max, v_t)`` (raw, not bias-corrected):
    ``update = (m_t / (1 − b1^t)) / (sqrt(v_max) / sqrt(1 − b2^t) + eps)``.
    """

    def init_fn(params):
        # Three separate buffers: the training step donates the state.
        mu, nu, nu_max = (jax.tree.map(jnp.zeros_like, params) for _ in range(3))
        return TorchAmsgradState(jnp.zeros([], jnp.int32), mu, nu, nu_max)

    def update_fn(updates, state, params=None):
        del params
        count = state.count + 1
        mu = jax.tree.map(lambda g, m: b1 * m + (1 - b1) * g, updates, state.mu)
        nu = jax.tree.map(lambda g, v: b2 * v + (1 - b2) * g * g, updates, state.nu)
        nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu)
        correction1 = 1 - b1 ** count.astype(jnp.float32)
        correction2_sqrt = jnp.sqrt(1 - b2 ** count.astype(jnp.float32))
        updates = jax.tree.map(
            lambda m, v: (m / correction1) / (jnp.sqrt(v) / correction2_sqrt + eps), mu, nu_max
        )
        return updates, TorchAmsgradState(count, mu, nu, nu_max)

    return optax.GradientTransformation(init_fn, update_fn)
