"""LoRA / QLoRA fine-tuning with TRL's SFTTrainer: data, collation, training, manifests."""
