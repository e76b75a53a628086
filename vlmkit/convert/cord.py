"""`cord-v2`: the CORD v2 receipts (naver-clova-ix/cord-v2), a Donut-format dataset.

Read from a local copy in any layout of `tables.py`, or from the hub id when this machine can
reach the hub (`huggingface_hub` downloads the parquet shards into its cache).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from vlmkit.convert.donut import DonutConverter
from vlmkit.convert.tables import LAYOUTS
from vlmkit.errors import InputError, MissingExtraError

HUB_ID = "naver-clova-ix/cord-v2"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class CordV2(DonutConverter):
    name: ClassVar[str] = "cord-v2"
    prompts: ClassVar[dict[str, str]] = {"json": "Extract the receipt as JSON."}
    layouts: ClassVar[tuple[str, ...]] = (*LAYOUTS, f"a hub id such as {HUB_ID} (needs network)")

    def local_root(self, src: str) -> Path:
        path = Path(src)
        if path.exists() or not _REPO_ID.match(src):
            return path
        return download(src)


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
        raise InputError(
            f"{repo_id}: cannot download it from the Hugging Face hub "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})",
            hint=f"Without network, download it where there is one (huggingface-cli download "
            f"{repo_id} --repo-type dataset --local-dir DIR) and pass DIR.",
        ) from None
    return Path(folder)
