"""Peak memory of ``nasbench import nb201`` on a full-size NAS-Bench-201 ``.pth`` file.

docs/import.md bounds the importer's memory by its output, not by the file.
This script checks that figure on a file of the real layout:

1. It writes, by streaming, a NAS-Bench-201 ``.pth`` file in torch's legacy
   (non-zip) format: the pickles of the magic number, the protocol version
   and the sys info, then the object, then the (empty) list of storage keys,
   as ``torch.serialization._legacy_save`` writes them. The object is NB201's
   dictionary ``{"meta_archs", "arch2infos", "evaluated_indexes",
   "total_archs"}`` with ``full`` (200 epochs) and ``less`` (12 epochs)
   results for cifar10-valid and cifar100, seed 777, every value a distinct
   random float. It is written arch by arch by :class:`StreamingPickler`,
   which emits the protocol-2 opcodes that a real ``torch.save`` of the whole
   dictionary would (byte for byte, checked in
   ``tests/test_bench_import_memory.py``), with a memo whose indices grow as in
   that file, so that the reader sees its back-references. All 15,625 archs
   make a file of about 1.3 GB.
2. It runs ``nasbench import nb201 FILE -o TABLE --dataset cifar10-valid`` in
   a child process and reports its peak RSS (``ru_maxrss`` of that child from
   :func:`os.wait4`, in a small fresh spawner process), wall and CPU time; the
   same on a smaller file of the same layout (``--compare-archs``, default
   1,000 archs), ``torch.load`` of that smaller file for comparison (of the
   full file it would need about 6 GB), and the libraries of each alone. It
   prints one table, the bound of docs/import.md (230 MB + 2 x 4 B x 15,625 x
   S x E x 8 with S = 1 seed, E = 200 epochs) with PASS or FAIL for the
   import's peak RSS, and runs ``nasbench table validate`` on the table.

Run: ``python benchmarks/bench_import_memory.py [--archs N] [--out DIR] [--keep]``.
The generated files are deleted at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import itertools
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

#: What ``torch.serialization`` writes before the object (``MAGIC_NUMBER``,
#: ``PROTOCOL_VERSION``, ``sys_info`` of ``_legacy_save``).
TORCH_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
TORCH_PROTOCOL_VERSION = 1001
TORCH_SYS_INFO = {
    "protocol_version": TORCH_PROTOCOL_VERSION,
    "little_endian": sys.byteorder == "little",
    "type_sizes": {
        "short": struct.Struct("=h").size,
        "int": struct.Struct("=i").size,
        "long": struct.Struct("=l").size,
    },
}

N_ARCHS = 15_625
SEED = 777
DATASETS = ("cifar10-valid", "cifar100")
#: NB201's evaluation splits per dataset, in its order (``ResultsCount.eval_names``).
EVAL_NAMES = {
    "cifar10-valid": ["x-valid", "ori-test"],
    "cifar100": ["ori-test", "x-valid", "x-test"],
}
N_CLASSES = {"cifar10-valid": 10, "cifar100": 100}

#: docs/import.md: interpreter and libraries, and bytes per output value while written.
BOUND_BASE_BYTES = 230e6
BOUND_EPOCH_METRICS = 8

# -- the streaming pickler ------------------------------------------------------------------------

_BATCH = 1000  # items per MARK ... SETITEMS / APPENDS, as CPython's pickler
_PACK_FLOAT = struct.Struct(">d").pack
_PACK_U32 = struct.Struct("<I").pack
_PACK_I32 = struct.Struct("<i").pack
_PACK_U16 = struct.Struct("<H").pack


class StreamedDict:
    """A dict whose items are produced while it is written (``(key, value)`` pairs)."""

    def __init__(self, items: Iterable[tuple[Any, Any]]) -> None:
        self.items = items


class StreamingPickler:
    """Pickle protocol 2 of plain data (dict, list, tuple, str, float, int, bool, None).

    The bytes are those of CPython's ``pickle.Pickler(protocol=2)`` (the
    pickler ``torch.save`` uses): one memo entry per container and string,
    ``BINGET`` for an object seen before, ``MARK ... SETITEMS`` / ``APPENDS``
    in batches of 1,000. A :class:`StreamedDict` is written as a dict whose
    items come from its iterator; after each item, memo entries of objects
    that only the memo still holds are dropped. Nothing else can refer to such
    an object any more, so the bytes do not change, while the memo indices go
    on growing as in a pickle of the whole object and memory stays that of
    about one item.
    """

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh = fh
        self.out = bytearray()
        self.memo: dict[int, tuple[int, Any]] = {}  # id(obj) -> (memo index, obj)
        self.next_index = 0
        self._fresh: list[int] = []  # ids memoised while streaming, not yet checked
        self._held: list[int] = []  # ids checked while streaming, still held elsewhere
        self._streaming = 0
        self._save_by_type: dict[type, Callable[[Any], None]] = {
            dict: self._save_dict,
            StreamedDict: self._save_streamed,
            list: self._save_list,
            tuple: self._save_tuple,
            str: self._save_str,
            float: self._save_float,
            int: self._save_int,
            bool: self._save_bool,
            type(None): self._save_none,
        }

    def dump(self, obj: Any) -> None:
        """Write one pickle of ``obj`` (``PROTO 2`` ... ``STOP``)."""
        self.out += b"\x80\x02"
        self.save(obj)
        self.out += b"."
        self.flush()

    def flush(self) -> None:
        self.fh.write(self.out)
        self.out.clear()

    # -- objects ------------------------------------------------------------------------

    def save(self, obj: Any) -> None:
        entry = self.memo.get(id(obj))
        if entry is not None:
            self._get(entry[0])
            return
        save = self._save_by_type.get(type(obj))
        if save is None:
            raise TypeError(f"StreamingPickler writes plain data only, not {type(obj).__name__}")
        save(obj)

    def _get(self, index: int) -> None:
        self.out += b"h" + bytes((index,)) if index < 256 else b"j" + _PACK_U32(index)

    def _memoize(self, obj: Any) -> None:
        index = self.next_index
        self.next_index += 1
        self.memo[id(obj)] = (index, obj)
        if self._streaming:
            self._fresh.append(id(obj))
        self.out += b"q" + bytes((index,)) if index < 256 else b"r" + _PACK_U32(index)

    def _save_none(self, obj: None) -> None:
        self.out += b"N"

    def _save_bool(self, obj: bool) -> None:
        self.out += b"\x88" if obj else b"\x89"

    def _save_float(self, obj: float) -> None:
        self.out += b"G" + _PACK_FLOAT(obj)

    def _save_int(self, obj: int) -> None:
        if 0 <= obj <= 0xFF:
            self.out += b"K" + bytes((obj,))
        elif 0 <= obj <= 0xFFFF:
            self.out += b"M" + _PACK_U16(obj)
        elif -(2**31) <= obj < 2**31:
            self.out += b"J" + _PACK_I32(obj)
        else:
            data = obj.to_bytes(obj.bit_length() // 8 + 1, "little", signed=True)
            if obj < 0 and len(data) > 1 and data[-1] == 0xFF and data[-2] & 0x80:
                data = data[:-1]
            if len(data) < 256:
                self.out += b"\x8a" + bytes((len(data),)) + data
            else:
                self.out += b"\x8b" + _PACK_I32(len(data)) + data

    def _save_str(self, obj: str) -> None:
        data = obj.encode("utf-8", "surrogatepass")
        self.out += b"X" + _PACK_U32(len(data)) + data
        self._memoize(obj)

    def _save_tuple(self, obj: tuple) -> None:
        if not obj:
            self.out += b")"
            return
        if len(obj) > 3:
            self.out += b"("
        for item in obj:
            self.save(item)
        self.out += b"t" if len(obj) > 3 else b"\x85\x86\x87"[len(obj) - 1 : len(obj)]
        self._memoize(obj)

    def _save_list(self, obj: list) -> None:
        self.out += b"]"
        self._memoize(obj)
        if len(obj) == 1:
            self.save(obj[0])
            self.out += b"a"
            return
        for start in range(0, len(obj), _BATCH):
            self.out += b"("
            for item in obj[start : start + _BATCH]:
                self.save(item)
            self.out += b"e"

    def _save_dict(self, obj: dict) -> None:
        self.out += b"}"
        self._memoize(obj)
        self._items(iter(obj.items()), len(obj), release=False)

    def _save_streamed(self, obj: StreamedDict) -> None:
        self.out += b"}"
        self._memoize(obj)
        self._streaming += 1
        items = iter(obj.items)
        first = list(itertools.islice(items, 2))  # one item is written as a one-item dict
        try:
            size = len(first) if len(first) < 2 else None  # None: not known in advance
            self._items(itertools.chain(first, items), size, release=True)
        finally:
            self._streaming -= 1

    def _items(self, items: Iterator[tuple[Any, Any]], size: int | None, release: bool) -> None:
        """Dict items as CPython writes them: one ``SETITEM`` for a single item, else
        batches of ``MARK ... SETITEMS`` (an empty batch after a full last one)."""
        if size == 0:
            return
        save = self.save
        out = self.out
        if size == 1:
            key, value = next(items)
            save(key)
            save(value)
            out += b"s"
            return
        while True:
            out += b"("
            n = 0
            for key, value in items:
                save(key)
                if type(value) is float:  # the bulk of an NB201 file
                    out += b"G" + _PACK_FLOAT(value)
                else:
                    save(value)
                n += 1
                if release:
                    del key, value
                    self._release()
                    self.flush()
                if n == _BATCH:
                    break
            out += b"u"
            if n < _BATCH:
                return

    def _release(self) -> None:
        """Drop memo entries of streamed objects that nothing but the memo holds."""
        memo = self.memo
        held = []
        # parents are memoised before their items, so freeing a parent first frees its
        # items in the same pass; an item also held by a later sibling (a key string in
        # three dicts) goes on the next pass
        for key in self._held + self._fresh:
            # references: the memo's tuple and getrefcount's argument
            if sys.getrefcount(memo[key][1]) > 2:
                held.append(key)
            else:
                del memo[key]
        self._held = held
        self._fresh = []


def write_torch_legacy(path: Path, obj: Any) -> None:
    """Write ``obj`` (plain data, no tensors) as torch's legacy ``torch.save`` would."""
    with open(path, "wb") as fh:
        for header in (TORCH_MAGIC_NUMBER, TORCH_PROTOCOL_VERSION, TORCH_SYS_INFO):
            pickle.dump(header, fh, protocol=2)
        StreamingPickler(fh).dump(obj)
        pickle.dump([], fh, protocol=2)  # the keys of the storages: none


