"""JW's optimiser: AMSGrad with coupled L2 weight decay (SPEC §2).

PyTorch's ``Adam(weight_decay=...)``: ``g ← g + λθ`` before the moments, on every
parameter except a classifier's attention (``models.weight_decay_mask``: JW's QA/NLI model
decays its attention too); a frozen (pretrained) encoder gets no update at all.
"""

import functools

import jax
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
        optax.amsgrad(learning_rate),
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
