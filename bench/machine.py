"""What the benchmarks share: how busy the rest of the machine was while they measured."""

from __future__ import annotations

import os
import resource


def others_cpu_s() -> float:
    """CPU seconds the machine has been busy, less this process's and its waited-for children's:
    what other work (and kernel threads such as write-back) took. 0 without /proc."""
    try:
        with open("/proc/stat") as f:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
    except (OSError, ValueError):
        return 0.0
    machine = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    own = sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))
    return machine - own
