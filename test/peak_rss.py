"""Run a command and print its own peak resident memory: `python test/peak_rss.py CMD...` -> stderr `PEAK_RSS_KB N`.

Why not wait4 / RUSAGE_CHILDREN on the child directly: a child that subprocess starts with vfork (or fork)
inherits its parent's memory high-water mark, and exec does not reset it, so a child of a large pytest
process (torch loaded: 600 MB and more) reports at least that much whatever it does. This launcher is a
small process that forks a fresh child (its rusage starts at zero) and reports that child's peak alone.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

MARK = "PEAK_RSS_KB"


def main() -> int:
    pid = os.fork()
    if pid == 0:  # the measured command; killed with this launcher (PR_SET_PDEATHSIG), never left behind
        try:
            ctypes.CDLL(None).prctl(1, signal.SIGKILL)
            os.execvp(sys.argv[1], sys.argv[1:])
        finally:
            os._exit(127)
    for sig in (signal.SIGINT, signal.SIGTERM):  # a stop meant for the command reaches it
        signal.signal(sig, lambda signum, _frame: os.kill(pid, signum))
    while True:
        try:
            _, status, usage = os.wait4(pid, 0)
            break
        except InterruptedError:
            continue
    print(f"{MARK} {usage.ru_maxrss}", file=sys.stderr, flush=True)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main())
