"""`vlmkit infer`: batched, resumable generation from a dataset folder to a predictions file.

`settings`, `selection` and `journal` are light (stdlib only: checks run before torch loads);
`generate` holds the model work; `run` drives a predictor over the samples, journalling as it goes.
"""
