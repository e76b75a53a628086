"""How to load a model: device, precision and code policy (stdlib only, checked before loading)."""

from __future__ import annotations

from dataclasses import dataclass, field

from vlmkit.errors import UsageError
from vlmkit.models.resolution import ImageSettings

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16", "float16")


def check_device_and_dtype(device: str, dtype: str) -> None:
    """`--device` and `--dtype` are among the choices (shared by infer and finetune)."""
    if device not in DEVICES:
        raise UsageError(f"--device {device!r} is not one of {', '.join(DEVICES)}")
    if dtype not in DTYPES:
        raise UsageError(f"--dtype {dtype!r} is not one of {', '.join(DTYPES)}")


@dataclass(frozen=True)
class LoadOptions:
    """How to load a model: device, precision and code policy."""

    device: str = "auto"
    """`auto` (CUDA when there is a GPU, else CPU), `cpu` or `cuda` (`--device`)."""
    dtype: str = "auto"
    """`auto` (bf16 on CUDA, fp32 on CPU, where bf16 is 10-45x slower), `float32`, `bfloat16`
    or `float16` (`--dtype`)."""
    load_in_4bit: bool = False
    """Quantise the weights to 4-bit NF4 with bitsandbytes while loading (`--load-in-4bit`)."""
    trust_remote_code: bool = False
    """Run Python code shipped with the checkpoint (`--trust-remote-code`)."""
    image: ImageSettings = field(default_factory=ImageSettings)
    """Image resolution, set on the processor (`--max-image-tokens` and the family's knobs)."""

    def __post_init__(self) -> None:
        check_device_and_dtype(self.device, self.dtype)
