"""Stage 4, training: DP-LoRA with Opacus and PEFT (dp_lora), crash-safe checkpoints (checkpoint),
the lifetime privacy-budget ledger (ledger), and the offline base-model store (modelstore).
"""
