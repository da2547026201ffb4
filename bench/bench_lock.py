"""One pinned benchmark at a time on this machine: scale, soak, side-by-side and sim_handshakes
pin the simulator and the client to the same cores, so two of them at once measure each other
(two scale runs overlapping on 2026-12-02 gave 24% of polls done instead of ~100%: RESULTS.md).
An exclusive flock on LOCK_PATH, held until the process exits; smoke runs (ctest) skip it.
Waiters queue in arrival order (a ticket file each in QUEUE_DIR): only the oldest live ticket tries
the lock, so a script that retakes the lock at once no longer overtakes one that has been waiting
(on 2026-12-02 a waiter polling every 5 s lost to back-to-back runs for 42 minutes)."""
import atexit
import fcntl
import os
import sys
import time

LOCK_PATH = "/tmp/winrm-exporter-bench.lock"
QUEUE_DIR = "/tmp/winrm-exporter-bench.queue"
_held = None  # the open lock file, kept for the life of the process


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _first_in_queue(ticket):
    """True when ticket is the oldest ticket whose process still runs (dead ones are removed)."""
    for name in sorted(os.listdir(QUEUE_DIR)):
        if name == ticket:
            return True
        try:
            pid = int(name.split("-")[1])
        except (IndexError, ValueError):
            pid = 0
        if pid and _alive(pid):
            return False
        try:
            os.unlink(os.path.join(QUEUE_DIR, name))
        except FileNotFoundError:
            pass
    return True  # our ticket vanished (tmp cleaner): do not wait behind nobody


def hold(what, wait_seconds=3600.0):
    """Takes the lock, waiting at most wait_seconds (then exits 1) and saying who holds it."""
    global _held
    f = open(LOCK_PATH, "a+")
    os.makedirs(QUEUE_DIR, exist_ok=True)
    ticket = f"{time.time_ns():020d}-{os.getpid()}"
    ticket_path = os.path.join(QUEUE_DIR, ticket)
    open(ticket_path, "w").close()

    def drop_ticket():
        try:
            os.unlink(ticket_path)
        except FileNotFoundError:
            pass

    atexit.register(drop_ticket)
    deadline = time.monotonic() + wait_seconds
    said = False
    while True:
        try:
            if not _first_in_queue(ticket):
                raise BlockingIOError
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            drop_ticket()
            break
        except BlockingIOError:
            if not said:
                f.seek(0)
                print(f"waiting for another benchmark to finish ({f.read().strip() or 'unknown'}; "
                      f"lock {LOCK_PATH}, at most {wait_seconds:.0f} s)", flush=True)
                said = True
            if time.monotonic() > deadline:
                sys.exit(f"another benchmark still holds {LOCK_PATH} after {wait_seconds:.0f} s")
            time.sleep(1)
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()} {what} since {time.strftime('%H:%M:%S')}\n")
    f.flush()
    _held = f
