"""Rebuild this example folder from `../shared/data/cord_v2` (the real CORD v2 receipts).

Writes `metadata.jsonl` (a vlmkit dataset: task `json`, target = the receipt's `gt_parse` as
canonical JSON) and two *illustrative* predictions files, `predictions-a.jsonl` and
`predictions-b.jsonl`. No model produced those predictions: they are the references with seeded,
documented damage, made to exercise `vlmkit score` on the output shapes real models emit (chatty
prose around fenced JSON, Python `str(dict)` literals, Donut token sequences, dropped and misread
fields, one unreadable answer, one failed sample). System A is damaged more than system B.

    python examples/cord-v2-sample/build.py ../shared/data/cord_v2
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PROMPT = "Extract the receipt as JSON."
SEED = 2407


def load_receipts(source: Path) -> list[tuple[str, dict[str, Any]]]:
    rows = []
    for line in (source / "test" / "metadata.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        rows.append((record["file_name"], json.loads(record["ground_truth"])["gt_parse"]))
    return rows


def leaves(value: Any, path: tuple = ()) -> list[tuple]:
    """Paths of every string leaf, so damage can target one field at a time."""
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in leaves(item, (*path, key))]
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in leaves(item, (*path, i))]
    return [path]


def set_leaf(value: Any, path: tuple, new: Any) -> None:
    for step in path[:-1]:
        value = value[step]
    if new is None:
        del value[path[-1]]
    else:
        value[path[-1]] = new


def misread(text: str, rng: random.Random) -> str:
    """One OCR-style character confusion."""
    swaps = {"0": "O", "1": "l", "5": "S", "8": "B", ".": ",", ",": ".", "O": "0", "I": "1"}
    spots = [i for i, ch in enumerate(text) if ch in swaps]
    if not spots:
        return text + "."
    i = rng.choice(spots)
    return text[:i] + swaps[text[i]] + text[i + 1 :]


def damage(gt: dict[str, Any], rng: random.Random, misreads: int, drops: int) -> dict[str, Any]:
    out = json.loads(json.dumps(gt))
    paths = leaves(out)
    rng.shuffle(paths)
    for path in paths[:misreads]:
        set_leaf(out, path, misread(str(_get(out, path)), rng))
    # Drop from the end of the shuffled list so a misread leaf is not also dropped.
    for path in sorted(paths[len(paths) - drops :], reverse=True):
        if isinstance(path[-1], str):
            set_leaf(out, path, None)
    return out


def _get(value: Any, path: tuple) -> Any:
    for step in path:
        value = value[step]
    return value


def donut_tokens(value: Any) -> str:
    if isinstance(value, dict):
        return "".join(f"<s_{k}>{donut_tokens(v)}</s_{k}>" for k, v in value.items())
    if isinstance(value, list):
        return "<sep/>".join(donut_tokens(v) for v in value)
    return str(value)


def system_a(index: int, gt: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A weak baseline: chatty, often not JSON, many misreads."""
    if index == 2:
        return {"prediction": "I'm sorry, I cannot read this receipt clearly."}
    if index == 5:
        return {"prediction": "", "error": "image too large for the model's context"}
    guess = damage(gt, rng, misreads=3, drops=2)
    if index % 3 == 0:
        return {"prediction": str(guess)}  # Python literal, as a str(dict) target teaches
    body = json.dumps(guess, ensure_ascii=False, indent=1)
    return {"prediction": f"Sure! Here is the receipt as JSON:\n```json\n{body}\n```"}


def system_b(index: int, gt: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A better system: mostly plain JSON, a few misreads."""
    guess = damage(gt, rng, misreads=1 if index % 2 else 0, drops=1 if index == 4 else 0)
    if index == 7:
        return {"prediction": donut_tokens(guess)}
    return {"prediction": json.dumps(guess, ensure_ascii=False)}


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    path.write_text(text, encoding="utf-8")


def main(source: Path) -> None:
    receipts = load_receipts(source)
    metadata, preds_a, preds_b = [], [], []
    for index, (file_name, gt) in enumerate(receipts):
        row = int(file_name.removeprefix("receipt_").removesuffix(".png"))
        rid = f"cord-v2/test/{row:06d}"
        metadata.append(
            {
                "id": rid,
                "file_name": f"images/{file_name}",
                "task": "json",
                "prompt": PROMPT,
                "target": json.dumps(gt, ensure_ascii=False),
                "meta": {
                    "source": "cord-v2",
                    "split": "test",
                    "hf_row": row,
                    "menu_items": len(gt["menu"]) if isinstance(gt.get("menu"), list) else 1,
                },
            }
        )
        rng = random.Random(f"{SEED}-{rid}")
        preds_a.append({"id": rid, **system_a(index, gt, rng)})
        preds_b.append({"id": rid, **system_b(index, gt, rng)})
    write_jsonl(HERE / "metadata.jsonl", metadata)
    write_jsonl(HERE / "predictions-a.jsonl", preds_a)
    write_jsonl(HERE / "predictions-b.jsonl", preds_b)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else HERE.parents[2] / "shared/data/cord_v2"))
