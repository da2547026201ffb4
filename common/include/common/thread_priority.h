// Serving ahead of polling (issue 10): the exporter's polling threads (scheduler workers, the
// WinRM I/O thread and the threads they start, e.g. libcurl's resolver) run as SCHED_BATCH
// (same CPU share, but their wake-ups never preempt another thread) and, with --scheduler.nice,
// a few nice levels below the web threads. The web loop thread, which answers /probe, asks for
// a short scheduler slice: woken by a request, it runs ahead of a polling thread in the middle
// of its slice instead of waiting for the next tick (4 ms at HZ=250).
// Unprivileged: a thread may always lower its own priority or move itself to SCHED_BATCH.
// Linux: nice and policy are per thread and a new thread inherits its creator's.
#pragma once

namespace common {

// Set once at start-up, before any polling thread starts: polling threads run `offset` nice
// levels above the calling thread's (capped at 19). 0: they keep it.
void set_polling_nice_offset(int offset);
int polling_nice_offset();

// Called by a polling thread as it starts: moves itself to SCHED_BATCH (keeping its nice
// value) and lowers its own priority by the offset (never raises it). Returns false when the
// kernel refused either (the thread keeps what it had).
bool apply_polling_priority();

// Called by a web thread as it starts: asks the kernel for a short time slice (0.1 ms,
// SCHED_OTHER, sched_setattr) so that a woken web thread is run ahead of a polling thread in
// the middle of its slice (EEVDF PREEMPT_SHORT, Linux 6.12 and later; older kernels ignore
// it). The loop thread (`latency_critical`: it answers /probe) always asks; workers (bulk
// /metrics) only when the polling offset is above 0. Returns false when the kernel refused.
bool apply_serving_priority(bool latency_critical);

}  // namespace common
