"""Tests of nasbench_harness.build: plan, shards, rows on disk, resume, merge, CLI.

The machinery is exercised with the fake trainer (deterministic synthetic
curves, no torch); one end-to-end test trains real architectures.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from nasbench_harness import cli
from nasbench_harness.build import (
    FakeTrainer,
    Shard,
    make_settings,
    merge,
    plan_tasks,
    read_rows,
    run_build,
)
from nasbench_harness.build.defaults import TAIL_PER_WORKER
from nasbench_harness.build.plan import (
    NB201_OP_COST,
    BuildSettings,
    arch_order,
    dispatch_order,
    expected_cost,
    init_build_dir,
)
from nasbench_harness.build.store import (
    CURVES,
    DETERMINISTIC_CURVES,
    Row,
    RowIndex,
    build_files,
    clean_tmp_files,
    write_rows,
)
from nasbench_harness.errors import BuildError
from nasbench_harness.space import get_space
from nasbench_harness.table import open_table

#: A tiny real recipe: trains in well under a second per arch on one core.
TINY = {
    "train_size": 300,
    "valid_size": 100,
    "test_size": 100,
    "channels": 4,
    "cells_per_stage": 1,
    "epochs": 2,
    "batch_size": 100,
}


def fake_settings(limit=8, seeds=(0, 1), epochs=3, **changes) -> BuildSettings:
    return make_settings(seeds=seeds, limit=limit, epochs=epochs, trainer="fake", **changes)


def build(settings, out, **kwargs):
    kwargs.setdefault("workers", 2)
    kwargs.setdefault("progress", False)
    return run_build(settings, out, **kwargs)


def expected_curves(settings, task):
    """What the fake trainer computes for a task (its deterministic curves)."""
    space = get_space(settings.space)
    result = FakeTrainer()(space.to_string(task.arch), task.seed, settings.recipe, None)
    return {name: getattr(result, name) for name in DETERMINISTIC_CURVES}


# --- plan -------------------------------------------------------------------


def test_plan_is_a_fixed_sample_of_distinct_canonical_archs():
    space = get_space("nb201")
    settings = fake_settings(limit=50)
    tasks = plan_tasks(settings)
    assert len(tasks) == 100
    assert plan_tasks(settings) == tasks
    archs = [t.arch for t in tasks if t.seed == 0]
    assert len(set(archs)) == 50
    assert all(space.canonical_ids[a] == a for a in archs)
    # arch-major order: every seed of an arch together, the same archs for each seed
    assert [t.arch for t in tasks if t.seed == 1] == archs
    assert [(t.arch, t.seed) for t in tasks[:4]] == [
        (archs[0], 0),
        (archs[0], 1),
        (archs[1], 0),
        (archs[1], 1),
    ]
    # a smaller limit is a prefix of the same shuffled order
    small = plan_tasks(fake_settings(limit=10, seeds=(0,)))
    assert [t.arch for t in small] == archs[:10]
    # another order seed is another sample
    other = plan_tasks(fake_settings(limit=50, order_seed=1))
    assert [t.arch for t in other if t.seed == 0] != archs


def test_unlimited_plan_covers_every_unique_arch():
    space = get_space("nb201")
    tasks = plan_tasks(fake_settings(limit=None, seeds=(3,)))
    assert sorted(t.arch for t in tasks) == sorted(int(i) for i in space.unique_indices)
    assert len(tasks) == space.n_unique


def test_shards_partition_the_plan():
    settings = fake_settings(limit=13)
    tasks = plan_tasks(settings)
    shards = [plan_tasks(settings, Shard(i, 3)) for i in range(3)]
    assert sorted(sum(shards, []), key=tasks.index) == tasks
    order = [int(a) for a in arch_order(settings)]
    assert shards[1] == [t for t in tasks if order.index(t.arch) % 3 == 1]
    for shard in shards:  # every seed of a shard's archs is in that shard
        archs = {t.arch for t in shard}
        assert len(shard) == 2 * len(archs) and {t.seed for t in shard} == {0, 1}


def test_expected_cost_counts_only_the_ops_a_cell_runs():
    space = get_space("nb201")
    empty = space.index(("none",) * 6)
    assert expected_cost("nb201", empty) == 1.0
    # a conv into node 1, whose only ways on (1->2, 1->3) are none, never reaches the output
    dead = space.index(("nor_conv_3x3", "none", "none", "skip_connect", "none", "none"))
    alive = space.index(("nor_conv_3x3", "none", "none", "skip_connect", "skip_connect", "none"))
    assert expected_cost("nb201", dead) == pytest.approx(1.0 + NB201_OP_COST["skip_connect"])
    assert expected_cost("nb201", alive) == pytest.approx(
        1.0 + NB201_OP_COST["nor_conv_3x3"] + 2 * NB201_OP_COST["skip_connect"]
    )
    heavy = space.index(("nor_conv_3x3",) * 6)
    assert expected_cost("nb201", heavy) > expected_cost("nb201", alive)
    assert expected_cost("nb101", 0) is None


def test_only_the_last_tasks_are_dispatched_longest_first():
    settings = fake_settings(limit=20)
    # the plan's tasks, cheapest first: the worst order for the tail
    tasks = sorted(plan_tasks(settings), key=lambda t: expected_cost("nb201", t.arch))
    ordered = dispatch_order(tasks, "nb201", workers=2)
    n_tail = TAIL_PER_WORKER * 2
    assert sorted(ordered) == sorted(tasks)  # the same tasks, none lost or doubled
    assert ordered[:-n_tail] == tasks[:-n_tail]  # the plan's random prefix is kept
    tail = ordered[-n_tail:]
    costs = [expected_cost("nb201", t.arch) for t in tail]
    assert costs == sorted(costs, reverse=True) and costs[0] > costs[-1]
    assert tail != tasks[-n_tail:]
    for first, second in zip(tail[::2], tail[1::2]):  # every seed of an arch together
        assert first.arch == second.arch and (first.seed, second.seed) == (0, 1)
    assert dispatch_order(tasks[:1], "nb201", workers=2) == tasks[:1]
    # 3 seeds: a tail of 4 tasks would split an arch; it starts at an arch's first seed instead
    three = plan_tasks(fake_settings(limit=6, seeds=(0, 1, 2)))
    ordered = dispatch_order(three, "nb201", workers=1)
    assert sorted(ordered) == sorted(three)
    for k in range(0, len(ordered), 3):
        assert len({t.arch for t in ordered[k : k + 3]}) == 1
    assert dispatch_order(tasks, "nb101", workers=2) == tasks  # no cost model: plan order


def test_a_build_trains_its_tasks_in_dispatch_order(tmp_path):
    settings = fake_settings(limit=10)
    assert dispatch_order(plan_tasks(settings), "nb201", workers=1) != plan_tasks(settings)
    build(settings, tmp_path / "b", workers=1)
    rows = sorted(
        (r for p in build_files(tmp_path / "b") for r in read_rows(p).rows),
        key=lambda r: r.start_time,
    )
    assert [r.task for r in rows] == dispatch_order(plan_tasks(settings), "nb201", workers=1)


@pytest.mark.parametrize("text", ["3/3", "-1/2", "a/b", "1", "1/0"])
def test_bad_shard_is_refused(text):
    with pytest.raises(BuildError, match="--shard"):
        Shard.parse(text)


def test_bad_settings_are_refused():
    with pytest.raises(BuildError, match="seeds"):
        fake_settings(seeds=(0, 0))
    with pytest.raises(BuildError, match="limit"):
        fake_settings(limit=0)
    with pytest.raises(BuildError, match="recipe"):
        fake_settings(reduction="heavy")
    with pytest.raises(BuildError, match="trains the cells of nb201 only"):
        fake_settings(space="nb101")  # before a single task fails on a cluster


def test_equal_recipes_spelled_differently_are_one_build():
    assert fake_settings(weight_decay=0).fingerprint == fake_settings(weight_decay=0.0).fingerprint


@pytest.mark.parametrize("content", ["null", "[1, 2]", '{"version": 99}'])
def test_unusable_settings_files_are_named(tmp_path, content):
    (tmp_path / "build.json").write_text(content)
    with pytest.raises(BuildError) as error:
        merge([tmp_path], tmp_path / "t.h5")
    assert str(tmp_path / "build.json") in str(error.value)


def test_a_table_given_to_merge_is_named_as_a_table_not_a_corrupt_file(tmp_path):
    table = Path(__file__).parent / "data" / "nb201-synthetic-v1.h5"
    with pytest.raises(BuildError) as error:
        merge([table], tmp_path / "t.h5")
    message = str(error.value)
    assert "is a merged nasbench table" in message and "delete" not in message


def test_dry_run_tables_describe_the_data_set_they_stand_for(tmp_path):
    sizes = {"train_size": 400, "valid_size": 100, "test_size": 100}
    settings = fake_settings(limit=2, seeds=(0,), dataset="cifar100", **sizes)
    build(settings, tmp_path / "b", workers=1)
    dataset = open_table(merge([tmp_path / "b"], tmp_path / "t.h5").path).provenance["dataset"]
    assert dataset["input_shape"] == [3, 32, 32] and dataset["n_classes"] == 100
    recipe = settings.recipe
    assert dataset["splits"] == {s: recipe[f"{s}_size"] for s in ("train", "valid", "test")}
    none = fake_settings(limit=2, seeds=(0,), dataset="cifar100")  # sizes left to the data
    build(none, tmp_path / "c", workers=1)
    dataset = open_table(merge([tmp_path / "c"], tmp_path / "u.h5").path).provenance["dataset"]
    assert dataset["splits"]["train"] == 50000  # the data set's default, not None


def test_settings_round_trip_through_json():
    settings = fake_settings(limit=5)
    again = BuildSettings.from_dict(json.loads(settings.to_json()))
    assert again == settings and again.fingerprint == settings.fingerprint


def test_other_settings_in_the_same_directory_are_refused(tmp_path):
    init_build_dir(tmp_path, fake_settings(epochs=3))
    init_build_dir(tmp_path, fake_settings(epochs=3))  # same settings: fine
    with pytest.raises(BuildError) as error:
        init_build_dir(tmp_path, fake_settings(epochs=4, limit=9))
    message = str(error.value)
    assert "recipe.epochs: 3 -> 4" in message and "limit: 8 -> 9" in message
    assert "new --out" in message


# --- rows on disk -------------------------------------------------------------


def _one_row_file(tmp_path):
    settings = fake_settings(limit=2, seeds=(0,))
    result = build(settings, tmp_path / "b", workers=1)
    assert result.complete
    (part,) = build_files(tmp_path / "b")
    return settings, part


def test_rows_round_trip(tmp_path):
    settings, part = _one_row_file(tmp_path)
    content = read_rows(part)
    assert content.settings == settings
    assert sorted(r.task for r in content.rows) == sorted(plan_tasks(settings))
    row = content.rows[0]
    for name, values in expected_curves(settings, row.task).items():
        np.testing.assert_array_equal(row.curves[name], values)
    assert row.wall_time_s >= 0 and row.hostname and row.pid > 0 and row.code_version
    again = read_rows(
        write_rows(tmp_path / "copy.h5", content.rows, settings, content.dataset_info)
    )
    assert again.dataset_info == content.dataset_info and len(again.rows) == len(content.rows)
    for back, row in zip(again.rows, content.rows):  # every field, times and strings included
        assert set(back.curves) == set(row.curves)
        for name in row.curves:
            np.testing.assert_array_equal(back.curves[name], row.curves[name])
        for name in Row.__dataclass_fields__:
            if name != "curves":
                assert getattr(back, name) == getattr(row, name), name


@pytest.mark.parametrize("damage", ["garbage", "truncate", "empty"])
def test_damaged_row_file_is_named(tmp_path, damage):
    _, part = _one_row_file(tmp_path)
    data = part.read_bytes()
    if damage == "garbage":
        part.write_bytes(b"\x00not hdf5" * 100)
    elif damage == "truncate":
        part.write_bytes(data[: len(data) // 2])
    else:
        part.write_bytes(b"")
    with pytest.raises(BuildError) as error:
        read_rows(part)
    assert str(part) in str(error.value) and "delete it" in str(error.value)


def test_leftover_tmp_files_are_ignored_and_cleaned(tmp_path):
    settings = fake_settings(limit=3, seeds=(0,))
    out = init_build_dir(tmp_path / "b", settings)
    dead = out / "rows" / "1-0.h5.somehost.4194999.tmp"
    dead.write_bytes(b"half a row")
    import socket

    mine = out / "rows" / f"2-0.h5.{socket.gethostname()}.4194999.tmp"
    mine.write_bytes(b"half a row")
    assert build_files(out) == []
    assert clean_tmp_files(out) == 1  # this host's dead process; the other host's is too young
    assert not mine.exists() and dead.exists()
    assert build(settings, out).complete


# --- build and resume ---------------------------------------------------------


def test_build_resume_and_merge(tmp_path):
    settings = fake_settings(limit=8)
    out = tmp_path / "b"
    first = build(settings, out, rows_per_part=5)
    assert first.complete and first.n_trained == 16 and not first.failures
    assert not list((out / "rows").glob("*.h5"))  # all compacted into parts
    assert len(list((out / "shards").glob("part-all-*.h5"))) >= 3
    again = build(settings, out)
    assert again.complete and again.n_resumed == 16 and again.n_trained == 0

    result = merge([out], tmp_path / "t.h5")
    assert result.complete and not result.problems and result.n_rows == 16
    space = get_space("nb201")
    with h5py.File(result.path) as f:
        prov = json.loads(f.attrs["provenance"])
        valid = f["metrics/valid_acc"][()]
        canonical = f["archs/canonical"][()]
    assert prov["synthetic"] is True and prov["seeds"] == [0, 1] and prov["epochs"] == 3
    rows = [r for p in build_files(out) for r in read_rows(p).rows]
    assert prov["n_rows"] == 16 and len(rows) == 16
    assert prov["build_time_s"] == pytest.approx(sum(r.wall_time_s for r in rows))
    assert prov["code_version"] == rows[0].code_version and prov["device"] == rows[0].device
    for task in plan_tasks(settings):
        want = expected_curves(settings, task)["valid_acc"].astype(np.float32)
        members = np.flatnonzero(space.canonical_ids == task.arch)
        for member in members:  # every isomorphic arch answers with the canonical row
            np.testing.assert_array_equal(valid[member, task.seed], want)
    planned = {t.arch for t in plan_tasks(settings)}
    unplanned = [i for i in range(space.n_archs) if canonical[i] not in planned]
    assert np.isnan(valid[unplanned]).all()


def test_shards_in_one_directory_merge_to_the_full_build(tmp_path):
    settings = fake_settings(limit=6)
    full = build(settings, tmp_path / "full")
    assert full.complete
    for i in range(3):
        part = build(settings, tmp_path / "sharded", shard=Shard(i, 3), workers=1)
        assert part.complete and part.n_tasks == 4
    names = {p.name.split("-")[1] for p in (tmp_path / "sharded" / "shards").glob("*.h5")}
    assert names == {"0of3", "1of3", "2of3"}
    a = merge([tmp_path / "full"], tmp_path / "a.h5")
    b = merge(sorted((tmp_path / "sharded" / "shards").glob("*.h5")), tmp_path / "b.h5")
    assert_same_tables(a.path, b.path)


def _one_part_build(tmp_path):
    """A finished fake build of 4 archs at one seed: its settings, folder, part and rows."""
    settings = fake_settings(limit=4, seeds=(0,))
    out = tmp_path / "b"
    build(settings, out)
    (part,) = build_files(out)
    return settings, out, part, read_rows(part)


def test_crash_between_compaction_and_delete_is_deduplicated(tmp_path):
    settings, out, part, rows = _one_part_build(tmp_path)
    # the row files a crashed compaction did not delete yet
    for row in rows.rows[:2]:
        write_rows(out / "rows" / f"{row.arch}-{row.seed}.h5", [row], settings, rows.dataset_info)
    result = merge([out], tmp_path / "t.h5")
    assert result.n_rows == 4 and result.n_duplicates == 2 and result.complete
    again = build(settings, out)  # resume deletes the copies instead of training again
    assert again.n_trained == 0 and not list((out / "rows").glob("*.h5"))


def test_scan_survives_a_concurrent_compaction(tmp_path, monkeypatch):
    # Another job of the build compacts its row files into a part between this scan's
    # listing and its reading of them: the rows are found in the new part, none is lost.
    import nasbench_harness.build.store as store

    settings, out, part, content = _one_part_build(tmp_path)
    part.unlink()
    rows = [
        write_rows(out / "rows" / f"{r.arch}-{r.seed}.h5", [r], settings, content.dataset_info)
        for r in content.rows
    ]
    real = store.read_rows
    compacted = []

    def racing(path):
        if Path(path).parent.name == "rows" and not compacted:
            compacted.append(None)  # once; compact() reads the rows through here too
            compacted[0] = store.compact(out, rows, settings, None)
        return real(path)

    monkeypatch.setattr(store, "read_rows", racing)
    result = merge([out], tmp_path / "t.h5")
    assert compacted[0].is_file() and not any(p.exists() for p in rows)
    assert result.complete and result.n_rows == 4 and result.n_duplicates == 0


def test_remerge_keeps_stored_proxies_and_refuses_to_drop_others(tmp_path):
    from nasbench_harness.table import store_proxy

    settings = fake_settings(limit=4, seeds=(0,))
    build(settings, tmp_path / "b")
    table_path = merge([tmp_path / "b"], tmp_path / "t.h5").path
    n = open_table(table_path).space.n_archs
    scores = np.arange(n, dtype=np.float64)
    store_proxy(table_path, "naswot", scores, {"definition": "a test score", "seeds": [0]})
    again = merge([tmp_path / "b"], table_path)  # e.g. to measure latencies again
    table = open_table(again.path)
    assert again.path == table_path and table.proxy_names == ("naswot",)
    reps = np.asarray(table.canonical)
    np.testing.assert_array_equal(np.ravel(table.array("proxy/naswot")), scores[reps])
    assert table.proxy_attrs["naswot"]["definition"] == "a test score"
    assert table.provenance["kept_proxies"]["names"] == ["naswot"]
    # another recipe's build would drop them: refused, the table left as it was
    build(fake_settings(limit=4, seeds=(0,), epochs=4), tmp_path / "other")
    before = table_path.read_bytes()
    with pytest.raises(BuildError, match="holds stored proxies \\(naswot\\)"):
        merge([tmp_path / "other"], table_path)
    assert table_path.read_bytes() == before
    stranger = tmp_path / "notes.h5"
    stranger.write_text("my notes")
    with pytest.raises(BuildError, match="not a readable table"):
        merge([tmp_path / "b"], stranger)
    assert stranger.read_text() == "my notes"


def test_a_table_failing_validation_does_not_replace_the_good_one(tmp_path):
    settings, out, part, content = _one_part_build(tmp_path)
    good = merge([out], tmp_path / "t.h5")
    assert good.complete and not good.problems
    before = good.path.read_bytes()
    part.unlink()
    first, *rest = content.rows
    broken = replace(first, curves={**first.curves, "valid_loss": np.full(3, np.nan)})
    write_rows(out / "rows" / "broken.h5", [broken, *rest], settings, content.dataset_info)
    bad = merge([out], good.path)
    assert bad.complete and bad.problems and bad.path == tmp_path / "t.rejected.h5"
    assert good.path.read_bytes() == before and bad.path.is_file()
    assert not list(tmp_path.glob(".*merging*"))


def test_disagreeing_duplicates_name_both_files(tmp_path):
    settings, out, part, content = _one_part_build(tmp_path)
    row = content.rows[0]
    changed = dict(row.curves, valid_acc=row.curves["valid_acc"] + 1.0)
    other = write_rows(
        out / "rows" / f"{row.arch}-{row.seed}.h5",
        [replace(row, curves=changed)],
        settings,
        content.dataset_info,
    )
    with pytest.raises(BuildError) as error:
        merge([out], tmp_path / "t.h5")
    assert str(part) in str(error.value) and str(other) in str(error.value)


def test_rows_read_from_other_data_folders_merge_and_other_data_is_refused(tmp_path):
    # One data set reached through different folders (two machines, a symlink) is one
    # build; data that differs in anything else is not.
    settings, out, part, content = _one_part_build(tmp_path)
    part.unlink()
    folders = ("/mnt/a/cifar-10-batches-py", "/home/b/cifar-10-batches-py")
    for k, row in enumerate(content.rows):
        info = {**content.dataset_info, "files": folders[k % 2]}
        write_rows(out / "rows" / f"{row.arch}-{row.seed}.h5", [row], settings, info)
    result = merge([out], tmp_path / "t.h5")
    assert result.complete and result.n_rows == 4
    recorded = open_table(result.path).provenance["dataset"]["files"]
    assert sorted(recorded.split(" | ")) == sorted(folders)
    assert build(settings, out).n_trained == 0  # a resume reads them as one build too
    (part,) = build_files(out)  # compacted, with both folders
    assert sorted(read_rows(part).dataset_info["files"].split(" | ")) == sorted(folders)
    row = content.rows[0]
    other = {**content.dataset_info, "scaling": "something else"}
    stray = write_rows(out / "rows" / f"{row.arch}-{row.seed}.h5", [row], settings, other)
    with pytest.raises(BuildError) as error:
        merge([out], tmp_path / "t2.h5")
    assert str(stray) in str(error.value) and str(part) in str(error.value)
    assert "keep the rows of one of them" in str(error.value)


def test_rows_of_another_build_are_refused(tmp_path):
    build(fake_settings(limit=2, seeds=(0,)), tmp_path / "a")
    build(fake_settings(limit=2, seeds=(1,)), tmp_path / "b")
    with pytest.raises(BuildError, match="another build"):
        merge([tmp_path / "a", tmp_path / "b"], tmp_path / "t.h5")
    stray = build_files(tmp_path / "b")[0]
    shutil.copy(stray, tmp_path / "a" / "shards" / stray.name)
    with pytest.raises(BuildError, match="another build"):
        build(fake_settings(limit=2, seeds=(0,)), tmp_path / "a")


def test_partial_merge_lists_missing_rows(tmp_path):
    settings = fake_settings(limit=6, seeds=(0,))
    build(settings, tmp_path / "b", shard=Shard(0, 2))
    result = merge([tmp_path / "b"], tmp_path / "t.h5")
    assert result.path.exists() and not result.complete
    assert list(result.missing) == plan_tasks(settings, Shard(1, 2))


def test_merge_without_rows_is_an_error(tmp_path):
    with pytest.raises(BuildError, match="not a build directory"):
        merge([tmp_path], tmp_path / "t.h5")
    with pytest.raises(BuildError, match="no such"):
        merge([tmp_path / "nope"], tmp_path / "t.h5")


def test_a_stopped_worker_leaves_at_once_after_its_rows_are_written(tmp_path, monkeypatch):
    import multiprocessing

    from nasbench_harness.build import executors
    from nasbench_harness.build.worker import WorkerSpec

    class Exited(Exception):
        pass

    def fake_exit(code):
        raise Exited(code)

    monkeypatch.setattr(executors.os, "_exit", fake_exit)
    monkeypatch.setattr(executors.signal, "signal", lambda *args: None)  # keep pytest's Ctrl-C
    settings = fake_settings(limit=1, seeds=(0,))
    init_build_dir(tmp_path, settings)
    driver, worker = multiprocessing.Pipe()
    task = plan_tasks(settings)[0]
    driver.send(task)
    driver.send(None)
    with pytest.raises(Exited) as stopped:
        executors._local_worker(worker, WorkerSpec(settings), str(tmp_path))
    assert stopped.value.args == (0,)
    messages = [driver.recv() for _ in range(2)]
    assert [m[0] for m in messages] == ["ready", "done"]
    (path,) = (tmp_path / "rows").glob("*.h5")  # written before the worker said "done"
    assert [r.task for r in read_rows(path).rows] == [task]


def test_failing_task_is_reported_and_the_build_goes_on(tmp_path):
    settings = fake_settings(limit=4, seeds=(0,))
    bad = plan_tasks(settings)[1]
    result = build(settings, tmp_path / "b", trainer=FailOn(bad.arch), workers=1)
    assert [f.task for f in result.failures] == [bad]
    assert result.failures[0].attempts == 3 and "ValueError" in result.failures[0].reason
    assert result.n_done == 3 and not result.complete and not result.interrupted


@dataclass(frozen=True)
class FailOn:
    """The fake trainer, raising for one arch (picklable: a module-level class)."""

    arch: int

    def __call__(self, arch, seed, recipe, splits, *, device="cpu"):
        if get_space("nb201").index(arch) == self.arch:
            raise ValueError("this arch always fails")
        return FakeTrainer()(arch, seed, recipe, splits, device=device)


def test_local_cuda_workers_get_one_visible_gpu_each(tmp_path):
    from nasbench_harness.build.executors import LocalExecutor
    from nasbench_harness.build.worker import WorkerSpec

    spec = WorkerSpec(fake_settings(), device="cuda", threads=4)
    executor = LocalExecutor(spec, tmp_path, workers=3, gpus=["0", "1"])
    envs = [executor._env(k) for k in range(3)]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "1", "0"]
    assert all(e["OMP_NUM_THREADS"] == "4" for e in envs)


# --- CLI ----------------------------------------------------------------------


def test_cli_build_and_merge(tmp_path, capsys):
    out, table = str(tmp_path / "b"), str(tmp_path / "t.h5")
    args = ["build", "--dry-run", "--limit", "5", "--seeds", "0,1", "--epochs", "2"]
    args += ["--workers", "2", "--no-progress", "--out", out, "--json"]
    assert cli.main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["done"] == report["tasks"] == 10 and report["failed"] == []
    assert cli.main(["build", "--resume", "--out", out, "--no-progress"]) == 0
    assert "10/10 rows done" in capsys.readouterr().err
    assert cli.main(["merge", out, "-o", table, "--json"]) == 0
    merged = json.loads(capsys.readouterr().out)
    assert merged["rows"] == 10 and merged["missing"] == []
    assert cli.main(["table", "validate", table]) == 0


def test_cli_settings_defaults_and_flags(tmp_path):
    from nasbench_harness.build.defaults import DEFAULT_RECIPE
    from nasbench_harness.commands.build import settings_from_args

    parse = cli.build_parser().parse_args
    shipped = settings_from_args(parse(["build", "--out", str(tmp_path)]))
    assert {k: shipped.recipe[k] for k in DEFAULT_RECIPE} == DEFAULT_RECIPE
    assert shipped.trainer == "train_arch" and shipped.limit is None
    digits = settings_from_args(parse(["build", "--dataset", "digits", "--out", str(tmp_path)]))
    assert digits.recipe["train_size"] is None  # the data set's own default sizes
    assert make_settings(dataset="digits") == digits  # the Python API agrees
    small = settings_from_args(
        parse(["build", "--dataset", "digits", "--n-train", "500", "--out", str(tmp_path)])
    )
    assert small.recipe["train_size"] == 500 and small.recipe["valid_size"] is None
    args = ["build", "--cells", "3", "--lr", "0.05", "--seeds", "4,5", "--out", str(tmp_path)]
    custom = settings_from_args(parse(args))
    assert custom.recipe["cells_per_stage"] == 3 and custom.recipe["lr"] == 0.05
    assert custom.seeds == (4, 5)


def test_cli_refuses_other_settings_with_one_line(tmp_path, capsys):
    out = str(tmp_path / "b")
    base = ["build", "--dry-run", "--limit", "2", "--seeds", "0", "--no-progress", "--out", out]
    assert cli.main(base + ["--epochs", "2"]) == 0
    capsys.readouterr()
    assert cli.main(base + ["--epochs", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "recipe.epochs: 2 -> 3" in err


def test_cli_partial_merge_exit_codes(tmp_path, capsys):
    out, table = str(tmp_path / "b"), str(tmp_path / "t.h5")
    args = ["build", "--dry-run", "--limit", "4", "--seeds", "0", "--shard", "1/2"]
    assert cli.main(args + ["--no-progress", "--out", out]) == 0
    capsys.readouterr()
    assert cli.main(["merge", out, "-o", table]) == 1
    err = capsys.readouterr().err
    assert "2 of 4 planned rows are missing" in err and "nothing was written" in err
    assert not Path(table).exists()
    assert cli.main(["merge", out, "-o", table, "--allow-partial"]) == 0
    before = Path(table).read_bytes()
    assert cli.main(["merge", out, "-o", table]) == 1  # an existing table is left as it was
    assert Path(table).read_bytes() == before


def test_merge_takes_latency_from_the_rows_or_from_a_sweep(tmp_path):
    settings = fake_settings(limit=3, channels=4, cells_per_stage=1)
    build(settings, tmp_path / "b")
    space = get_space("nb201")
    rows = merge([tmp_path / "b"], tmp_path / "rows.h5")
    assert rows.provenance["latency"]["source"] == "rows"
    by_arch: dict[int, list[float]] = {}
    for path in build_files(tmp_path / "b"):
        for row in read_rows(path).rows:
            by_arch.setdefault(row.arch, []).append(row.latency_ms)
    with h5py.File(rows.path) as f:
        from_rows = f["arch_metrics/latency_ms"][()]
    for arch, values in by_arch.items():
        assert from_rows[arch] == np.median(values)

    options = {"rounds": 2, "repeats": 3, "warmup": 1}
    swept = merge([tmp_path / "b"], tmp_path / "sweep.h5", latency="sweep", latency_options=options)
    info = swept.provenance["latency"]
    assert not swept.problems
    assert info["source"] == "sweep" and info["rounds"] == 2 and info["repeats"] == 3
    assert info["n_archs"] == len(by_arch) and info["threads"] == 1
    with h5py.File(swept.path) as f:
        latency = f["arch_metrics/latency_ms"][()]
        valid = f["metrics/valid_acc"][()]
    with h5py.File(rows.path) as f:
        np.testing.assert_array_equal(valid, f["metrics/valid_acc"][()])  # only latency differs
    trained = np.isin(space.canonical_ids, list(by_arch))
    assert (latency[trained] > 0).all() and np.isnan(latency[~trained]).all()
    # the fake trainer's latencies are 0.10-0.11 ms; the sweep measured real networks instead
    assert not np.allclose(latency[trained], from_rows[trained])


def test_latency_sweep_ranks_a_heavy_cell_above_an_empty_one():
    from nasbench_harness.build.latency import sweep_latency

    space = get_space("nb201")
    heavy = space.index(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    )
    empty = space.index("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    recipe = {"channels": 8, "cells_per_stage": 2, "reduction": "light"}
    latency, info = sweep_latency(
        [heavy, empty],
        space="nb201",
        recipe=recipe,
        input_shape=(1, 40),
        n_classes=10,
        rounds=3,
        repeats=5,
        progress=False,
    )
    # 18 ReLU-conv-BN blocks against none: several times the work, whatever the machine's load
    assert latency.shape == (2,) and latency[0] > latency[1] > 0
    assert info["n_archs"] == 2 and info["round_agreement_spearman"] is None


@pytest.mark.parametrize(
    ("option", "value"), [("rounds", 0), ("repeats", 1.5), ("chunk", True), ("threads", 0)]
)
def test_latency_sweep_refuses_bad_options(option, value):
    from nasbench_harness.build.latency import sweep_latency

    recipe = {"channels": 4, "cells_per_stage": 1, "reduction": "light"}
    with pytest.raises(BuildError, match=f"latency sweep {option}="):
        sweep_latency(
            [0], space="nb201", recipe=recipe, input_shape=(1, 40), n_classes=10, **{option: value}
        )


def test_cli_latency_options_need_the_sweep(tmp_path, capsys):
    out, table = str(tmp_path / "b"), str(tmp_path / "t.h5")
    args = ["build", "--dry-run", "--limit", "2", "--seeds", "0", "--epochs", "2"]
    assert cli.main(args + ["--no-progress", "--out", out]) == 0
    capsys.readouterr()
    assert cli.main(["merge", out, "-o", table, "--latency-rounds", "2"]) == 2
    assert "add --latency-sweep" in capsys.readouterr().err
    assert cli.main(["merge", out, "-o", table, "--latency-device", "cuda"]) == 2
    assert "--latency-device only apply" in capsys.readouterr().err
    command = ["merge", out, "-o", table, "--latency-sweep", "--latency-device", "gpu"]
    assert cli.main(command) == 2
    assert "latency device 'gpu' is not known: use cpu, cuda" in capsys.readouterr().err
    assert not (tmp_path / "t.h5").exists()
    command = ["merge", out, "-o", table, "--latency-sweep", "--latency-rounds", "2"]
    assert cli.main(command + ["--no-progress", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["latency"]["source"] == "sweep" and report["latency"]["rounds"] == 2


def test_cli_ray_without_ray_says_how_to_install(tmp_path, capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    args = ["build", "--dry-run", "--limit", "2", "--executor", "ray", "--no-progress"]
    assert cli.main(args + ["--out", str(tmp_path / "b")]) == 2
    assert "pip install 'nasbench-harness[ray]'" in capsys.readouterr().err


def test_cli_ray_refuses_local_threads_before_writing(tmp_path, capsys):
    out = tmp_path / "b"
    args = ["build", "--dry-run", "--limit", "2", "--executor", "ray", "--threads", "4"]
    assert cli.main(args + ["--no-progress", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--threads 4 applies to --executor local" in err and "--cpus-per-task" in err
    assert not out.exists()


# --- end to end, real training ------------------------------------------------


@pytest.mark.slow
def test_real_training_end_to_end(tmp_path):
    """Ten archs of a tiny recipe trained by two workers equal in-process training, bit for bit."""
    import torch

    from nasbench_harness.table import open_table
    from nasbench_harness.train import Recipe, train_arch

    settings = make_settings(seeds=(0,), limit=10, **TINY)
    result = build(settings, tmp_path / "b", workers=2, threads=1)
    assert result.complete and not result.failures
    merged = merge([tmp_path / "b"], tmp_path / "t.h5")
    assert merged.complete and not merged.problems
    table = open_table(merged.path)
    assert table.provenance["dataset"]["splits"] == {"train": 300, "valid": 100, "test": 100}
    assert table.provenance["recipe"]["channels"] == 4 and not table.provenance["synthetic"]

    recipe = Recipe.from_dict(dict(settings.recipe))
    splits = recipe.load_splits()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for task in plan_tasks(settings)[:2]:
            direct = train_arch(task.arch, task.seed, recipe, splits)
            for name in DETERMINISTIC_CURVES:  # every epoch, not only the last
                got = np.asarray(table.array(name))[task.arch, 0]
                np.testing.assert_array_equal(got, getattr(direct, name).astype(np.float32))
            assert table.array("params")[task.arch] == direct.params
            assert table.array("flops")[task.arch] == direct.flops
    finally:
        torch.set_num_threads(threads)


# --- helpers ------------------------------------------------------------------


def assert_same_tables(path_a, path_b):
    """Deterministic metrics equal value for value (times are measurements and excluded)."""
    with h5py.File(path_a) as a, h5py.File(path_b) as b:
        for name in DETERMINISTIC_CURVES:
            np.testing.assert_array_equal(a[f"metrics/{name}"][()], b[f"metrics/{name}"][()])
        for name in ("params", "flops"):
            np.testing.assert_array_equal(
                a[f"arch_metrics/{name}"][()], b[f"arch_metrics/{name}"][()]
            )
        for name in set(CURVES) - set(DETERMINISTIC_CURVES):
            np.testing.assert_array_equal(
                np.isnan(a[f"metrics/{name}"][()]), np.isnan(b[f"metrics/{name}"][()])
            )


def test_row_index_counts_duplicates(tmp_path):
    _, part = _one_row_file(tmp_path)
    index = RowIndex()
    index.add_paths([part, part])
    assert index.n_duplicates == 2
    assert sorted(index.rows) == sorted(plan_tasks(read_rows(part).settings))


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal needs a machine without CUDA")
def test_a_refused_device_writes_nothing(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(BuildError, match="--device cuda: torch sees no CUDA GPU"):
        build(fake_settings(limit=2), out, device="cuda")
    assert not out.exists()
    with pytest.raises(BuildError, match="--device 'tpu'"):
        build(fake_settings(limit=2), out, device="tpu", executor="ray")
    assert not out.exists()
