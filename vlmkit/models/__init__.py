"""Model families, loading (+4-bit, +LoRA) and tiny offline models: all that knows families.

`families` is light (stdlib only); the other modules import torch and transformers, so the CLI
imports them inside command bodies.
"""