# -- NB201's dictionary ---------------------------------------------------------------------------


def results_count(name: str, epochs: int, rng: np.random.Generator) -> dict[str, Any]:
    """A ResultsCount state (its ``__dict__``) with a distinct random value everywhere."""
    run = {"name": name, "net_state_dict": None}
    for field, low, high in (
        ("train_acc1es", 10, 100),
        ("train_acc5es", 50, 100),
        ("train_losses", 0, 3),
        ("train_times", 5, 20),
    ):
        run[field] = dict(enumerate(rng.uniform(low, high, epochs).tolist()))
    run.update(
        {
            "arch_config": {"name": "infer.tiny", "C": 16, "N": 5, "num_classes": N_CLASSES[name]},
            "params": float(rng.uniform(0.1, 1.5)),
            "flop": float(rng.uniform(10, 200)),
            "seed": SEED,
            "epochs": epochs,
            "latency": rng.uniform(0.01, 0.02, 2).tolist(),
            "eval_names": list(EVAL_NAMES[name]),
        }
    )
    acc1es, times, losses = {}, {}, {}
    for split in EVAL_NAMES[name]:
        values = rng.uniform((10, 0.5, 0), (100, 2, 3), (epochs, 3)).tolist()
        for e, (acc, seconds, loss) in enumerate(values):
            key = f"{split}@{e}"  # one string in the three dicts, as NB201's update_eval
            acc1es[key] = acc
            times[key] = seconds
            losses[key] = loss
    run.update({"eval_acc1es": acc1es, "eval_times": times, "eval_losses": losses})
    return run


