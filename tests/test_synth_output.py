"""The staged output folder: refusal, --overwrite, and nothing half-written on failure."""

from __future__ import annotations

from pathlib import Path

import pytest
from synth_helpers import draw, records, tree_bytes

from vlmkit.errors import InputError, UsageError
from vlmkit.synth.circled_letter import from_preset, make_plan, write_dataset


def leftovers(parent: Path) -> list[str]:
    """Staging or retired folders a run may have left beside its output."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_refuses_a_non_empty_folder_without_overwrite(tmp_path: Path):
    out = tmp_path / "data"
    draw(out, n=3)
    before = tree_bytes(out)
    with pytest.raises(UsageError, match="already exists and is not empty") as error:
        draw(out, n=3, seed=1)
    assert "--overwrite" in error.value.hint
    assert tree_bytes(out) == before


def test_overwrite_replaces_an_earlier_dataset_whole(tmp_path: Path):
    out = tmp_path / "data"
    draw(out, n=3, test_fraction=0.5)
    plan = make_plan(from_preset("random", n=4, image_size=(160, 160)))
    write_dataset(plan, out, overwrite=True)
    assert not (out / "train").exists()  # nothing of the old dataset survives
    assert len(records(out)) == 4
    assert leftovers(tmp_path) == []


def test_overwrite_never_deletes_a_folder_synth_did_not_write(tmp_path: Path):
    out = tmp_path / "home"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    plan = make_plan(from_preset("random", n=2))
    with pytest.raises(UsageError, match="only replaces a folder that vlmkit synth wrote"):
        write_dataset(plan, out, overwrite=True)
    assert (out / "thesis.tex").read_text() == "precious"


def test_empty_folder_and_missing_parents_are_fine(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    draw(tmp_path / "empty", n=2)
    draw(tmp_path / "a" / "b" / "c", n=2)
    assert len(records(tmp_path / "empty")) == len(records(tmp_path / "a" / "b" / "c")) == 2


def test_a_file_is_not_an_output_folder(tmp_path: Path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        draw(tmp_path / "f", n=2)


@pytest.mark.parametrize("workers", [1, 2])
def test_failure_mid_run_leaves_the_previous_dataset_untouched(tmp_path: Path, workers: int):
    out = tmp_path / "data"
    draw(out, n=3)
    before = tree_bytes(out)
    # A 12-point ring is too thick for the narrow "t" that starts the second word, so the run
    # fails on its 16th image, after 15 were written.
    words = tmp_path / "w.txt"
    words.write_text("Acknowledgement\ntHyUiKaRbNqWeOpXcZvM\n")
    config = from_preset(
        "paper", words=str(words), families=("Liberation Sans",), thickness=(12.0,),
        padding=(200.0,),
    )  # fmt: skip
    plan = make_plan(config)
    with pytest.raises(UsageError, match=r"cannot circle letter 0 of 'tHyU.*so thick") as error:
        write_dataset(plan, out, overwrite=True, workers=workers)
    assert "--thickness" in error.value.hint  # the hint survives the trip back from a worker
    assert tree_bytes(out) == before
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("workers", [1, 2])
def test_interrupt_leaves_nothing_under_the_final_name(tmp_path: Path, workers: int):
    drawn = []

    def interrupt_after_three() -> None:
        drawn.append(1)
        if len(drawn) == 3:
            raise KeyboardInterrupt

    plan = make_plan(from_preset("random", n=200, image_size=(128, 128)))
    with pytest.raises(KeyboardInterrupt):
        write_dataset(plan, tmp_path / "data", workers=workers, on_image=interrupt_after_three)
    assert not (tmp_path / "data").exists()
    assert leftovers(tmp_path) == []


def test_staging_left_by_a_killed_run_is_removed(tmp_path: Path):
    import socket
    import subprocess
    import sys

    # A pid that existed and is gone: a finished child process.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    abandoned = tmp_path / f".data.partial-{socket.gethostname()}-{dead}"
    other_host = tmp_path / f".data.partial-elsewhere-{dead}"
    other_host.mkdir()
    (abandoned / "images").mkdir(parents=True)
    (abandoned / "images" / "000000.png").write_bytes(b"half")
    unrelated = tmp_path / ".data.notes-1"
    unrelated.mkdir()
    draw(tmp_path / "data", n=2)
    assert not abandoned.exists()
    assert unrelated.exists() and other_host.exists()
    assert leftovers(tmp_path) == [".data.notes-1", other_host.name]


def test_the_current_folder_is_never_an_output(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for out in (Path("."), Path(""), tmp_path.parent):
        with pytest.raises(UsageError, match="is the current folder or holds it"):
            draw(out, n=2)


def test_a_file_on_the_way_to_the_output_is_named(tmp_path: Path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UsageError, match=r"afile is a file"):
        draw(tmp_path / "afile" / "sub", n=2)


def test_a_write_failure_is_a_clear_error(tmp_path: Path, monkeypatch):
    # A disk that fills up mid-run: the PNG writer raises ENOSPC after a few images.
    from vlmkit.synth.circled_letter import generate

    real = generate.png_bytes
    calls = []

    def filling_disk(image):
        calls.append(1)
        if len(calls) > 3:
            raise OSError(28, "No space left on device")
        return real(image)

    monkeypatch.setattr(generate, "png_bytes", filling_disk)
    with pytest.raises(InputError, match=r"cannot write the dataset \(No space left on device"):
        draw(tmp_path / "data", n=8)
    assert not (tmp_path / "data").exists() and leftovers(tmp_path) == []
