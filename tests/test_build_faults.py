"""Fault tests of the build: killed workers (local and Ray), Ctrl-C, a killed driver, corrupt shards.

Every interrupted or faulty build must end, after a rerun where needed, with
the same table as an uninterrupted build, value for value, with no row lost
or written twice. The fake trainer keeps these fast and deterministic; the
fault injector :class:`~nasbench_harness.build.KillWorker` SIGKILLs the real
worker process mid-task.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from test_build import assert_same_tables, build, fake_settings

from nasbench_harness import cli
from nasbench_harness.build import FakeTrainer, KillWorker, merge, plan_tasks, read_rows
from nasbench_harness.build.store import build_files
from nasbench_harness.errors import BuildError

SETTINGS = {"limit": 12, "seeds": (0, 1), "epochs": 3}
N_ROWS = 24


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The table of an uninterrupted build."""
    tmp = tmp_path_factory.mktemp("reference")
    result = build(fake_settings(**SETTINGS), tmp / "b")
    assert result.complete
    return merge([tmp / "b"], tmp / "reference.h5").path


def assert_each_row_once(out):
    """Every planned row is on disk exactly once (part files, after compaction)."""
    keys = [row.task for path in build_files(out) for row in read_rows(path).rows]
    assert len(keys) == len(set(keys)) == N_ROWS
    assert set(keys) == set(plan_tasks(fake_settings(**SETTINGS)))


def kill_markers(tmp_path):
    markers = tmp_path / "kills"
    markers.mkdir()
    return markers


def test_local_worker_sigkill_mid_run(tmp_path, reference):
    markers = kill_markers(tmp_path)
    trainer = KillWorker(FakeTrainer(sleep_s=0.01), str(markers), times=2, after_calls=2)
    result = build(fake_settings(**SETTINGS), tmp_path / "b", trainer=trainer, workers=2)
    assert len(list(markers.iterdir())) == 2  # two workers really died mid-task
    assert result.complete and not result.failures and result.n_trained == N_ROWS
    assert_each_row_once(tmp_path / "b")
    merged = merge([tmp_path / "b"], tmp_path / "t.h5")
    assert merged.n_duplicates == 0 and merged.n_rows == N_ROWS
    assert_same_tables(reference, merged.path)


def test_task_that_keeps_killing_its_worker_fails_and_the_build_goes_on(tmp_path):
    settings = fake_settings(limit=5, seeds=(0,), epochs=2)
    bad = plan_tasks(settings)[2]
    markers = kill_markers(tmp_path)
    trainer = KillWorker(FakeTrainer(), str(markers), times=10, arch=bad.arch)
    result = build(settings, tmp_path / "b", trainer=trainer, workers=2)
    assert len(list(markers.iterdir())) == 3
    assert [(f.task, f.attempts) for f in result.failures] == [(bad, 3)]
    assert "died" in result.failures[0].reason
    assert result.n_done == 4 and not result.complete
    merged = merge([tmp_path / "b"], tmp_path / "t.h5")
    assert list(merged.missing) == [bad]


@pytest.mark.ray
@pytest.mark.slow
def test_ray_worker_sigkill_mid_run(tmp_path, reference):
    pytest.importorskip("ray")
    markers = kill_markers(tmp_path)
    trainer = KillWorker(FakeTrainer(sleep_s=0.01), str(markers), times=1, after_calls=1)
    result = build(
        fake_settings(**SETTINGS), tmp_path / "b", executor="ray", workers=2, trainer=trainer
    )
    assert len(list(markers.iterdir())) == 1
    assert result.complete and not result.failures
    assert_each_row_once(tmp_path / "b")
    merged = merge([tmp_path / "b"], tmp_path / "t.h5")
    assert merged.n_duplicates == 0 and merged.n_rows == N_ROWS
    assert_same_tables(reference, merged.path)


def _build_command(out):
    return [
        sys.executable,
        "-m",
        "nasbench_harness.cli",
        "build",
        "--dry-run",
        "0.05",
        "--limit",
        str(SETTINGS["limit"]),
        "--seeds",
        ",".join(map(str, SETTINGS["seeds"])),
        "--epochs",
        str(SETTINGS["epochs"]),
        "--workers",
        "2",
        "--no-progress",
        "--out",
        str(out),
    ]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_and_wait_for_rows(out, n_rows=4, timeout=60.0):
    process = subprocess.Popen(
        _build_command(out),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a terminal's Ctrl-C, also when the tests run as a background job (which ignores SIGINT)
        preexec_fn=_default_sigint,
    )
    deadline = time.monotonic() + timeout
    while len(list((out / "rows").glob("*.h5"))) < n_rows:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"build ended or stalled before {n_rows} rows: {process.communicate()}")
        time.sleep(0.02)
    return process


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_keeps_finished_rows_and_a_rerun_continues(tmp_path, reference, signum):
    out = tmp_path / "b"
    process = _start_and_wait_for_rows(out)
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted" in err and "rerun the same command" in err
    assert len(err.strip().splitlines()) == 1
    assert not list((out / "rows").glob("*.h5"))  # compacted on the way out
    kept = sum(len(read_rows(p).rows) for p in build_files(out))
    assert 4 <= kept < N_ROWS

    rerun = subprocess.run(_build_command(out), capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{N_ROWS - kept} trained now, {kept} resumed" in rerun.stderr
    assert_each_row_once(out)
    assert_same_tables(reference, merge([out], tmp_path / "t.h5").path)


def test_killed_driver_loses_no_finished_row(tmp_path, reference):
    out = tmp_path / "b"
    process = _start_and_wait_for_rows(out)
    process.kill()  # SIGKILL: no clean-up at all; workers finish their task and exit
    process.communicate(timeout=60)
    time.sleep(0.5)
    left = len(list((out / "rows").glob("*.h5")))
    assert left >= 4
    rerun = subprocess.run(_build_command(out), capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert_each_row_once(out)
    assert_same_tables(reference, merge([out], tmp_path / "t.h5").path)


def test_corrupt_part_file_gets_a_clear_error(tmp_path, capsys):
    settings = fake_settings(limit=3, seeds=(0,), epochs=2)
    out = tmp_path / "b"
    build(settings, out)
    (part,) = build_files(out)
    part.write_bytes(os.urandom(2048))
    with pytest.raises(BuildError) as error:
        build(settings, out)
    assert str(part) in str(error.value) and "delete it" in str(error.value)

    args = ["build", "--dry-run", "--limit", "3", "--seeds", "0", "--epochs", "2"]
    assert cli.main(args + ["--no-progress", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(part) in err
    assert cli.main(["merge", str(out), "-o", str(tmp_path / "t.h5")]) == 2
    assert str(part) in capsys.readouterr().err

    part.unlink()  # the fix the message gives: its rows are retrained
    assert build(settings, out).n_trained == 3
