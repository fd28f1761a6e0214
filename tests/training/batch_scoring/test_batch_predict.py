"""``chexnet predict`` batch mode: shards by a stable hash, lists, resume (torn tail, refusals), merge refusals."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from chexnet_cli import main
from models.checkpoint import load_checkpoint, save_checkpoint
from models.labels import NIH_LABELS
from tests.conftest import REPO
from tests.training.test_predict import png_bytes, xray_pixels
from training.batch_scoring.inputs import ScoringInput, Shard, parse_shard, shard_inputs
from training.exit_status import UsageError

TRUNCATED = "The PNG file is truncated: it ends before its IEND chunk."


def make_images(folder: Path, count: int, broken: int = 1) -> list[str]:
    """``count`` PNGs in ``folder`` (two in a subfolder) and ``broken`` truncated ones; their keys."""
    (folder / "sub").mkdir(parents=True)
    keys = []
    for i in range(count):
        key = f"sub/img{i:03d}.png" if i < 2 else f"img{i:03d}.png"
        (folder / key).write_bytes(png_bytes(xray_pixels(i)))
        keys.append(key)
    for i in range(broken):
        data = png_bytes(xray_pixels(100 + i))
        (folder / f"broken{i}.png").write_bytes(data[: len(data) // 2])
        keys.append(f"broken{i}.png")
    return keys


def read_table(path: Path) -> dict[str, list[str]]:
    rows = list(csv.reader(path.open(newline="")))
    assert rows[0] == ["Image Index", "path", *NIH_LABELS, "error"]
    return {row[1]: row for row in rows[1:]}


def predict(checkpoint: Path, *args: str) -> int:
    return main(["predict", "--checkpoint", str(checkpoint), "--batch-size", "2", "--device", "cpu", *args])


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    folder = tmp_path_factory.mktemp("archive")
    return folder, make_images(folder, 9)


def test_shards_partition_the_inputs_whatever_the_order_and_added_files() -> None:
    keys = [f"p{i // 100}/study{i}/image.dcm" for i in range(400)]
    items = [ScoringInput(k, Path(k)) for k in keys]
    shards = [{i.key for i in shard_inputs(items, Shard(k, 4))} for k in range(1, 5)]
    assert sum(len(s) for s in shards) == 400 and set().union(*shards) == set(keys)
    assert all(60 < len(s) < 140 for s in shards)  # a hash spreads them (expected 100 each)
    reordered = [{i.key for i in shard_inputs(items[::-1], Shard(k, 4))} for k in range(1, 5)]
    grown = [ScoringInput(f"new/{i}.png", Path("x")) for i in range(50)] + items
    grown_shards = [{i.key for i in shard_inputs(grown, Shard(k, 4))} & set(keys) for k in range(1, 5)]
    assert reordered == shards and grown_shards == shards


def test_shards_do_not_depend_on_the_hash_seed() -> None:
    code = (
        "from pathlib import Path; from training.batch_scoring.inputs import ScoringInput, Shard, shard_inputs; "
        "print([i.key for i in shard_inputs([ScoringInput(f'k{n}', Path('.')) for n in range(60)], Shard(2, 3))])"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1


@pytest.mark.parametrize("text", ["0/4", "5/4", "3", "a/b", "1/0"])
def test_a_bad_shard_is_refused(text: str) -> None:
    with pytest.raises(UsageError, match="--shard"):
        parse_shard(text)


def test_shards_merged_equal_one_process(
    tmp_path: Path, tiny_checkpoint: Path, images: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, keys = images
    whole = tmp_path / "whole.csv"
    assert predict(tiny_checkpoint, "-r", "--out", str(tmp_path / "classic.csv"), str(folder)) == 1
    assert predict(tiny_checkpoint, "-r", "--resume", "--out", str(whole), str(folder)) == 1
    shards = [tmp_path / f"shard{k}.csv" for k in range(1, 4)]
    for k, out in enumerate(shards, 1):
        predict(tiny_checkpoint, "-r", "--shard", f"{k}/3", "--out", str(out), str(folder))
    merged = tmp_path / "merged.csv"
    assert main(["predict", "merge", str(merged), *map(str, shards)]) == 0
    table = read_table(merged)
    assert sorted(table) == sorted(keys) == list(table)
    assert table == read_table(whole)
    assert table["broken0.png"][2:] == [""] * len(NIH_LABELS) + [TRUNCATED]
    classic = {row[1]: row[2:] for row in list(csv.reader((tmp_path / "classic.csv").open()))[1:]}
    for key in keys[:-1]:
        assert table[key][2:-1] == classic[str(folder / key)]
    assert sum(len(read_table(s)) for s in shards) == len(keys)
    assert "cannot read broken0.png: " + TRUNCATED in capsys.readouterr().err


def test_a_text_or_parquet_list_is_read_relative_to_its_folder_or_root(
    tmp_path: Path, tiny_checkpoint: Path, images: tuple[Path, list[str]]
) -> None:
    folder, keys = images
    listed = tmp_path / "list.txt"
    listed.write_text("# archive\n" + "\n".join(keys[:3]) + "\n\n")
    out = tmp_path / "from-list.csv"
    assert predict(tiny_checkpoint, "--list", str(listed), "--root", str(folder), "--out", str(out)) == 0
    assert list(read_table(out)) == keys[:3]
    (folder / "list.txt").write_text("\n".join(keys[3:5]))
    out2 = tmp_path / "beside.csv"
    assert predict(tiny_checkpoint, "--list", str(folder / "list.txt"), "--out", str(out2)) == 0
    assert list(read_table(out2)) == keys[3:5]
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"path": keys[:3]}), tmp_path / "list.parquet")
    out3 = tmp_path / "from-parquet.parquet"
    assert (
        predict(tiny_checkpoint, "--list", str(tmp_path / "list.parquet"), "--root", str(folder), "--out", str(out3))
        == 0
    )
    parquet = pq.read_table(out3).to_pydict()
    assert parquet["path"] == keys[:3]
    csv_rows = read_table(out)
    for i, key in enumerate(keys[:3]):
        for label in NIH_LABELS:
            assert abs(parquet[label][i] - float(csv_rows[key][2 + NIH_LABELS.index(label)])) <= 5e-7


def test_resume_cuts_a_torn_row_and_scores_only_what_is_missing(
    tmp_path: Path, tiny_checkpoint: Path, images: tuple[Path, list[str]]
) -> None:
    folder, keys = images
    out = tmp_path / "run.csv"
    assert predict(tiny_checkpoint, "-r", "--resume", "--out", str(out), str(folder)) == 1
    full = out.read_bytes()
    lines = full.splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:4]) + lines[4][:25])  # header + 3 rows + a torn one: a kill mid-write
    assert predict(tiny_checkpoint, "-r", "--resume", "--out", str(out), str(folder)) == 1
    assert read_table(out) == {row[1]: row for row in csv.reader(full.decode().splitlines()[1:])}
    assert len(out.read_bytes().splitlines()) == len(keys) + 1


def test_an_existing_table_needs_resume_and_the_same_model(
    tmp_path: Path, tiny_checkpoint: Path, images: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, _ = images
    out = tmp_path / "run.csv"
    assert predict(tiny_checkpoint, "--shard", "1/2", "-r", "--out", str(out), str(folder)) in (0, 1)
    assert predict(tiny_checkpoint, "--shard", "1/2", "-r", "--out", str(out), str(folder)) == 2
    assert "exists: --resume continues it" in capsys.readouterr().err
    other = load_checkpoint(tiny_checkpoint)
    other.state_dict["classifier.weight"] = other.state_dict["classifier.weight"] + 1
    save_checkpoint(other, tmp_path / "other.pt")
    assert predict(tmp_path / "other.pt", "--shard", "1/2", "-r", "--resume", "--out", str(out), str(folder)) == 2
    assert "it was scored with another model (sha256); write this job to a new --out" in capsys.readouterr().err
    assert predict(tiny_checkpoint, "--shard", "2/2", "-r", "--resume", "--out", str(out), str(folder)) == 2
    assert "another shard (1/2, now 2/2)" in capsys.readouterr().err


def test_merge_refuses_missing_doubled_and_unfinished_shards(
    tmp_path: Path, tiny_checkpoint: Path, images: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, _ = images
    shards = [tmp_path / f"s{k}.csv" for k in (1, 2, 3)]
    for k, out in enumerate(shards, 1):
        predict(tiny_checkpoint, "-r", "--shard", f"{k}/3", "--out", str(out), str(folder))
    capsys.readouterr()
    merged = str(tmp_path / "m.csv")
    assert main(["predict", "merge", merged, str(shards[0]), str(shards[2])]) == 1
    assert "chexnet predict: shards 2 of 3 are missing" in capsys.readouterr().err
    assert main(["predict", "merge", merged, *map(str, shards), str(shards[1])]) == 1
    assert f"shard 2/3 is given twice: {shards[1]} and {shards[1]}" in capsys.readouterr().err
    lines = shards[2].read_bytes().splitlines(keepends=True)
    shards[2].write_bytes(b"".join(lines[:-1]))
    assert main(["predict", "merge", merged, *map(str, shards)]) == 1
    rows = len(lines) - 2
    assert f"holds {rows} of its {rows + 1} inputs: run its job again with --resume" in capsys.readouterr().err
    assert not Path(merged).exists()


def test_a_killed_job_resumed_holds_every_row_once(
    tmp_path: Path, tiny_checkpoint: Path, images: tuple[Path, list[str]]
) -> None:
    folder, keys = images
    reference = tmp_path / "reference.csv"
    predict(tiny_checkpoint, "-r", "--resume", "--out", str(reference), str(folder))
    out = tmp_path / "killed.csv"
    command = [sys.executable, "-m", "chexnet_cli", "predict", "--checkpoint", str(tiny_checkpoint), "--batch-size",
               "1", "--device", "cpu", "-r", "--resume", "--out", str(out), str(folder)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    try:
        for _ in range(1200):  # at most 60 s for the start (torch's import) and 3 rows
            if (out.is_file() and len(out.read_bytes().splitlines()) >= 4) or process.poll() is not None:
                break
            time.sleep(0.05)
        process.kill()
    finally:
        process.wait()
    written = len(out.read_bytes().splitlines()) - 1
    assert 3 <= written < len(keys), "the job was not killed in the middle"
    assert subprocess.run(command, env=env, stderr=subprocess.DEVNULL, check=False).returncode == 1
    table = read_table(out)
    assert len(out.read_bytes().splitlines()) == len(keys) + 1 and sorted(table) == sorted(keys)
    assert table == read_table(reference)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda lines: [b'"' + lines[0], *lines[1:]], "its first line is not the header"),
        (lambda lines: [*lines[:3], b"garbage\n", *lines[3:]], "record 4 is not a row of this table"),
        (lambda lines: [lines[0], lines[1][:20] + b"\n", *lines[2:]], "record 2 is not a row of this table"),
        (lambda lines: [], "its first line is not the header"),
    ],
    ids=["damaged header", "a line in the middle", "a cut line in the middle", "emptied"],
)
def test_resume_refuses_damage_it_cannot_tell_from_a_torn_tail_and_cuts_nothing(
    tmp_path: Path,
    tiny_checkpoint: Path,
    images: tuple[Path, list[str]],
    capsys: pytest.CaptureFixture[str],
    damage: Any,
    message: str,
) -> None:
    folder, _ = images
    out = tmp_path / "run.csv"
    assert predict(tiny_checkpoint, "-r", "--resume", "--out", str(out), str(folder)) == 1
    damaged = b"".join(damage(out.read_bytes().splitlines(keepends=True)))
    out.write_bytes(damaged)
    capsys.readouterr()
    assert predict(tiny_checkpoint, "-r", "--resume", "--out", str(out), str(folder)) == 1  # a file it cannot use
    assert message in capsys.readouterr().err
    assert out.read_bytes() == damaged  # nothing cut, nothing started over


def test_plain_predict_does_not_overwrite_a_batch_table(
    tmp_path: Path, tiny_checkpoint: Path, images: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, keys = images
    out = tmp_path / "run.csv"
    assert predict(tiny_checkpoint, "-r", "--resume", "--out", str(out), str(folder)) == 1
    before = out.read_bytes()
    assert predict(tiny_checkpoint, "--out", str(out), str(folder / keys[2])) == 2
    assert "is a batch results table" in capsys.readouterr().err
    assert out.read_bytes() == before


def test_merge_refuses_shards_of_different_input_lists(
    tmp_path: Path, tiny_checkpoint: Path, images: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, keys = images
    long_list, short_list = tmp_path / "long.txt", tmp_path / "short.txt"
    long_list.write_text("\n".join(keys))
    short_list.write_text("\n".join(keys[:5]))
    shards = [tmp_path / f"s{k}.csv" for k in (1, 2)]
    for k, (listed, out) in enumerate(zip((long_list, short_list), shards, strict=True), 1):
        predict(tiny_checkpoint, "--list", str(listed), "--root", str(folder), "--shard", f"{k}/2", "--out", str(out))
    capsys.readouterr()
    assert main(["predict", "merge", str(tmp_path / "m.csv"), *map(str, shards)]) == 1
    assert "differ in input list" in capsys.readouterr().err
    assert main(["predict", "merge", str(tmp_path / "m.csv"), str(shards[0]), str(tmp_path / "nowhere.csv")]) == 2
    assert "nowhere.csv: no such table" in capsys.readouterr().err


def test_a_list_with_a_byte_order_mark_and_crlf_is_read_and_a_nul_is_named(
    tmp_path: Path, tiny_checkpoint: Path, images: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, keys = images
    listed = tmp_path / "excel.txt"
    listed.write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(key.encode() for key in keys[:3]) + b"\r\n")
    out = tmp_path / "out.csv"
    assert predict(tiny_checkpoint, "--list", str(listed), "--root", str(folder), "--out", str(out)) == 0
    assert list(read_table(out)) == keys[:3]
    listed.write_bytes(b"img003.png\nimg\x00004.png\n")
    assert predict(tiny_checkpoint, "--list", str(listed), "--root", str(folder), "--out", str(tmp_path / "x.csv")) == 1
    assert "line 2 holds a NUL byte" in capsys.readouterr().err
