"""attn_audit.pretrained.bert: BERT's tensor names, both ways, and clear errors."""

import jax
import numpy as np
import pytest

from attn_audit.pretrained import bert
from tests._fixtures import initial_params
from tests._fixtures import tiny_transformer_config as tiny_config


def test_bert_names_round_trip():
    config = tiny_config()
    params = initial_params(config)
    state = bert.to_bert_state_dict(params, config)
    assert "encoder.layer.1.attention.self.query.weight" in state
    assert state["encoder.layer.1.intermediate.dense.weight"].shape == (16, 12)
    back = bert.from_bert_state_dict(state, config)
    assert jax.tree.structure(back) == jax.tree.structure(params)
    assert jax.tree.all(jax.tree.map(np.array_equal, back, params))
    with pytest.raises(ValueError, match="Unexpected BERT tensors"):
        bert.from_bert_state_dict({**state, "encoder.layer.2.output.dense.weight": 0}, config)
    with pytest.raises(ValueError, match="lack"):
        bert.from_bert_state_dict(
            {k: v for k, v in state.items() if "layer.1.output.dense" not in k}, config
        )
    with pytest.raises(ValueError, match="embed_dim == hidden_size"):
        small = tiny_config(embed_dim=7)
        bert.to_bert_state_dict(initial_params(small), small)
