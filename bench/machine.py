"""What the benchmarks share: how busy the rest of the machine was while they measured, and how
much memory the processes a benchmark started used."""

from __future__ import annotations

import os
import resource


def others_cpu_s() -> float:
    """CPU seconds the machine has been busy, less this process's and its children's: what other
    work (and kernel threads such as write-back) took. 0 without /proc."""
    try:
        with open("/proc/stat") as f:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
    except (OSError, ValueError):
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    machine = (user + nice + system + irq + softirq + steal) / ticks
    own = sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))
    return machine - own - sum(_cpu_ticks(pid) for pid in _children()) / ticks


def _cpu_ticks(pid: int) -> int:
    """CPU time a live child has used (the dbt process a build runs in, kept between builds)."""
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


def descendants_rss() -> int:
    """The resident memory (bytes) this process's descendants hold now, summed (a Spark build's dbt
    process and the JVM it starts among them); 0 without /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        try:
            with open(f"/proc/{entry}/stat") as f:
                parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    ours, grew = {os.getpid()}, True
    while grew:
        found = {pid for pid, parent in parents.items() if parent in ours} - ours
        ours |= found
        grew = bool(found)
    total = 0
    for pid in ours - {os.getpid()}:
        try:
            with open(f"/proc/{pid}/status") as f:
                total += sum(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
        except (OSError, ValueError):
            continue
    return total


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
