"""Training: the run's config (`configuration`), the optimizer and the pure train and eval
steps (`steps`), the loop (`trainer`), orbax checkpoints (`checkpointing`, `averaging`),
signals (`preemption`), data parallelism over a device mesh (`parallel`), early stopping, and
what a run writes for people to read (`metrics_writer`, `plots`); the command jaxseq-train
(`main`)."""
