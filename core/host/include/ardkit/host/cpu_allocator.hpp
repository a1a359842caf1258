#pragma once
// A caching allocator for CPU tensors. LibTorch's CPU allocator hands every tensor to malloc and
// back; glibc serves blocks of more than a few MiB with fresh mmap()s and returns them to the
// kernel on free, so a training step or an attack iteration that makes the same activations again
// and again page-faults on every one of them (measured: up to 40% of an AutoAttack evaluation in
// the kernel; an RSLAD step 1.7x slower depending only on the heap's history). Large blocks are
// kept instead, by size class, and handed out again; the pages stay mapped and warm. CUDA
// LibTorch has its own caching allocator for device memory; this one is only for the CPU.
#include <cstddef>
#include <cstdint>

#include "ardkit/export.hpp"

namespace ardkit {

struct CpuCacheStats {
  int64_t cached_bytes = 0;  // free blocks held for reuse
  int64_t live_bytes = 0;    // cached-size blocks (64 KiB and more) in tensors now
  int64_t hits = 0, misses = 0;
};

// Makes the caching allocator LibTorch's CPU allocator (once; later calls change the limit only).
// Blocks of at least 64 KiB are cached, rounded up to one of four size classes per power of two
// (at most 25% more than asked); at most `limit_bytes` are kept free, beyond which a freed block
// goes back to the system. Not installed under AddressSanitizer, whose reports of use after free
// a cache would hide.
ARDKIT_API void install_caching_cpu_allocator(int64_t limit_bytes = int64_t{4} << 30);
// The same, capped by the environment: ARDKIT_CPU_CACHE_MB (MiB held free for reuse, default
// 4096; 0 leaves LibTorch's allocator in place). A value that is not a whole number is a config
// error naming the variable.
ARDKIT_API void install_caching_cpu_allocator_from_environment();
// Whether it is LibTorch's CPU allocator now.
ARDKIT_API bool caching_cpu_allocator_installed();
ARDKIT_API CpuCacheStats caching_cpu_allocator_stats();
// Returns every cached block to the system.
ARDKIT_API void release_cached_cpu_memory();

}  // namespace ardkit
