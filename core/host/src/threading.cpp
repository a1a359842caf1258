#include "ardkit/host/threading.hpp"

#include <dlfcn.h>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <thread>

namespace ardkit {
namespace {

// The BLAS and OpenMP runtimes are the ones LibTorch was linked with (libopenblas, libgomp), not
// ones ardkit links itself: found by name among the loaded libraries, so a clang build (whose
// OpenMP would be libomp) sets the same runtime LibTorch uses. Absent functions are skipped:
// another BLAS or a LibTorch without OpenMP needs nothing.
template <typename F>
F loaded_function(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_DEFAULT, name));
}

}  // namespace

void configure_cpu_threads(int64_t threads) {
  const int64_t n =
      threads > 0 ? threads
                  : std::max<int64_t>(1, static_cast<int64_t>(std::thread::hardware_concurrency()));
  // Debian's LibTorch starts with one intra-op thread; use the machine unless told otherwise.
  torch::set_num_threads(static_cast<int>(n));
  if (const auto set = loaded_function<void (*)(int)>("openblas_set_num_threads"))
    set(1);
  // Weight decay drives many weights towards zero; denormal arithmetic is ~10x slower on x86 and
  // was measured to cost a third of training throughput by the fourth epoch.
  at::globalContext().setFlushDenormal(true);
}

void use_one_cpu_thread_here() {
  // ATen sets a thread's OpenMP team size on its first parallel loop; do that now so that the
  // setting below is not overwritten by it.
  at::internal::lazy_init_num_threads();
  if (const auto set = loaded_function<void (*)(int)>("omp_set_num_threads"))
    set(1);
}

}  // namespace ardkit