def arch_entry(index: int, arch_str: str, schedules, rng: np.random.Generator) -> dict:
    """``arch2infos[index]``: ``{schedule: ArchResults state}``."""
    entry = {}
    for key, epochs in schedules:
        entry[key] = {
            "arch_index": index,
            "arch_str": arch_str,
            "all_results": {(ds, SEED): results_count(ds, epochs, rng) for ds in DATASETS},
            "dataset_seed": {ds: [SEED] for ds in DATASETS},
            "clear_net_done": True,
        }
    return entry


def meta_archs() -> list[str]:
    """NB201's arch list, in an order other than ours (reversed) as a mapping check."""
    from nasbench_harness.space import get_space

    space = get_space("nb201")
    return [space.to_string(i) for i in reversed(range(space.n_archs))]


def nb201_source(
    n_archs: int = N_ARCHS,
    *,
    full_epochs: int = 200,
    less_epochs: int = 12,
    seed: int = 0,
    streamed: bool = True,
) -> dict[str, Any]:
    """NB201's ``.pth`` dictionary for source indices ``0 .. n_archs - 1``.

    With ``streamed`` its ``arch2infos`` is a :class:`StreamedDict` that builds
    each arch when it is written; otherwise a dict (the same values for the
    same ``seed``).
    """
    meta = meta_archs()
    if not 0 < n_archs <= len(meta):
        raise ValueError(f"n_archs must be 1 to {len(meta)}, not {n_archs}")
    schedules = (("less", less_epochs), ("full", full_epochs))
    rng = np.random.default_rng(seed)
    entries = ((i, arch_entry(i, meta[i], schedules, rng)) for i in range(n_archs))
    return {
        "meta_archs": meta,
        "arch2infos": StreamedDict(entries) if streamed else dict(entries),
        "evaluated_indexes": list(range(n_archs)),
        "total_archs": len(meta),
    }


