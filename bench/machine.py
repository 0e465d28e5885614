"""What the benchmarks share: how busy the rest of the machine was while they measured, and how
much memory the processes a benchmark started used."""

from __future__ import annotations

import os
import resource
import threading


def others_cpu_s(gone_ticks: int = 0) -> float:
    """CPU seconds the machine has been busy, less this process's and its descendants': what other
    work (and kernel threads such as write-back) took. 0 without /proc. `gone_ticks`: CPU ticks of
    descendants that ended without being reaped through this process (a Spark build's JVM), which
    its own accounting misses (see Watch)."""
    try:
        with open("/proc/stat") as f:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
    except (OSError, ValueError):
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    machine = (user + nice + system + irq + softirq + steal) / ticks
    own = sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))
    return machine - own - (sum(_cpu_ticks(pid) for pid in descendants()) + gone_ticks) / ticks


def _cpu_ticks(pid: int) -> int:
    """CPU time a live process has used (the dbt process a build runs in, kept between builds)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            utime, stime = f.read().rsplit(")", 1)[1].split()[11:13]
        return int(utime) + int(stime)
    except (OSError, ValueError):
        return 0


def _children() -> list[int]:
    """The pids of this process's children (the dbt process a build runs in, among them)."""
    me, found = os.getpid(), []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        try:
            with open(f"/proc/{entry}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == me:
                    found.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return found


def descendants() -> dict[int, int]:
    """This process's live descendants (children, their children, ...): pid -> parent pid."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        try:
            with open(f"/proc/{entry}/stat") as f:
                parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    ours, found = {os.getpid()}, {}
    while True:
        new = {pid: parent for pid, parent in parents.items() if parent in ours and pid not in found}
        if not new:
            return found
        found.update(new)
        ours |= new.keys()


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            return sum(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
    except (OSError, ValueError):
        return 0


class Watch:
    """Samples this process's descendants every `interval` s while it runs: the largest resident
    memory they held together (`peak_rss`, bytes), and the CPU ticks of grandchildren that ended
    meanwhile (`gone_ticks`: a process started by a child, such as the JVM of a Spark build, is
    not always reaped through this process, so its CPU would otherwise count as other work)."""

    def __init__(self, interval: float = 0.25):
        self.interval, self.peak_rss, self.gone_ticks = interval, 0, 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> "Watch":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _sample(self) -> None:
        seen: dict[int, int] = {}  # grandchildren and deeper: pid -> CPU ticks when last seen
        while True:
            stopping = self._done.is_set()  # one more sample after the block, for what ended last
            found = descendants()
            self.peak_rss = max(self.peak_rss, sum(_rss(pid) for pid in found))
            deep = {pid for pid, parent in found.items() if parent != os.getpid()}
            self.gone_ticks += sum(ticks for pid, ticks in seen.items() if pid not in deep)
            seen = {pid: _cpu_ticks(pid) for pid in deep}
            if stopping:
                return
            self._done.wait(self.interval)


def reset_children_peak_rss() -> None:
    """Start the peak memory of this process's children again from their current use."""
    for pid in _children():
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass


def children_peak_rss() -> int:
    """The largest peak memory (bytes of RSS) of this process's children since the last reset; 0 without /proc."""
    peaks = [0]
    for pid in _children():
        try:
            with open(f"/proc/{pid}/status") as f:
                peaks += [int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:")]
        except (OSError, ValueError):
            continue
    return max(peaks)
