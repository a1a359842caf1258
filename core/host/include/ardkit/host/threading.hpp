#pragma once
// How the process uses the CPU's cores. LibTorch on Debian brings three thread pools of its own:
// OpenMP (ATen's parallel loops and oneDNN's convolutions), OpenBLAS's pthreads (matrix products)
// and pthreadpool (XNNPACK). Each spins while idle, so on a machine with few cores two pools
// running one after the other take the cores from each other: profiles of a training step on
// 2 cores showed a third of the time in sched_yield and spin loops. ardkit gives the cores to one
// pool (OpenMP) and keeps its own background threads out of the way (docs/performance.md).
#include <cstdint>

#include "ardkit/export.hpp"

namespace ardkit {

// Sets the intra-op threads (0 = one per core), makes OpenBLAS single-threaded (its matrix
// products then run on the calling thread instead of waking a second pool), and flushes
// denormals. Call once, before the first tensor operation.
ARDKIT_API void configure_cpu_threads(int64_t threads);

// For a background thread (data prefetching, writers): its ATen work runs on this thread alone,
// without starting an OpenMP team of its own that would compete with the training thread's.
ARDKIT_API void use_one_cpu_thread_here();

}  // namespace ardkit