def write_nb201_pth(path: Path, n_archs: int = N_ARCHS, **kwargs: Any) -> Path:
    """Write the ``.pth`` file of :func:`nb201_source`, one arch in memory at a time."""
    write_torch_legacy(path, nb201_source(n_archs, **kwargs))
    return path


# -- measurements ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Measurement:
    """One child process: exit code, peak RSS, wall and CPU seconds."""

    returncode: int
    peak_rss_bytes: int
    wall_s: float
    cpu_s: float
    output: str


#: Runs argv[1:] and writes its exit code, ru_maxrss, wall and CPU seconds on stderr.
#: A child's ru_maxrss starts at the memory of the process that spawned it (Linux
#: carries the parent's high-water mark over exec, and subprocess uses vfork), so
#: the command is spawned by this small fresh interpreter (about 10 MB), not by
#: the benchmark, which holds far more after writing the files.
_SPAWNER = """
import os, sys, time
start = time.perf_counter()
pid = os.posix_spawnp(sys.argv[1], sys.argv[1:], os.environ,
                      file_actions=[(os.POSIX_SPAWN_DUP2, 1, 2)])
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - start
sys.stderr.write(repr((os.waitstatus_to_exitcode(status), usage.ru_maxrss, wall,
                       usage.ru_utime + usage.ru_stime)))
"""


def measure(command: list[str]) -> Measurement:
    """Run ``command`` and read its own resource usage (``os.wait4`` of that child).

    The peak RSS is the command's own, but never below that of the small
    interpreter that spawns it (about 10 MB).
    """
    with tempfile.TemporaryFile() as log:
        spawner = subprocess.run(
            [sys.executable, "-I", "-S", "-c", _SPAWNER, *command],
            stdout=log,
            stderr=subprocess.PIPE,
            text=True,
            check=True,
        )
        log.seek(0)
        output = log.read().decode(errors="replace")
    returncode, max_rss, wall, cpu = ast.literal_eval(spawner.stderr)
    return Measurement(
        returncode=returncode,
        peak_rss_bytes=max_rss * _RSS_UNIT,
        wall_s=wall,
        cpu_s=cpu,
        output=output,
    )


def documented_bound(seeds: int = 1, epochs: int = 200) -> float:
    """docs/import.md: 230 MB + 2 x 4 B x 15,625 x S x E x 8, in bytes."""
    return BOUND_BASE_BYTES + 2 * 4 * N_ARCHS * seeds * epochs * BOUND_EPOCH_METRICS


def _nasbench(*args: str) -> list[str]:
    return [sys.executable, "-m", "nasbench_harness.cli", *args]


def _generate(path: Path, n_archs: int, args: argparse.Namespace) -> float:
    start = time.perf_counter()
    write_nb201_pth(
        path, n_archs, full_epochs=args.full_epochs, less_epochs=args.less_epochs, seed=args.seed
    )
    seconds = time.perf_counter() - start
    print(
        f"wrote {path} ({n_archs:,} archs): {path.stat().st_size / 1e6:,.0f} MB in {seconds:.0f} s",
        flush=True,
    )
    return seconds


def _check(what: str, result: Measurement) -> None:
    if result.returncode != 0:
        raise SystemExit(f"{what} failed (exit {result.returncode}):\n{result.output}")


def _peak_rss_self() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _RSS_UNIT


def _loads() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


