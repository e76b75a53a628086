"""A hub id without a network: one quick probe, then the cache or one clear error.

Without this, a hub id on a machine that cannot reach the hub costs half a minute of retries
(huggingface_hub tries each file five times, with back-off) and prints every retry, before
an error; and a model already in the local cache is retried the same way before it loads.
"""

from __future__ import annotations

import logging
import os
import socket
from urllib.parse import urlsplit

from vlmkit.errors import InputError

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 3.0


def prepare_hub_access(model_id: str, *, flag: str = "--model") -> None:
    """Make loading hub id `model_id` fail fast or load from the cache when the hub is down.

    Reachable: nothing changes. Unreachable with the model in the cache: this process goes
    offline (`HF_HUB_OFFLINE`), so the cached copy loads without a request. Unreachable and
    not cached: `InputError` at once, saying how to get the model onto this machine.
    """
    from huggingface_hub import constants, try_to_load_from_cache

    if constants.HF_HUB_OFFLINE:
        return  # the user said so; the loader reads only the cache
    endpoint = constants.ENDPOINT
    if _reachable(endpoint):
        return
    if isinstance(try_to_load_from_cache(model_id, "config.json"), str):
        log.info("%s cannot be reached: loading %s from the local cache", endpoint, model_id)
        os.environ["HF_HUB_OFFLINE"] = "1"
        constants.HF_HUB_OFFLINE = True  # read at each request by huggingface_hub
        return
    raise InputError(
        f"{flag} {model_id}: no such folder here, not in the Hugging Face cache "
        f"({constants.HF_HUB_CACHE}), and {endpoint} cannot be reached from this machine",
        hint=f"download it where the hub is reachable (hf download {model_id}) and copy the "
        "cache here, or pass the model's local folder",
    )


def _reachable(endpoint: str) -> bool:
    """Whether a TCP connection to the hub's host opens (DNS included) within the timeout."""
    parts = urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False
