"""`--backend openai`: a served or hosted model, through the OpenAI chat-completions protocol.

vLLM, SGLang, `transformers serve`, OpenAI, Gemini's and others' compatible endpoints all speak
it. Requests go through the official `openai` SDK, asynchronously, `--concurrency` at a time
(and at most `--rpm` a minute); the SDK retries a 429, a 5xx, a timeout or a lost connection
`--max-retries` times with exponential back-off and jitter, honouring Retry-After. A request
that still fails is its sample's error line, as with a local model, for `--retry-errors`; a
refused API key, an unknown model or a server that does not answer stops the run at once.

Each image goes as a data URL in its own lossless encoding at full size (a PNG stays a PNG, a
JPEG its own bytes; anything else is sent as PNG), before the prompt, as vlmkit's chat
formatting orders them. Greedy decoding is `temperature 0`. The API key is read from the
environment (`--api-key-env`) and never written: not to OUT, the sidecar, a log or an error.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import io
import os
import time
from typing import Any
from urllib.parse import urlparse

from vlmkit.errors import InputError, MissingExtraError, UsageError
from vlmkit.infer.backends.base import Backend, ModelDescription, Prepared, failed, one_line
from vlmkit.infer.selection import Sample
from vlmkit.records import PredictionRecord

SENT_AS_IS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
"""Formats every vision API reads, sent in their own bytes (never re-encoded)."""
CHECK_TIMEOUT_S = 10.0


class OpenAIBackend(Backend[list[dict[str, Any]]]):
    """Answers each batch with concurrent chat-completion requests to `--endpoint`."""

    name = "openai"
    remote = True

    @classmethod
    def check(cls, request: Any) -> None:
        remote = request.remote
        if not remote.endpoint:
            raise UsageError(
                "--backend openai needs --endpoint URL",
                hint="e.g. --endpoint http://127.0.0.1:8000/v1 (vLLM, SGLang, transformers "
                "serve) or https://api.openai.com/v1",
            )
        url = urlparse(remote.endpoint)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise UsageError(
                f"--endpoint {remote.endpoint!r} is not an http(s) URL",
                hint="e.g. --endpoint http://127.0.0.1:8000/v1",
            )
        if not request.model:
            raise UsageError(
                "--backend openai needs --model NAME: the model's name on the server",
                hint="the name `GET /v1/models` lists, e.g. --model gpt-4o",
            )
        if request.adapter is not None:
            raise UsageError(
                "--adapter is for local backends: a server serves a whole model",
                hint="fold the adapter in with `vlmkit finetune ... --merge`, serve OUT/merged, "
                "and name that",
            )
        if request.load.load_in_4bit or request.generation.num_beams > 1:
            flag = "--load-in-4bit" if request.load.load_in_4bit else "--num-beams"
            raise UsageError(f"{flag} is for local backends", hint=f"drop {flag}")
        if importlib.util.find_spec("openai") is None:
            raise MissingExtraError(
                "--backend openai needs the openai SDK, which is not installed",
                hint="pip install 'vlmkit[serve]'",
            )

    @classmethod
    def load(cls, source: Any, request: Any) -> OpenAIBackend:
        backend = cls(request)
        backend.run(backend.check_server())
        return backend

    def __init__(self, request: Any) -> None:
        self.remote = request.remote
        self.model = request.model
        self.settings = request.generation
        self.key = os.environ.get(self.remote.api_key_env) or None
        self.loop = asyncio.new_event_loop()
        self.client: Any = None
        self.next_start = 0.0

    def run(self, work: Any) -> Any:
        """A coroutine's result, on this backend's own event loop (its client lives there)."""
        return self.loop.run_until_complete(work)

    def describe(self) -> ModelDescription:
        return ModelDescription(
            backend=self.name, model=self.model, adapter=None, family=None, model_type=None,
            prompt_format=None, device=None, dtype=None, endpoint=self.remote.endpoint,
        )  # fmt: skip

    # --- requests ----------------------------------------------------------------------------

    def request(self, sample: Sample, image: Any) -> list[dict[str, Any]]:
        picture: dict[str, Any] = {"url": data_url(sample, image)}
        if self.remote.image_detail:
            picture["detail"] = self.remote.image_detail
        content = [{"type": "image_url", "image_url": picture},
                   {"type": "text", "text": sample.prompt}]  # fmt: skip
        return [{"role": "user", "content": content}]

    def generate(self, batch: list[Prepared[list[dict[str, Any]]]]) -> list[PredictionRecord]:
        return self.run(self._answer_all(batch))

    async def _answer_all(self, batch: list[Prepared[Any]]) -> list[PredictionRecord]:
        slots = asyncio.Semaphore(self.remote.concurrency)
        tasks = [asyncio.ensure_future(self._answer_one(item, slots)) for item in batch]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:  # a run-stopping error: the other requests are called off
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _answer_one(self, item: Prepared[Any], slots: asyncio.Semaphore) -> PredictionRecord:
        import openai

        async with slots:
            await self._keep_rate()
            started = time.perf_counter()
            try:
                reply = await self._client().chat.completions.create(
                    model=self.model, messages=item.request, **self._sampling()
                )
            except (openai.AuthenticationError, openai.PermissionDeniedError) as error:
                raise self._refused(error) from None
            except openai.NotFoundError as error:
                raise self._unknown_model(error) from None
            except openai.BadRequestError as error:
                said = server_says(error)
                if f"'{self.model}'" in said or f"`{self.model}`" in said:
                    raise self._unknown_model(error) from None  # e.g. transformers serve's 400
                return failed(item.sample, self._scrub(f"refused (400): {said}"))
            except openai.APIStatusError as error:  # still failing after the SDK's retries
                return failed(
                    item.sample, self._scrub(f"{error.status_code}: {server_says(error)}")
                )
            except openai.APIError as error:  # a timeout, a lost connection, after retries
                return failed(item.sample, self._scrub(one_line(error)))
            latency = time.perf_counter() - started
        return self._record(item.sample, reply, latency)

    def _sampling(self) -> dict[str, Any]:
        settings = self.settings
        fields: dict[str, Any] = {"max_tokens": settings.max_new_tokens, "seed": settings.seed}
        if settings.do_sample:
            fields.update(temperature=settings.temperature, top_p=settings.top_p)
        else:
            fields["temperature"] = 0.0  # greedy
        return fields

    def _record(self, sample: Sample, reply: Any, latency: float) -> PredictionRecord:
        if not reply.choices:
            return failed(sample, "the server sent no answer (no choices)")
        choice = reply.choices[0]
        usage = reply.usage
        return PredictionRecord(
            sample.id,
            (choice.message.content or "").strip(),
            latency_s=round(latency, 4),
            new_tokens=getattr(usage, "completion_tokens", None),
            prompt_tokens=getattr(usage, "prompt_tokens", None),
            finish_reason=choice.finish_reason,
            truncated=choice.finish_reason == "length" or None,
        )

    async def _keep_rate(self) -> None:
        """At most `--rpm` request starts a minute, evenly spaced."""
        if self.remote.rpm is None:
            return
        now = self.loop.time()
        start = max(now, self.next_start)
        self.next_start = start + 60.0 / self.remote.rpm
        await asyncio.sleep(start - now)

    def _client(self) -> Any:
        if self.client is None:
            import openai

            self.client = openai.AsyncOpenAI(
                base_url=self.remote.endpoint,
                # Local servers take any key; a hosted API refuses a missing one with a 401.
                api_key=self.key or "none",
                timeout=self.remote.timeout_s,
                max_retries=self.remote.max_retries,
            )
        return self.client

    # --- the server, before the first sample ---------------------------------------------------

    async def check_server(self) -> None:
        """Stop now if the server does not answer, refuses the key, or serves no such model."""
        import openai

        quick = self._client().with_options(
            max_retries=0, timeout=min(self.remote.timeout_s, CHECK_TIMEOUT_S)
        )
        try:
            served = [model.id async for model in quick.models.list()]
        except openai.APIConnectionError as error:
            raise UsageError(
                f"--endpoint {self.remote.endpoint} does not answer ({one_line(error)})",
                hint="check the URL (its /v1 included) and that the server is running",
            ) from None
        except (openai.AuthenticationError, openai.PermissionDeniedError) as error:
            raise self._refused(error) from None
        except openai.APIStatusError:
            return  # no model list here (some servers lack one): the first request will tell
        if served and self.model not in served:
            raise UsageError(
                f"--model {self.model} is not served by {self.remote.endpoint}",
                hint=f"it serves: {', '.join(sorted(served)[:20])}",
            )

    def _refused(self, error: Any) -> UsageError:
        where = f"${self.remote.api_key_env}" + ("" if self.key else ", which is not set")
        return UsageError(
            self._scrub(f"--endpoint {self.remote.endpoint} refused the API key from {where} "
                        f"({getattr(error, 'status_code', '?')})"),
            hint=f"set {self.remote.api_key_env}, or name another variable with --api-key-env",
        )  # fmt: skip

    def _unknown_model(self, error: Any) -> UsageError:
        return UsageError(
            self._scrub(f"--model {self.model} is not served by {self.remote.endpoint}: "
                        f"{server_says(error)}"),
            hint="name the model the server serves (GET /v1/models lists them)",
        )  # fmt: skip

    def _scrub(self, text: str) -> str:
        """Never the key, wherever a server echoes it."""
        return text.replace(self.key, "***") if self.key and len(self.key) >= 4 else text


def server_says(error: Any) -> str:
    """The server's own reason for a refusal (the SDK's message is only `Error code: N`)."""
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error")
        for said in (inner.get("message") if isinstance(inner, dict) else inner,
                     body.get("detail"), body.get("message")):  # fmt: skip
            if said:
                return " ".join(str(said).split())[:300]
    return one_line(error)


def data_url(sample: Sample, image: Any) -> str:
    """The image as a data URL: its own bytes where every API reads the format, else PNG."""
    from PIL import Image

    try:
        with Image.open(sample.image) as original:
            kind, mode = original.format, original.mode
    except OSError as error:  # read once already (open_rgb): a race with a deleted file
        raise InputError(f"{sample.image}: {error}") from None
    if kind in SENT_AS_IS and mode in ("RGB", "L"):
        data, mime = sample.image.read_bytes(), SENT_AS_IS[kind]
    else:  # the RGB pixels the local backends see, losslessly
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        data, mime = buffer.getvalue(), "image/png"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
