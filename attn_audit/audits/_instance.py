"""What every audit starts from: the original forward pass of one instance."""


def original_pass(model, params, instance):
    """``(embedded [T, E], states, α [T], ŷ [C])`` of the unmodified instance."""
    embedded = model.embed(params, instance)
    states = model.encode(params, instance, embedded)
    alpha = model.attention(params, instance, states)
    probabilities = model.decode(params, instance, states, alpha)
    return embedded, states, alpha, probabilities
