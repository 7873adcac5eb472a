"""Training: what to train (``config``), the objectives, the optimiser, the loop, evaluation,
and the run folder it writes (checkpoints, ``config.json``, ``metrics.json``)."""

from attn_audit.training.checkpoint import CheckpointError, RunCheckpoints
from attn_audit.training.config import (
    MINILM_TRAIN_SIZES,
    TRAIN_ENCODERS,
    TrainConfig,
    paper_defaults,
)
from attn_audit.training.evaluate import (
    EVAL_BATCH_SIZE,
    Predictions,
    evaluate,
    predict,
    predict_batch,
    predict_split,
    selection_metric,
)
from attn_audit.training.loop import (
    TrainingDiverged,
    load_guide,
    run_training,
    train_step,
    train_until_learnt,
)
from attn_audit.training.objectives import Guide, adversarial_terms, guide_outputs, loss_fn
from attn_audit.training.optimizer import (
    freezes_encoder,
    make_optimizer,
    scale_by_torch_amsgrad,
    torch_amsgrad,
)
from attn_audit.training.run_folder import Run, load_run, read_json, write_json

__all__ = [
    "CheckpointError", "EVAL_BATCH_SIZE", "Guide", "MINILM_TRAIN_SIZES", "Predictions", "Run",
    "RunCheckpoints", "TRAIN_ENCODERS", "TrainConfig", "TrainingDiverged", "adversarial_terms",
    "evaluate",
    "freezes_encoder", "guide_outputs", "load_guide", "load_run", "loss_fn", "make_optimizer",
    "paper_defaults", "predict", "predict_batch", "predict_split", "read_json", "run_training",
    "scale_by_torch_amsgrad",
    "selection_metric", "torch_amsgrad", "train_step", "train_until_learnt", "write_json",
]  # fmt: skip
