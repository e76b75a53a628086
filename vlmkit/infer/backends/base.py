"""What every backend shares: the fan-out of a batch into requests, per-sample errors, the
fan-in of answers in the samples' order, and halving a batch whose call fails.

One bad sample never stops a batch: an image that cannot be read, a prompt a chat template
rejects, or a request the model refuses becomes that sample's error line, and a batch whose
call fails is split in halves until the sample at fault is alone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Generic, TypeVar

from vlmkit.errors import VlmkitError
from vlmkit.images import UnreadableImage, open_rgb
from vlmkit.infer.selection import Sample
from vlmkit.records import PredictionRecord

Request = TypeVar("Request")


@dataclass(frozen=True)
class ModelDescription:
    """What a run's sidecar records about the model that answered, whatever the backend."""

    backend: str
    model: str
    adapter: str | None
    family: str | None
    model_type: str | None
    prompt_format: dict[str, Any] | None
    device: str | None
    dtype: str | None
    """The dtype the weights were used in (never `auto`)."""
    context_length: int | None = None
    endpoint: str | None = None
    """The server's URL, for a served model."""
    api_key: str | None = None
    """Where a served model's API key came from (the variable's name, never its value)."""
    image_preprocessing: dict[str, Any] | None = None
    """How images were resized and split (local models; a server's are its own)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Prepared(Generic[Request]):
    """A sample and the backend's request for it."""

    sample: Sample
    request: Request


class Failure(Exception):
    """A batch's call failed in a way the backend can name (the message of a lone sample)."""


class Backend(ABC, Generic[Request]):
    """Answers batches of samples; subclasses say how a sample becomes a request (`request`)
    and how a batch of requests becomes records (`generate`)."""

    name: ClassVar[str]
    remote: ClassVar[bool] = False
    """A served model: no local weights, libraries or files to check (only a name)."""

    @classmethod
    def check(cls, request: Any) -> None:
        """Refuse, before anything heavy loads, what this backend cannot do with `request`
        (an `InferRequest`)."""

    @classmethod
    @abstractmethod
    def load(cls, source: Any, request: Any) -> Backend[Any]:
        """The backend ready to answer `request` (an `InferRequest`) with `source` (a
        `ModelSource`)."""

    @abstractmethod
    def describe(self) -> ModelDescription: ...

    @abstractmethod
    def request(self, sample: Sample, image: Any) -> Request:
        """The backend's request for one sample (raise to give the sample an error)."""

    @abstractmethod
    def generate(self, batch: list[Prepared[Request]]) -> list[PredictionRecord]:
        """One record per item, in order; raise (`Failure` with a message) if the call fails."""

    def close(self) -> None:
        """Let go of what the backend holds beyond memory (a server's client, its loop)."""

    def predict(self, samples: list[Sample]) -> list[PredictionRecord]:
        """One record per sample, in order (an `error` record where it failed)."""
        early, ready = self.prepare(samples)
        results = {record.id: record for record in [*early, *self.answer(ready)]}
        return [results[sample.id] for sample in samples]

    def answers(self, samples: list[Sample]) -> Iterator[list[PredictionRecord]]:
        """The records of `samples`, in groups as they are ready, for the journal to write as
        they come (a backend answering one by one yields each; the default, all at once)."""
        yield self.predict(samples)

    def prepare(
        self, samples: list[Sample]
    ) -> tuple[list[PredictionRecord], list[Prepared[Request]]]:
        """Each sample's request, or its error record (an unreadable image, a prompt the chat
        template rejects)."""
        early: list[PredictionRecord] = []
        ready: list[Prepared[Request]] = []
        for sample in samples:
            try:
                image = open_rgb(sample.image)
            except UnreadableImage as error:
                early.append(failed(sample, str(error)))
                continue
            try:
                ready.append(Prepared(sample, self.request(sample, image)))
            except VlmkitError as error:  # the backend's own reason (an image it cannot send)
                early.append(failed(sample, error.message))
            except Exception as error:  # a chat template may raise on content it rejects
                early.append(failed(sample, f"cannot format the prompt: {one_line(error)}"))
        return early, ready

    def answer(self, batch: list[Prepared[Request]]) -> list[PredictionRecord]:
        """`generate`, with a failed call split in halves down to the sample at fault."""
        if not batch:
            return []
        try:
            return self.generate(batch)
        except VlmkitError:
            raise  # the run cannot go on (a refused key, an unknown model): no sample's fault
        except Exception as error:
            if len(batch) == 1:
                message = str(error) if isinstance(error, Failure) else one_line(error)
                prefix = "" if isinstance(error, Failure) else "generation failed: "
                return [failed(batch[0].sample, prefix + message)]
            half = len(batch) // 2
            return self.answer(batch[:half]) + self.answer(batch[half:])


def failed(sample: Sample, message: str) -> PredictionRecord:
    return PredictionRecord(sample.id, "", error=message)


def one_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__
