// Serving ahead of polling (issue 10): the exporter's polling threads (scheduler workers, the
// WinRM I/O thread and the threads they start, e.g. libcurl's resolver) run a few nice levels
// below its web threads, which also ask for a short scheduler slice. On one busy core a /probe
// then waits for a poll step to yield instead of queueing behind it on equal terms.
// Unprivileged: a thread may always lower its own priority. Linux: nice is per thread and a
// new thread inherits its creator's.
#pragma once

namespace common {

// Set once at start-up, before any polling thread starts: polling threads run `offset` nice
// levels above the calling thread's (capped at 19). 0: they keep it.
void set_polling_nice_offset(int offset);
int polling_nice_offset();

// Called by a polling thread as it starts: lowers its own priority by the offset (never raises
// it). Returns false when the kernel refused (nothing changes then).
bool apply_polling_priority();

// Called by a web thread as it starts: asks the kernel for a short time slice (0.1 ms,
// SCHED_OTHER, sched_setattr) so that a woken web thread is run ahead of a polling thread in
// the middle of its slice (EEVDF, Linux 6.12 and later; older kernels ignore it). Does
// nothing when the polling offset is 0. Returns false when the kernel refused.
bool apply_serving_priority();

}  // namespace common
