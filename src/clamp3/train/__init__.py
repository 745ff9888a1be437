"""Training: contrastive alignment, M3 pretraining, LoRA fine-tuning (run with ``clamp3 train``)."""
