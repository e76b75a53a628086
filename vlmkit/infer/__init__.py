"""`vlmkit infer`: batched, resumable generation from a dataset folder to a predictions file.

`settings`, `selection` and `journal` are light (stdlib only: checks run before torch loads);
`backends/` holds the model work, one file per backend in a literal registry; `run` drives a
backend over the samples, journalling as it goes.
"""
