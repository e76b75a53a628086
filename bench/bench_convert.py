"""CORD conversion: `vlmkit convert` against the notebook way, on growing parquet sources.

The source is the hub's layout (data/test-*.parquet, image bytes + ground_truth), built from
the nine real CORD v2 receipts of tests/data repeated to N rows. The baseline is what
fine-tuning notebooks run: `datasets.load_dataset("parquet")`, then for each row
`row["image"].save(...)` (decode + re-encode) and `json.loads(...)["gt_parse"]` written out.
Both are whole processes, timed together with their peak resident memory, at two sizes: vlmkit
must stay flat as N grows (it streams); the ratio is the time per row.

    python bench/bench_convert.py                    # both at N = 90, 360; vlmkit at 2,880
    python bench/bench_convert.py --rows 90 --large 9000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from peak_memory import run_measured  # bench/ is on sys.path: scripts run from there

REPO = Path(__file__).resolve().parents[1]
METADATA = REPO / "tests" / "data" / "cord_v2" / "test" / "metadata.jsonl"
IMAGES = REPO / "examples" / "cord-v2-sample" / "images"

FEATURES = json.dumps(
    {"info": {"features": {"image": {"_type": "Image"},
                           "ground_truth": {"dtype": "string", "_type": "Value"}}}}
)  # fmt: skip

BASELINE = """
import json, sys
from pathlib import Path
from datasets import load_dataset
src, out = sys.argv[1], Path(sys.argv[2])
dataset = load_dataset("parquet", data_files=f"{src}/data/*.parquet", split="train")
(out / "images").mkdir(parents=True)
with open(out / "metadata.jsonl", "w") as records:
    for i, row in enumerate(dataset):
        name = f"images/{i:06d}.png"
        row["image"].save(out / name)
        target = json.dumps(json.loads(row["ground_truth"])["gt_parse"], ensure_ascii=False)
        records.write(json.dumps({"file_name": name, "target": target}) + "\\n")
"""


def build_source(root: Path, rows: int) -> None:
    """data/test-00000-of-00001.parquet with `rows` rows, cycling through the nine receipts."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    lines = [json.loads(x) for x in METADATA.read_text().splitlines()]
    images = {r["file_name"]: (IMAGES / r["file_name"]).read_bytes() for r in lines}
    (root / "data").mkdir(parents=True)
    writer = None
    for start in range(0, rows, 16):  # written in row groups, never all in memory
        chunk = [lines[i % len(lines)] for i in range(start, min(start + 16, rows))]
        table = pa.table(
            {
                "image": [{"bytes": images[r["file_name"]], "path": r["file_name"]} for r in chunk],
                "ground_truth": [r["ground_truth"] for r in chunk],
            }
        )
        # The features the hub's shards carry, so `datasets` decodes the images as the hub's do.
        table = table.replace_schema_metadata({"huggingface": FEATURES})
        if writer is None:
            writer = pq.ParquetWriter(root / "data" / "test-00000-of-00001.parquet", table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[90, 360])
    parser.add_argument(
        "--large",
        type=int,
        nargs="*",
        default=[2880],
        help="sizes run with vlmkit only (the notebook takes ~0.4 s a row)",
    )
    args = parser.parse_args()
    print(f"{'rows':>6}  {'vlmkit s':>9} {'peak MB':>8}  {'notebook s':>10} {'peak MB':>8}  ratio")
    for rows in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "cord"
            build_source(source, rows)
            mine = run_measured([sys.executable, "-m", "vlmkit", "convert", "cord-v2",
                                 str(source), "-o", f"{tmp}/vlmkit"])  # fmt: skip
            theirs = run_measured([sys.executable, "-c", BASELINE, str(source), f"{tmp}/nb"])
            written = len((Path(tmp) / "vlmkit" / "test" / "metadata.jsonl").read_text()
                          .splitlines())  # fmt: skip
            assert written == rows, written
        print(f"{rows:>6}  {mine[0]:>9.2f} {mine[1]:>8.1f}  {theirs[0]:>10.2f} {theirs[1]:>8.1f}"
              f"  {theirs[0] / mine[0]:.1f}x")  # fmt: skip
    for rows in args.large:
        with tempfile.TemporaryDirectory() as tmp:
            build_source(Path(tmp) / "cord", rows)
            mine = run_measured([sys.executable, "-m", "vlmkit", "convert", "cord-v2",
                                 f"{tmp}/cord", "-o", f"{tmp}/vlmkit"])  # fmt: skip
        print(f"{rows:>6}  {mine[0]:>9.2f} {mine[1]:>8.1f}  (vlmkit only)")


if __name__ == "__main__":
    main()
