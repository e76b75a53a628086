"""What an inference run is asked to do: generation settings and run options (validated, frozen)."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

from vlmkit.errors import UsageError


@dataclass(frozen=True)
class GenerationSettings:
    """How answers are decoded. Greedy unless sampling is asked for: scores must be repeatable."""

    max_new_tokens: int = 256
    """Most tokens generated per answer (`--max-new-tokens`)."""
    do_sample: bool = False
    """Sample instead of taking the most likely token (`--sample`)."""
    temperature: float = 1.0
    """Sampling temperature (`--temperature`; only with `--sample`)."""
    top_p: float = 1.0
    """Nucleus sampling mass (`--top-p`; only with `--sample`)."""
    num_beams: int = 1
    """Beam search width (`--num-beams`; 1 is greedy)."""
    seed: int = 0
    """Seed of the sampler (`--seed`)."""

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise UsageError(f"--max-new-tokens must be at least 1, got {self.max_new_tokens}")
        if self.num_beams < 1:
            raise UsageError(f"--num-beams must be at least 1, got {self.num_beams}")
        if not self.do_sample and (self.temperature != 1.0 or self.top_p != 1.0):
            raise UsageError(
                "--temperature and --top-p only apply when sampling",
                hint="add --sample, or drop them for greedy decoding",
            )
        if self.temperature <= 0:
            raise UsageError(f"--temperature must be above 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise UsageError(f"--top-p must be in (0, 1], got {self.top_p}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Shard:
    """Part `index` (1-based) of `count`: every count-th sample, so shards never overlap."""

    index: int = 1
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not match:
            raise UsageError(
                f"--shard {text!r} is not K/N", hint="e.g. --shard 2/4 for the 2nd of 4"
            )
        shard = cls(int(match[1]), int(match[2]))
        if not 1 <= shard.index <= shard.count:
            raise UsageError(
                f"--shard {text}: K must be between 1 and N",
                hint=f"the shards of {shard.count} are 1/{shard.count} ... "
                f"{shard.count}/{shard.count}",
            )
        return shard

    def holds(self, position: int) -> bool:
        """Whether the sample at 0-based `position` of the (limited) dataset is in this shard."""
        return position % self.count == self.index - 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class RunOptions:
    """Which samples a run answers and how it treats an existing predictions file."""

    batch_size: int = 8
    """Samples generated together (`--batch-size`)."""
    limit: int | None = None
    """Only the first N samples of the dataset (`--limit`), before sharding."""
    prompt: str | None = None
    """A prompt for every sample instead of each record's own (`--prompt`)."""
    shard: Shard = Shard()
    """This run's part of the dataset (`--shard K/N`)."""
    retry_errors: bool = False
    """Answer again the samples recorded with an error (`--retry-errors`)."""
    overwrite: bool = False
    """Start again instead of resuming, whatever the existing file holds (`--overwrite`)."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.limit is not None and self.limit < 1:
            raise UsageError(f"--limit must be at least 1, got {self.limit}")
        if self.prompt is not None and not self.prompt.strip():
            raise UsageError("--prompt is empty", hint="drop it to use each record's prompt")
        if self.retry_errors and self.overwrite:
            raise UsageError(
                "--retry-errors and --overwrite contradict each other",
                hint="--overwrite starts from nothing; --retry-errors keeps what succeeded",
            )


IMAGE_DETAILS = ("auto", "low", "high")


@dataclass(frozen=True)
class RemoteOptions:
    """How a served model is reached (`--backend openai`). Only the endpoint and the image
    detail can change an answer (they are in the resume key); the rest is how fast."""

    endpoint: str | None = None
    """The server's OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 (`--endpoint`)."""
    concurrency: int = 8
    """Requests in flight at once (`--concurrency`)."""
    timeout_s: float = 120.0
    """Seconds one request may take before it is retried (`--timeout`)."""
    max_retries: int = 5
    """Retries of a request after a 429, a 5xx, a timeout or a lost connection, with
    exponential back-off and jitter, honouring Retry-After (`--max-retries`)."""
    rpm: float | None = None
    """Most requests started per minute (`--rpm`), to stay under a rate limit."""
    api_key_env: str = "OPENAI_API_KEY"
    """The environment variable holding the API key (`--api-key-env`): never written anywhere."""
    image_detail: str | None = None
    """The image `detail` field (auto, low, high); None: not sent, the server's full default."""

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise UsageError(
                f"--concurrency must be at least 1, got {self.concurrency}", hint="e.g. 8"
            )
        if not (self.timeout_s > 0 and math.isfinite(self.timeout_s)):
            raise UsageError(
                f"--timeout must be a number of seconds above 0, got {self.timeout_s}",
                hint="e.g. --timeout 120",
            )
        if self.max_retries < 0:
            raise UsageError(
                f"--max-retries must be 0 or more, got {self.max_retries}", hint="e.g. 5"
            )
        if self.rpm is not None and not (self.rpm > 0 and math.isfinite(self.rpm)):
            raise UsageError(
                f"--rpm must be a number above 0, got {self.rpm}",
                hint="leave --rpm out for no limit",
            )
        if self.image_detail is not None and self.image_detail not in IMAGE_DETAILS:
            raise UsageError(
                f"--image-detail {self.image_detail!r} is not one of {', '.join(IMAGE_DETAILS)}",
                hint="leave it out to send none (the server's full-resolution default)",
            )
        if not self.api_key_env or not self.api_key_env.replace("_", "").isalnum():
            raise UsageError(
                f"--api-key-env {self.api_key_env!r} is not an environment variable's name",
                hint="e.g. --api-key-env OPENAI_API_KEY",
            )
