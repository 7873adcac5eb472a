"""Exchange with PyTorch: JAX params <-> JW-style state dicts, and a PyTorch twin of the model.

``export`` needs only numpy; ``tests.reference.torch_model`` imports torch and
is imported explicitly by the tests and benchmarks that use it.
"""

from attn_audit.interop.export import (
    from_torch_state_dict,
    to_torch_state_dict,
    torch_parameter_paths,
)

__all__ = ["from_torch_state_dict", "to_torch_state_dict", "torch_parameter_paths"]
