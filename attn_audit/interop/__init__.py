"""Exchange with PyTorch: JAX params <-> JW-style state dicts (numpy only).

The PyTorch twin that loads them, a test reference, is ``tests/reference/torch_model.py``.
"""

from attn_audit.interop.export import (
    from_torch_state_dict,
    to_torch_state_dict,
    torch_parameter_paths,
)

__all__ = ["from_torch_state_dict", "to_torch_state_dict", "torch_parameter_paths"]
