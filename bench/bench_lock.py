"""One pinned benchmark at a time on this machine: scale, soak, side-by-side and sim_handshakes
pin the simulator and the client to the same cores, so two of them at once measure each other
(two scale runs overlapping on 2026-12-02 gave 24% of polls done instead of ~100%: RESULTS.md).
An exclusive flock on LOCK_PATH, held until the process exits; smoke runs (ctest) skip it."""
import fcntl
import os
import sys
import time

LOCK_PATH = "/tmp/winrm-exporter-bench.lock"
_held = None  # the open lock file, kept for the life of the process


def hold(what, wait_seconds=3600.0):
    """Takes the lock, waiting at most wait_seconds (then exits 1) and saying who holds it."""
    global _held
    f = open(LOCK_PATH, "a+")
    deadline = time.monotonic() + wait_seconds
    said = False
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if not said:
                f.seek(0)
                print(f"waiting for another benchmark to finish ({f.read().strip() or 'unknown'}; "
                      f"lock {LOCK_PATH}, at most {wait_seconds:.0f} s)", flush=True)
                said = True
            if time.monotonic() > deadline:
                sys.exit(f"another benchmark still holds {LOCK_PATH} after {wait_seconds:.0f} s")
            time.sleep(5)
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()} {what} since {time.strftime('%H:%M:%S')}\n")
    f.flush()
    _held = f
