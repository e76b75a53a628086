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
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

from vlmkit.errors import InputError, MissingExtraError, UsageError, VlmkitError
from vlmkit.infer.backends.base import Backend, ModelDescription, Prepared, failed, one_line
from vlmkit.infer.selection import Sample
from vlmkit.records import PredictionRecord

SENT_AS_IS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
"""Formats every vision API reads, sent in their own bytes (never re-encoded)."""
CHECK_TIMEOUT_S = 10.0
UNREACHABLE_IN_A_ROW = 3
"""Requests in a row failing to reach the server (after their retries) that stop a run."""
HEARTBEAT_S = 0.5


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
        secret_query = any(word in url.query.lower() for word in ("key", "token", "secret"))
        if url.username or url.password or secret_query:
            raise UsageError(
                "--endpoint holds credentials (user:key@ or a key in its query), which would be "
                "written to the run's record",
                hint=f"put the key in ${remote.api_key_env} (or --api-key-env NAME) instead",
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
        local = {"--load-in-4bit": request.load.load_in_4bit,
                 "--num-beams": request.generation.num_beams > 1,
                 "--device": request.load.device != "auto", "--dtype": request.load.dtype != "auto",
                 "--trust-remote-code": request.load.trust_remote_code}  # fmt: skip
        given = [flag for flag, is_given in local.items() if is_given]
        if given:
            verb = "is" if len(given) == 1 else "are"
            raise UsageError(
                f"{', '.join(given)} {verb} for local backends: the server decides how its "
                "model runs",
                hint="drop them",
            )
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
        self.unreachable = 0
        """Requests in a row that could not reach the server (after their retries)."""

    def run(self, work: Any) -> Any:
        """A coroutine's result, on this backend's own event loop (its client lives there)."""
        return self.loop.run_until_complete(work)

    def describe(self) -> ModelDescription:
        return ModelDescription(
            backend=self.name, model=self.model, adapter=None, family=None, model_type=None,
            prompt_format=None, device=None, dtype=None, endpoint=self.remote.endpoint,
            api_key=f"${self.remote.api_key_env}" + ("" if self.key else " (not set: none sent)"),
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
        return [record for group in self._stream(batch) for record in group]

    def answer(self, batch: list[Prepared[list[dict[str, Any]]]]) -> list[PredictionRecord]:
        """Requests are independent, each failure already its sample's error: never halved
        and sent again (a hosted API bills each)."""
        return self.generate(batch)

    def close(self) -> None:
        if self.client is not None:
            self.run(self.client.close())
            self.client = None
        self.loop.close()

    def answers(self, samples: list[Sample]) -> Iterator[list[PredictionRecord]]:
        """Each answer as it arrives, for the journal to write at once: a kill loses only the
        requests in flight, and closing this calls them off."""
        early, ready = self.prepare(samples)
        if early:
            yield early
        yield from self._stream(ready)

    def _stream(self, batch: list[Prepared[Any]]) -> Iterator[list[PredictionRecord]]:
        """Answers as they arrive; an empty group at least every `HEARTBEAT_S`, so the caller
        can stop (Ctrl-C) even while a server is slow to answer."""
        slots = asyncio.Semaphore(self.remote.concurrency)
        pending = {self.loop.create_task(self._answer_one(item, slots)) for item in batch}
        try:
            while pending:
                done, pending = self.run(
                    asyncio.wait(pending, timeout=HEARTBEAT_S, return_when=asyncio.FIRST_COMPLETED)
                )
                # Every finished task's outcome is read: answers beside a run-stopping error
                # are kept (yielded first), and no exception is left unretrieved.
                stopping = [task.exception() for task in done if task.exception() is not None]
                yield [task.result() for task in done if task.exception() is None]
                if stopping:
                    raise stopping[0]
        finally:
            for task in pending:
                task.cancel()
            if pending:
                self.run(asyncio.gather(*pending, return_exceptions=True))

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
                return self._answered(failed(item.sample, self._scrub(f"refused (400): {said}")))
            except openai.APIStatusError as error:  # still failing after the SDK's retries
                message = f"{error.status_code}: {server_says(error)}"
                return self._answered(failed(item.sample, self._scrub(message)))
            except openai.APIConnectionError as error:  # a timeout or lost connection, retried
                return self._unreachable(item.sample, error)
            except Exception as error:  # a reply the SDK cannot read (not JSON, not a completion)
                message = f"unreadable reply: {one_line(error)}"
                return self._answered(failed(item.sample, self._scrub(message)))
            latency = time.perf_counter() - started
        try:
            return self._answered(self._record(item.sample, reply, latency))
        except Exception as error:  # a malformed reply is its sample's error, not the run's
            return failed(item.sample, self._scrub(f"unreadable reply: {one_line(error)}"))

    def _answered(self, record: PredictionRecord) -> PredictionRecord:
        self.unreachable = 0
        return record

    def _unreachable(self, sample: Sample, error: Any) -> PredictionRecord:
        """One request that could not reach the server is its sample's error; many in a row
        mean the server is gone, and the run stops rather than fill the file with errors."""
        self.unreachable += 1
        if self.unreachable >= UNREACHABLE_IN_A_ROW:
            raise VlmkitError(
                self._scrub(f"--endpoint {self.remote.endpoint} stopped answering: "
                            f"{self.unreachable} requests in a row could not reach it "
                            f"({one_line(error)})"),
                hint="when it is back, run the same command: the answers so far are kept, and "
                "--retry-errors asks the failed ones again",
            )  # fmt: skip
        return failed(sample, self._scrub(one_line(error)))

    def _sampling(self) -> dict[str, Any]:
        settings = self.settings
        fields: dict[str, Any] = {"max_tokens": settings.max_new_tokens}
        if settings.do_sample:
            fields.update(temperature=settings.temperature, top_p=settings.top_p,
                          seed=settings.seed)  # fmt: skip
        else:
            fields["temperature"] = 0.0  # greedy
        return fields

    def _record(self, sample: Sample, reply: Any, latency: float) -> PredictionRecord:
        if not reply.choices:
            return failed(sample, "the server sent no answer (no choices)")
        choice = reply.choices[0]
        usage = reply.usage
        if choice.message.content is None:
            return failed(sample, f"the server sent no text (finish_reason {choice.finish_reason})")
        return PredictionRecord(
            sample.id,
            choice.message.content.strip(),
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
        except openai.NotFoundError:
            if not urlparse(self.remote.endpoint).path.rstrip("/").endswith("/v1"):
                raise UsageError(
                    f"--endpoint {self.remote.endpoint} answers, but has no OpenAI API there "
                    "(404 on /models)",
                    hint=f"servers put it under /v1: --endpoint "
                    f"{self.remote.endpoint.rstrip('/')}/v1",
                ) from None
            return  # no model list here (some servers lack one): the first request will tell
        except openai.APIStatusError:
            return
        if served and self.model not in served:
            raise UsageError(
                f"--model {self.model} is not served by {self.remote.endpoint}",
                hint=f"it serves: {', '.join(sorted(served)[:20])}",
            )

    def _refused(self, error: Any) -> UsageError:
        where = f"${self.remote.api_key_env}" + ("" if self.key else ", which is not set")
        status = getattr(error, "status_code", "?")
        what = "refused the API key from" if status == 401 else "refused access with the key from"
        return UsageError(
            self._scrub(f"--endpoint {self.remote.endpoint} {what} {where} ({status}): "
                        f"{server_says(error)}")[:400],
            hint=f"set {self.remote.api_key_env} (or name another variable with "
            "--api-key-env); a 403 can also be a region or a model the key may not use",
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
                return " ".join(str(said).split())  # whole: the key is masked before any cut
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
