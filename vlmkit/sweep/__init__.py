"""Hyper-parameter studies over `vlmkit finetune`, with Optuna.

`space` reads the SPACE file; `session` plans (every check), prepares the study and runs a
worker's trials; `trial` is one trial (one finetune plan/execute); `workers` knows which
trials lost their worker and which devices exist; `storage` where a study lives and whose it
is; `results` writes trials.jsonl, best/ and importances.json. Stdlib-light at import: Optuna
and the model libraries load when a sweep runs.
"""
