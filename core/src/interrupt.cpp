#include "ardkit/interrupt.hpp"

#include <unistd.h>
#include <atomic>
#include <csignal>

namespace ardkit {

namespace {
std::atomic<bool> requested{false};

void on_signal(int signal_number) {
  if (requested.exchange(true)) {
    // Second signal: the user wants out now; the last checkpoint is still on disk.
    std::signal(signal_number, SIG_DFL);
    std::raise(signal_number);
    return;
  }
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

}  // namespace ardkit

namespace ardkit {
Interrupted::~Interrupted() = default;
}  // namespace ardkit
