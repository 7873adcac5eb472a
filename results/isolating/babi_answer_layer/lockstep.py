"""Our training step and JW's PyTorch step in lockstep: where do two equal runs part?

From the same weights (our JAX initialisation of seed 0, loaded into the PyTorch twin of
``tests/reference/torch_model.py``) both take the same batches (our training order, seed
1): the JAX side ``training.objectives.loss_fn`` through ``training.make_optimizer``, the
PyTorch side JW's ``nll_loss`` and ``torch.optim.Adam(amsgrad=True, weight_decay=1e-5)``.
Prints the gradients' largest difference at the first step and, after each step, the
parameters' largest difference and where it is. Output kept in ``lockstep.txt``.

With EPOCHS, trains both sides that many epochs on the same batches and reports each
side's dev accuracy per epoch and test accuracy at its best dev epoch (after the first),
as both loops select (``lockstep_epochs.txt``).

    python results/isolating/babi_answer_layer/lockstep.py ENCODER ATTENTION STEPS [EPOCHS]
"""

import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from ablate import variant  # noqa: E402
from torch_jw_train import accuracy as torch_accuracy  # noqa: E402

from attn_audit import data, models, training  # noqa: E402
from attn_audit.data import pipeline  # noqa: E402
from attn_audit.interop import to_torch_state_dict  # noqa: E402
from attn_audit.training.objectives import loss_fn  # noqa: E402
from tests.reference.torch_model import TorchModel  # noqa: E402

BOUNDARIES = (16, 24, 40, 64, 96)


def torch_loss(model, batch):
    rows = int(batch["weights"].sum())
    names = ("token_ids", "lengths", "question_ids", "question_lengths")
    probabilities, _ = model(*[torch.tensor(batch[n][:rows], dtype=torch.int64) for n in names])
    labels = torch.tensor(batch["labels"][:rows], dtype=torch.int64)
    return torch.nn.functional.nll_loss(torch.log(probabilities.clamp_min(1e-30)), labels)


def largest_difference(params, config, model) -> tuple[float, str, tuple]:
    ours = to_torch_state_dict(params, config)
    found = []
    for name, value in model.named_parameters():
        difference = np.abs(ours[name] - value.detach().numpy())
        where = tuple(int(i) for i in np.unravel_index(difference.argmax(), difference.shape))
        found.append((float(difference.max()), name, where))
    return max(found)


def main(encoder: str, attention: str, steps: int, epochs: int = 0) -> None:
    dataset = variant(data.load_dataset("babi1"), True, False)
    vocab = pipeline.vocabulary_for(dataset)
    splits = {name: pipeline.encode_split(dataset, name, vocab) for name in dataset.splits}
    split = splits["train"]
    train_config = training.TrainConfig(
        dataset="babi1", encoder=encoder, attention=attention, seed=0,
        **training.paper_defaults("babi1"),
    )  # fmt: skip
    config = models.ModelConfig(
        vocab_size=len(vocab), num_classes=dataset.num_classes, encoder=encoder,
        attention=attention, task="qa", embed_dim=50, hidden_size=32, cnn_filters=8,
    )  # fmt: skip
    init_key, _ = jax.random.split(jax.random.key(0))  # as training.loop does for seed 0
    params = models.init(init_key, config)
    twin = TorchModel(config)
    state_dict = to_torch_state_dict(params, config)
    twin.load_state_dict({k: torch.tensor(v) for k, v in state_dict.items()}, strict=True)
    optimizer = training.make_optimizer(train_config)
    opt_state = optimizer.init(params)
    torch_optimizer = torch.optim.Adam(twin.parameters(), lr=1e-3, weight_decay=1e-5, amsgrad=True)

    @jax.jit
    def step(params, opt_state, batch):
        grads = jax.grad(loss_fn)(params, config, batch, jnp.float32(1.0))
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return jax.tree.map(jnp.add, params, updates), opt_state, grads

    rng = np.random.default_rng(1)
    done = 0
    if epochs:
        steps = None
        best = {"ours": (0.0, None, None), "torch": (0.0, None, None)}
        for epoch in range(1, epochs + 1):
            for batch in data.batches(split, 50, BOUNDARIES, rng=rng):
                inputs = {k: jnp.asarray(v) for k, v in batch.items() if k != "index"}
                params, opt_state, _ = step(params, opt_state, inputs)
                torch_optimizer.zero_grad()
                torch_loss(twin, batch).backward()
                torch_optimizer.step()
            dev = {
                "ours": training.evaluate(params, config, splits["dev"], BOUNDARIES)["accuracy"],
                "torch": torch_accuracy(twin, splits["dev"]),
            }
            for side in dev:
                if epoch > 1 and dev[side] > best[side][0]:
                    test = (
                        training.evaluate(params, config, splits["test"], BOUNDARIES)["accuracy"]
                        if side == "ours" else torch_accuracy(twin, splits["test"])
                    )  # fmt: skip
                    best[side] = (dev[side], epoch, test)
            gap, _, _ = largest_difference(params, config, twin)
            print(f"epoch {epoch}: dev ours {dev['ours']:.3f} torch {dev['torch']:.3f}, "
                  f"largest parameter difference {gap:.1e}", flush=True)  # fmt: skip
        for side, (dev_accuracy, epoch, test) in best.items():
            print(f"{side}: best dev {dev_accuracy:.3f} at epoch {epoch}, test {test:.3f}")
        return
    while done < steps:
        for batch in data.batches(split, 50, BOUNDARIES, rng=rng):
            inputs = {k: jnp.asarray(v) for k, v in batch.items() if k != "index"}
            params, opt_state, grads = step(params, opt_state, inputs)
            torch_optimizer.zero_grad()
            torch_loss(twin, batch).backward()
            if done == 0:
                ours = to_torch_state_dict(grads, config)
                named = twin.named_parameters()
                gap = max(float(np.abs(ours[n] - p.grad.numpy()).max()) for n, p in named)
                print(f"step 1 gradients: largest difference {gap:.1e}")
            torch_optimizer.step()
            done += 1
            if done <= 60 or done % 50 == 0:
                gap, name, where = largest_difference(params, config, twin)
                print(f"after step {done}: largest parameter difference {gap:.1e} ({name} {where})")
            if done == steps:
                break


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 0)
