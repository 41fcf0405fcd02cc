"""Where the server's event loop spends its time: py-spy's samples of a run, summed by layer.

`python -m bench load --profile DIR` samples the node with py-spy while each workload's timed
run lasts, writes the samples to DIR/WORKLOAD.txt (collapsed stacks, the input of flamegraph.pl,
inferno or speedscope) and prints the share of each layer of the stack and the busiest
functions. Each sample is put where its innermost Python frame is: time inside a C function
(orjson, LevelDB, a socket write) counts for the Python code that called it.

py-spy keeps only the samples where a thread holds the GIL (`--gil`: running Python, or C code
called from it; not waiting in epoll for the next request), and stops the server for each
sample, the default: sampling without stopping it (`--nonblocking`) read torn stacks here,
putting a tenth of the event loop's samples on a line it had long left. Stopping costs the
server some speed, so a profiled run's figures are not the bench's. Without the bench's own
dependencies, so the tests can import it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

RATE_HZ = 250
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "HTTP server (uvicorn, httptools, Starlette)",
        ("uvicorn/", "httptools/", "starlette/", "h11/", "node/framework_internals.py"),
    ),
    ("API handlers (api/)", ("api/",)),
    ("chain/ (state transition, canonical JSON, hashes, signatures)", ("chain/",)),
    ("producer, store and the rest of node/", ("node/",)),
    (
        "event loop, tasks and thread hand-offs",
        ("asyncio/", "uvloop/", "concurrent/", "threading.py", "queue.py", "<frozen runpy>"),
    ),
)
OTHER = "other (libraries, the standard library)"
MAIN_THREAD = "MainThread"


@dataclass
class Profile:
    main_samples: int = 0
    layers: Counter[str] = field(default_factory=Counter)
    functions: Counter[str] = field(default_factory=Counter)
    other_threads: Counter[str] = field(default_factory=Counter)
    """Samples of each other thread, by name (the block writer runs in the default executor)."""


def _where(frame: str) -> tuple[str, str]:
    """'func (path:line)' -> ('func (path)', path)."""
    func, sep, rest = frame.rpartition(" (")
    if not sep:
        return frame, ""
    path = rest.rstrip(")").rpartition(":")[0] or rest.rstrip(")")
    return f"{func} ({path})", path


def layer_of(path: str) -> str:
    for name, prefixes in LAYERS:
        if path.startswith(prefixes):
            return name
    return OTHER


def summarise(collapsed: str) -> Profile:
    """Sum py-spy's raw output (`--format raw --threads`: 'thread (TID): NAME;frame;...;frame COUNT'
    per line) by layer and by function, for the main thread, which runs the event loop."""
    profile = Profile()
    for line in collapsed.splitlines():
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = frames[0].partition(": ")[2] if frames[0].startswith("thread (") else MAIN_THREAD
        if thread != MAIN_THREAD:
            profile.other_threads[thread] += count
            continue
        python_frames = frames[1:] if frames[0].startswith("thread (") else frames
        if not python_frames:
            continue
        function, path = _where(python_frames[-1])
        profile.main_samples += count
        profile.layers[layer_of(path)] += count
        profile.functions[function] += count
    return profile


def report(label: str, profile: Profile, where: Path, top: int = 12) -> list[str]:
    if not profile.main_samples:
        return [f"{label} profile: no samples of the event loop's thread in {where}"]
    total = profile.main_samples
    lines = [
        f"{label} profile (py-spy, {RATE_HZ} Hz; {total:,} samples of the event loop's thread holding the GIL; "
        f"stacks in {where}):",
        "  by layer (innermost Python frame of each sample):",
    ]
    for name, _ in (*LAYERS, (OTHER, ())):
        lines.append(f"    {100 * profile.layers[name] / total:5.1f}%  {name}")
    lines.append("  busiest functions (own samples, C calls included):")
    for function, count in profile.functions.most_common(top):
        lines.append(f"    {100 * count / total:5.1f}%  {function}")
    if profile.other_threads:
        others = ", ".join(f"{name} {count:,}" for name, count in profile.other_threads.most_common())
        lines.append(f"  samples of the other threads: {others}")
    return lines


def py_spy() -> str | None:
    """py-spy's executable: beside this interpreter (a venv's bin), else on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


class Recording:
    """py-spy recording a process for `seconds`, pinned by the `pin` command prefix."""

    def __init__(self, pid: int, seconds: float, out: Path, pin: list[str]) -> None:
        self.out = out
        self.error: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        exe = py_spy()
        if exe is None:
            self.error = "py-spy is not installed (it comes with the bench extra: pip install -e '.[bench]')"
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        self._proc = subprocess.Popen(
            [
                *pin,
                exe,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(max(1, round(seconds))),
                "--rate",
                str(RATE_HZ),
                "--format",
                "raw",
                "--threads",
                "--gil",
                "--output",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def finish(self, timeout: float = 60) -> Profile | None:
        """Wait for py-spy; the summary of what it wrote, or None (see .error)."""
        if self._proc is None:
            return None
        try:
            _, stderr = self._proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.communicate()
            self.error = f"py-spy did not finish within {timeout:g} s"
            return None
        if self._proc.returncode != 0 or not self.out.exists():
            last = (stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
            self.error = (
                f"py-spy could not sample the server ({last}); it needs permission to trace it: "
                "run as root, or allow it with `sysctl kernel.yama.ptrace_scope=0`"
            )
            return None
        return summarise(self.out.read_text(errors="replace"))
