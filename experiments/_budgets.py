"""The training budgets shared by the commands that sweep many models (no flags here).

``experiments.reproduce`` and ``experiments.faithfulness_results`` train the same runs
(``runs/reproduce/<dataset>/<encoder>_<attention>``) with the same budgets, so either
command reuses what the other trained.
"""

from attn_audit import data

# What the 2-core machines can afford where the paper's budget is too large; every result
# from these sets says so. train_limit: N training instances (vocabulary from them);
# audit_limit: N test instances audited. Both are seeded random samples (data.sample_indices):
# some files are sorted by class (IMDB's first 4,000 training reviews are all negative).
REDUCED_BUDGETS = {
    "imdb": {"train_limit": 4000, "epochs": 4, "audit_limit": 200},
    "20news": {"audit_limit": 200},
    "snli": {"epochs": 8, "audit_limit": 1000},
    "babi1": {"epochs": 10, "audit_limit": 500},
    "babi2": {"epochs": 10, "audit_limit": 500},
    "babi3": {"epochs": 20, "audit_limit": 500},
}
SAMPLE_SEED = 20190602  # any fixed seed: the budgets' samples (data.sample_indices)


def apply_budget(
    dataset, full_budget: bool = False, epochs: int | None = None, train_limit: int | None = None
):
    """Keeps the budget's sample of ``dataset``'s training split (in place).

    ``epochs`` and ``train_limit`` override the budget's (runs that isolate a cause).

    Returns:
      ``(training overrides, train_limit, audit_limit)``: the overrides go into
      ``training.TrainConfig``; the limits are None where the whole split is used.
    """
    budget = {} if full_budget else dict(REDUCED_BUDGETS.get(dataset.name, {}))
    if epochs:
        budget["epochs"] = epochs
    budget_limit = budget.pop("train_limit", None)
    train_limit = train_limit or budget_limit
    audit_limit = budget.pop("audit_limit", None)
    if train_limit and train_limit >= len(dataset.splits["train"]):
        raise ValueError(
            f"train_limit={train_limit} keeps all {len(dataset.splits['train'])} training "
            f"instances of {dataset.name}: drop it, or pass a smaller one."
        )
    if train_limit:
        kept = data.sample_indices(len(dataset.splits["train"]), train_limit, SAMPLE_SEED)
        dataset.splits["train"] = [dataset.splits["train"][i] for i in kept]
    return budget, train_limit, audit_limit
