"""attn_audit: does a model's attention explain its predictions? (Jain & Wallace 2019 and after)

The layout follows the data flow, one sub-package per stage::

    data         text -> ids -> bucketed batches (one loader per data set, word pieces, GloVe)
    models       pure-function models: JW's encoders + attention, the transformer; primitives
    pretrained   weight importers (MiniLM, BERT names)
    training     config, objectives, optimiser, loop, evaluation, checkpoints, run folders
    batch_engine the one batch engine every job subclasses (mesh, sharding, compiled programs)
    batch_runner a job over a split: resumable per-instance records
    distributed  a job as several processes (jax.distributed): shares, exchanges, barriers
    audits       JW's audits (gradient, loo, permutation, adversarial), rollout, flow, views
    explainers   IG, grad × input, occlusion, Shapley (exact, sampled, KernelSHAP), LIME, random
    faithfulness ERASER, decision flips, parameter randomisation, agreement between explainers
    evaluations  the papers' protocols: Abnar & Zuidema (az), Wiegreffe & Pinter (wp)
    stats        every statistic once: Kendall τ, Spearman ρ, TVD, KL, JSD, bootstrap CIs
    multiple_testing  Wilcoxon signed-rank per head, Benjamini–Hochberg across heads
    report       records, summaries, figures, tables, the report page (write_report)
    interop      export to PyTorch state dicts

The names below are the public API (what the README uses)::

    import attn_audit as aa
    run = aa.load_run("runs/sst_lstm_tanh")
    split = aa.split_encoder(run.vocab)(aa.load_dataset("sst"), "test")
    records, timings = aa.run_audit(aa.auditable_model(run.model_config), run.params, split,
                                    None, out_dir, aa.AuditOptions())
"""

import importlib

# Public name -> the module that defines it. Imported on first use (PEP 562), so that
# ``import attn_audit.data`` stays as light as the data layer itself.
_PUBLIC = {
    **dict.fromkeys(
        ("audits", "data", "distributed", "evaluations", "explainers", "faithfulness",
         "interop", "models", "pretrained", "report", "stats", "training"), ""),
    **dict.fromkeys(
        ("AUDITS", "AuditOptions", "AuditableModel", "BatchAuditor", "FlaxModel",
         "FlaxTransformerModel", "JWModel", "TransformerModel", "auditable_model",
         "checked_audits", "flax_model", "run_audit", "run_audit_corpus"), "audits"),
    **dict.fromkeys(
        ("EXPLAINERS", "BatchExplainer", "ExplainOptions", "ExplainerSettings", "run_explain"),
        "explainers"),
    **dict.fromkeys(("FaithfulnessOptions", "FaithfulnessSettings", "run_faithfulness"),
                    "faithfulness"),
    **dict.fromkeys(("attention_flow", "attention_flow_batch", "attention_flow_row"),
                    "audits.flow"),
    **dict.fromkeys(("raw_attention", "residual_attention", "rollout"), "audits.rollout"),
    **dict.fromkeys(("AttentionView", "audit_views", "view_labels"), "audits.views"),
    **dict.fromkeys(("BatchEngine", "ProgramCall", "chunked_vmap", "rounded_batch_size"),
                    "batch_engine"),
    **dict.fromkeys(("RunOptions", "record_header", "run_batches"), "batch_runner"),
    **dict.fromkeys(("benjamini_hochberg", "wilcoxon_greater"), "multiple_testing"),
    **dict.fromkeys(("DataError", "EncodedSplit", "Share", "TextDataset", "encode_split",
                     "load_dataset"), "data"),
    "split_encoder": "data.wordpiece",
    "ModelConfig": "models",
    **dict.fromkeys(("read_records", "summarize", "summary_markdown", "write_records"), "report"),
    **dict.fromkeys(("read_run", "write_report"), "report"),
    **dict.fromkeys(("bootstrap_mean_ci", "jsd", "kendall_tau_b", "kl", "spearman_rho", "tvd"),
                    "stats"),
    **dict.fromkeys(("CheckpointError", "Run", "TrainConfig", "load_run", "paper_defaults",
                     "run_training"), "training"),
}  # fmt: skip
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'attn_audit' has no attribute {name!r}")
    if not _PUBLIC[name]:
        return importlib.import_module(f"attn_audit.{name}")
    return getattr(importlib.import_module(f"attn_audit.{_PUBLIC[name]}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
