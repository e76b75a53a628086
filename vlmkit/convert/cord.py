"""`cord-v2`: the CORD v2 receipts (naver-clova-ix/cord-v2), a Donut-format dataset.

Read from a local copy in any layout of `tables.py`, from the original CORD release layout
(`{train,dev,test}/{image,json}/receipt_NNNNN.*`, whose v2 json files carry `gt_parse`), or from
the hub id when this machine can reach the hub (`huggingface_hub` downloads the parquet shards
into its cache). Ids use the receipt's number, so `test/image/receipt_00007.png` and row 7 of
the hub's test split are both `cord-v2/test/000007`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from vlmkit.convert.base import BadRow, ImageFile, inside, unlabelled_images
from vlmkit.convert.donut import DonutConverter
from vlmkit.convert.tables import LAYOUTS, Table, TableRow, number_key
from vlmkit.errors import InputError, MissingExtraError

HUB_ID = "naver-clova-ix/cord-v2"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class CordV2(DonutConverter):
    name: ClassVar[str] = "cord-v2"
    prompts: ClassVar[dict[str, str]] = {"json": "Extract the receipt as JSON."}
    layouts: ClassVar[tuple[str, ...]] = (
        *LAYOUTS,
        "original: {train,dev,test}/{image,json}/receipt_NNNNN.* (the CORD release)",
        f"a hub id such as {HUB_ID} (needs network)",
    )

    def local_root(self, src: str) -> Path:
        path = Path(src)
        if path.exists() or not _REPO_ID.match(src):
            return path
        return download(src)

    def find_table(self, root: Path) -> Table | None:
        splits = {
            sub.name: [sub]
            for sub in (sorted(root.iterdir()) if root.is_dir() else [])
            if (sub / "json").is_dir() and (sub / "image").is_dir()
        }
        if splits:
            return OriginalCord(root, "original", splits)
        return super().find_table(root)


class OriginalCord(Table):
    """The CORD release: `split/json/receipt_NNNNN.json` beside `split/image/receipt_NNNNN.png`."""

    def rows(self, split: str) -> Iterator[TableRow | BadRow]:
        [folder] = self.split_files[split]
        labelled = set()
        for index, label in enumerate(sorted((folder / "json").glob("*.json"))):
            where = f"{split}/json/{label.name}"
            image = next((p for p in sorted((folder / "image").glob(f"{label.stem}.*"))), None)
            if image is None:
                yield BadRow(where, f"no image {split}/image/{label.stem}.*", "bad image")
                continue
            labelled.add(image)
            for path in (label, image):  # a symbolic link elsewhere is not the dataset's
                if inside(self.root, str(path.relative_to(self.root))) is None:
                    yield BadRow(where, f"{path.name} links outside SRC", "bad image path")
                    break
            else:
                yield self._row(index, where, label, image)
        yield from unlabelled_images(folder / "image", labelled, self.root, "no json/<ID>.json")

    def _row(self, index: int, where: str, label: Path, image: Path) -> TableRow | BadRow:
        try:
            ground_truth = label.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as error:
            return BadRow(where, f"cannot read it ({error})", "bad ground truth")
        key = number_key(label.stem)
        return TableRow(
            index, where, ImageFile(image), {"ground_truth": ground_truth}, image.name, key
        )


def download(repo_id: str) -> Path:
    """The hub dataset's parquet shards, downloaded (or found in the cache)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise MissingExtraError(
            f"{repo_id}: reading a hub id needs huggingface_hub",
            hint="pip install huggingface_hub, or point at a local copy of the dataset.",
        ) from None
    try:
        folder = snapshot_download(
            repo_id, repo_type="dataset", allow_patterns=["data/*.parquet", "*.json", "*.md"]
        )
    except Exception as error:  # offline, unknown repo, auth: all end here with one message
        reason = str(error).splitlines()[0] if str(error) else ""
        raise InputError(
            f"{repo_id}: not a local folder, and cannot download it from the Hugging Face hub "
            f"({type(error).__name__}: {reason})",
            hint=f"Without network, download it where there is one (hf download "
            f"{repo_id} --repo-type dataset --local-dir DIR) and pass DIR.",
        ) from None
    return Path(folder)
