#include "ardkit/interrupt.hpp"

#include <time.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdint>

namespace ardkit {

namespace {
std::atomic<bool> requested{false};
std::atomic<int64_t> requested_at_ns{0};

int64_t monotonic_ns() {  // clock_gettime is async-signal-safe; std::chrono is not promised to be
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return int64_t{t.tv_sec} * 1000000000 + t.tv_nsec;
}

void on_signal(int signal_number) {
  if (requested.load()) {
    // Second signal: the user wants out now; the last checkpoint is still on disk.
    std::signal(signal_number, SIG_DFL);
    std::raise(signal_number);
    return;
  }
  requested_at_ns.store(monotonic_ns());  // before the flag: check_interrupt reads both
  requested.store(true);
  const char message[] =
      "\nardkit: interrupt received, finishing the current step and checkpointing "
      "(send it again to stop at once)\n";
  [[maybe_unused]] auto ignored = write(STDERR_FILENO, message, sizeof(message) - 1);
}
}  // namespace

void install_interrupt_handlers() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  // What `sbatch --signal=USR1@SECONDS` sends before a job's time limit: checkpoint and stop, so
  // the requeued job resumes. Left at its default, SIGUSR1 would kill the run mid-write.
  std::signal(SIGUSR1, on_signal);
}

bool interrupt_requested() {
  return requested.load(std::memory_order_relaxed);
}

void clear_interrupt() {
  requested.store(false);
}

void check_interrupt() {
  if (requested.load(std::memory_order_relaxed) &&
      monotonic_ns() - requested_at_ns.load() > static_cast<int64_t>(kInterruptGrace * 1e9))
    throw Interrupted();
}

}  // namespace ardkit

namespace ardkit {
Interrupted::~Interrupted() = default;
}  // namespace ardkit
