"""The inference backends: one file each, named in a literal registry.

A backend answers batches of samples (`Backend.predict`); the base owns what every backend
shares (opening images, one sample's failure as that sample's error line, halving a batch that
fails), so a backend writes only how it turns a sample into a request and a batch into
answers. Its class-level checks run before anything heavy loads. Adding a backend is one file
here and one line below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlmkit.registry import load

if TYPE_CHECKING:
    from vlmkit.infer.backends.base import Backend

BACKENDS: dict[str, str] = {
    "transformers": "vlmkit.infer.backends.hf_transformers:TransformersBackend",
    "vllm": "vlmkit.infer.backends.vllm_engine:VllmBackend",
    "openai": "vlmkit.infer.backends.openai_api:OpenAIBackend",
}


def backend_named(name: str) -> type[Backend]:
    """The backend class registered as `name` (a did-you-mean on a typo)."""
    return load(BACKENDS, name, flag="--backend", what="a backend vlmkit knows")
