"""What other tools' prediction files look like: the fields `vlmkit score` reads in each.

`--from NAME` sets them (flags given beside it still win); without it, a predictions file
that lacks vlmkit's own `prediction` field is recognised by its first record and read the
way its tool writes it, with a note saying so. Each layout is the tool's own:

- LLaMA-Factory's `generated_predictions.jsonl` (`do_predict`): `{"prompt", "predict",
  "label"}` per line, no id: lines are paired by position, the reference is its `label`.
- lmms-eval's `--log_samples` files: `{"doc_id", "doc", "target", "arguments", "resps",
  "filtered_resps": [answer], "filter", ...}` per line: the answer after the task's filter.
- VLMEvalKit's result sheets (`.xlsx`, `.tsv`): columns `index`, `question`, `answer`,
  `prediction`, ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Layout:
    """How one tool writes predictions: the fields to read and how lines pair."""

    tool: str
    id_field: str
    pred_field: str
    ref_field: str
    join_by: str = "id"

    def flags(self) -> str:
        join = " --join line" if self.join_by == "line" else ""
        ids = "" if self.join_by == "line" else f"--id-field {self.id_field} "
        return f"{ids}--pred-field {self.pred_field} --ref-field {self.ref_field}{join}"


PEERS: dict[str, Layout] = {
    "llamafactory": Layout("LLaMA-Factory", "id", "predict", "label", join_by="line"),
    "lmms-eval": Layout("lmms-eval", "doc_id", "filtered_resps.0", "target"),
    "vlmevalkit": Layout("VLMEvalKit", "index", "prediction", "answer"),
}


def recognise(first: dict[str, Any]) -> str | None:
    """The tool that wrote a file whose first record is `first`, if its layout says so."""
    if {"predict", "label"} <= set(first) and "id" not in first:
        return "llamafactory"
    if "filtered_resps" in first and "doc_id" in first:
        return "lmms-eval"
    if {"index", "prediction", "answer"} <= set(first):
        return "vlmevalkit"
    return None