_RSS_UNIT = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB elsewhere
_IMPORT_LIBRARIES = (
    "import nasbench_harness.cli, nasbench_harness.commands.import_, "
    "nasbench_harness.importers.nb201, nasbench_harness.table.writer; "
    "from nasbench_harness.space import get_space; get_space('nb201')"
)
_TORCH_LOAD = "import sys, torch; torch.load(sys.argv[1], weights_only=False)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", type=int, default=N_ARCHS, help="archs in the imported file")
    parser.add_argument(
        "--compare-archs", type=int, default=1000, help="archs in the file torch.load reads"
    )
    parser.add_argument("--out", type=Path, help="directory for the files (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--full-epochs", type=int, default=200, help="epochs of 'full' results")
    parser.add_argument("--less-epochs", type=int, default=12, help="epochs of 'less' results")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated values")
    args = parser.parse_args(argv)

    made_dir = args.out is None
    out = Path(tempfile.mkdtemp(prefix="bench-import-memory-")) if made_dir else args.out
    out.mkdir(parents=True, exist_ok=True)
    big = out / f"nb201-{args.archs}archs.pth"
    small = out / f"nb201-{args.compare_archs}archs.pth"
    table = out / f"nb201-{args.archs}archs-cifar10-valid.h5"
    small_table = out / f"nb201-{args.compare_archs}archs-cifar10-valid.h5"

    def import_command(path: Path, output: Path) -> list[str]:
        return _nasbench("import", "nb201", str(path), "-o", str(output), "--dataset", DATASETS[0])

    runs = [
        ("nasbench import nb201", big, import_command(big, table)),
        ("  same, smaller file", small, import_command(small, small_table)),
        ("  its libraries alone", None, [sys.executable, "-c", _IMPORT_LIBRARIES]),
        ("torch.load", small, [sys.executable, "-c", _TORCH_LOAD, str(small)]),
        ("  torch alone", None, [sys.executable, "-c", "import torch"]),
    ]
    if small == big:
        del runs[1]
    print(f"{os.cpu_count()} CPUs, load average {_loads()}", flush=True)
    try:
        gen_s = _generate(big, args.archs, args)
        if small != big:
            _generate(small, args.compare_archs, args)
        gen_rss = _peak_rss_self()
        sizes = {path: path.stat().st_size for path in (big, small)}
        load_before = _loads()
        results = []
        for name, path, command in runs:
            print(f"running {name.strip()} ...", flush=True)
            result = measure(command)
            _check(name.strip(), result)
            results.append((name, path, result))
        load_after = _loads()
        validate = subprocess.run(
            _nasbench("table", "validate", str(table)), capture_output=True, text=True
        )
    finally:
        if not args.keep:
            for path in (big, small, table, small_table):
                path.unlink(missing_ok=True)
            if made_dir:
                shutil.rmtree(out, ignore_errors=True)

    print(f"\n{'run':<24} {'file':>9} {'peak RSS':>9} {'wall':>8} {'CPU':>8}")
    for name, path, result in results:
        size = "-" if path is None else f"{sizes[path] / 1e6:,.0f} MB"
        print(
            f"{name:<24} {size:>9} {result.peak_rss_bytes / 1e6:>6,.0f} MB "
            f"{result.wall_s:>6.1f} s {result.cpu_s:>6.1f} s"
        )
    print("MB = 10^6 bytes; peak RSS = ru_maxrss of the child process")
    print(f"load average {load_before} before the runs, {load_after} after")
    print(
        f"generator: {gen_s:.0f} s for the {args.archs:,}-arch file, peak RSS "
        f"{gen_rss / 1e6:,.0f} MB (both files)"
    )
    bound = documented_bound(seeds=1, epochs=args.full_epochs)
    peak = results[0][2].peak_rss_bytes
    verdict = "PASS" if peak < bound else "FAIL"
    print(
        f"bound (docs/import.md, S=1, E={args.full_epochs}): 230 MB + 2 x 4 B x 15,625 x 1 x "
        f"{args.full_epochs} x 8 = {bound / 1e6:,.0f} MB; import peak RSS {peak / 1e6:,.0f} MB: "
        f"{verdict}"
    )
    said = (validate.stdout.strip() or validate.stderr.strip()).replace("\n", "; ")
    print(f"nasbench table validate: exit {validate.returncode}: {said}")
    return 0 if verdict == "PASS" and validate.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
