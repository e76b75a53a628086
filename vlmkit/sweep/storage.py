"""Where a study lives: a journal file in SWEEP_DIR (the default: no server), a journal file on
a shared disk, or a database (`--storage postgresql://...`), and which study is whose.

A study records the identity of its sweep (data, model, base settings, space, metric): a run
of another sweep against it is refused before anything trains, unless it is told to replace it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlmkit.errors import UsageError

log = logging.getLogger(__name__)

DEFAULT_JOURNAL = "study.journal"
IDENTITY = "vlmkit_sweep"
"""The study's user attribute holding its sweep's identity (`SweepSpace.identity`)."""

HEARTBEAT_SECONDS = 60
GRACE_SECONDS = 180
"""A database study fails a trial whose worker has been silent this long, and retries it."""


DRIVERS = {"psycopg": "'psycopg[binary]'", "psycopg2": "psycopg2-binary", "MySQLdb": "mysqlclient"}
"""The pip package of a database driver whose module has another name."""


@dataclass(frozen=True)
class StorageSpec:
    """A study's place: `url` is what Optuna opens (it may hold a password); `shown` is not."""

    url: str | None
    journal: Path | None
    shown: str
    key: str = ""
    """What sweep.json records, the same whichever folder the command runs in."""

    @property
    def is_database(self) -> bool:
        return self.journal is None

    @property
    def own(self) -> bool:
        """The default: SWEEP_DIR's own journal (a copied folder takes its study along)."""
        return self.key == f"SWEEP_DIR/{DEFAULT_JOURNAL}"

    @property
    def file(self) -> Path | None:
        """The file the study is written to, where there is one (a journal, an SQLite file)."""
        if self.journal is not None:
            return self.journal
        if self.url and self.url.startswith("sqlite:///"):
            return Path(self.url.removeprefix("sqlite:///").split("?")[0])
        return None


def storage_spec(flag: str | None, sweep_dir: Path) -> StorageSpec:
    """The study's place: SWEEP_DIR's journal, another journal file, or a database URL."""
    if flag is None:
        path = sweep_dir / DEFAULT_JOURNAL
        return StorageSpec(None, path, f"journal file {path}", f"SWEEP_DIR/{DEFAULT_JOURNAL}")
    if not flag.strip():
        raise UsageError("--storage is empty", hint="leave it out for a study file in SWEEP_DIR")
    if "://" in flag:
        shown = flag if flag.startswith("sqlite") else _hide_password(flag)
        if flag.split("?")[0].rstrip("/") in ("sqlite:", "sqlite:/") or "memory:" in flag:
            raise UsageError(
                f"--storage {shown} keeps the study in memory: it would be lost when the "
                "command ends, and no other worker could share it",
                hint="name a file (sqlite:///sweeps/study.db), a journal file, or leave "
                "--storage out",
            )
        return StorageSpec(flag, None, shown, shown)
    path = Path(flag.removeprefix("file:"))
    if path.is_dir():
        raise UsageError(
            f"--storage {flag} is a folder",
            hint="name a journal file in it (e.g. --storage /shared/sweeps/cord.journal)",
        )
    if not path.parent.is_dir():
        raise UsageError(
            f"--storage {flag}: the folder {path.parent} does not exist",
            hint="create it (on a disk every worker sees), or name another file",
        )
    return StorageSpec(None, path, f"journal file {path}", f"journal file {path.resolve()}")


def check_journal(spec: StorageSpec, label: str = "--storage") -> None:
    """A journal file that exists must be one (Optuna appends to whatever it is given)."""
    path = spec.journal
    if path is None or not path.is_file() or path.stat().st_size == 0:
        return
    try:
        with open(path, "rb") as handle:
            first = json.loads(handle.readline())
    except (OSError, ValueError):
        first = None
    if not isinstance(first, dict) or "op_code" not in first:
        raise UsageError(
            f"{label} {path} is a file that is not an Optuna journal",
            hint="name a new file (e.g. sweeps/study.journal), or a database URL",
        )


def open_storage(spec: StorageSpec) -> Any:
    """Optuna's storage object, reached now: an unreachable database fails here."""
    import optuna

    if spec.journal is not None:
        from optuna.storages.journal import JournalFileBackend

        try:
            spec.journal.parent.mkdir(parents=True, exist_ok=True)
            return optuna.storages.JournalStorage(JournalFileBackend(str(spec.journal)))
        except OSError as error:
            raise UsageError(
                f"cannot open the study's {spec.shown} ({error.strerror or error})",
                hint="check that the disk is writable, or pass --storage",
            ) from None
    from vlmkit.sweep.workers import retry_callback

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # heartbeats are marked experimental
            return optuna.storages.RDBStorage(
                spec.url,
                heartbeat_interval=HEARTBEAT_SECONDS,
                grace_period=GRACE_SECONDS,
                heartbeat_stale_trial_callback=retry_callback(),
            )
    except ImportError as error:  # Optuna wraps the driver's ModuleNotFoundError
        cause = error.__cause__ or error.__context__ or error
        name = getattr(cause, "name", None) or "for this URL"
        raise UsageError(
            f"--storage {spec.shown}: the database driver {name} is not installed",
            hint=f"pip install {DRIVERS.get(name, name)}",
        ) from None
    except Exception as error:  # sqlalchemy's errors, without importing it for journal users
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UsageError(
            f"--storage {spec.shown} cannot be reached: {reason}",
            hint="check the URL, that the server runs and accepts this machine, or leave "
            "--storage out for a study file in SWEEP_DIR",
        ) from None


def _hide_password(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1] if "@" in url else url


SWEEP_DIR_ATTR = "vlmkit_sweep_dir"
"""The study's user attribute naming the SWEEP_DIR that created it (--overwrite replaces
only the study of its own folder)."""


def study_attributes(storage: Any, name: str) -> dict[str, Any] | None:
    """The user attributes of the study `name` in `storage`; None where there is none."""
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return None
    return storage.get_study_user_attrs(study_id)


def differences(recorded: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """The keys of a sweep's identity that differ, with `search` and `settings` per entry."""
    changed = []
    for key in sorted(set(recorded) | set(wanted)):
        old, new = recorded.get(key), wanted.get(key)
        if isinstance(old, dict) and isinstance(new, dict) and key in ("search", "settings"):
            changed += [
                f"{key}.{k}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)
            ]
        elif old != new:
            changed.append(key)
    return changed


def delete_study(storage: Any, name: str) -> None:
    import optuna

    with contextlib.suppress(KeyError):  # none there yet
        optuna.delete_study(study_name=name, storage=storage)
