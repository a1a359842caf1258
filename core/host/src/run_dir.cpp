#include "ardkit/host/run_dir.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <torch/version.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "ardkit/error.hpp"
#include "ardkit/host/tensorboard_log.hpp"
#include "ardkit/interrupt.hpp"
#include "ardkit/version.hpp"

namespace fs = std::filesystem;

namespace ardkit {

namespace {
std::string now_iso() {
  const auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer;
}
}  // namespace

RunDir::RunDir(fs::path root, std::string run_id, std::string experiment)
    : root_(std::move(root)), run_id_(std::move(run_id)), experiment_(std::move(experiment)) {
  std::error_code ec;
  fs::create_directories(root_ / "checkpoints", ec);
  if (ec)
    throw_runtime_error("cannot create run folder " + root_.string() + ": " + ec.message());
}

RunDir::~RunDir() {
  if (lock_fd_ >= 0)
    ::close(lock_fd_);  // closing releases the flock
}

void RunDir::lock(double wait_seconds,
                  const std::function<void(const std::string& holder)>& on_wait) {
  if (lock_fd_ >= 0)
    return;
  const fs::path path = root_ / ".lock";
  lock_fd_ = ::open(path.c_str(), O_RDWR | O_CREAT, 0644);
  if (lock_fd_ < 0)
    throw_runtime_error("cannot create " + path.string() + ": " + std::strerror(errno));
  const auto holder = [&] {
    char pid[32] = {0};
    [[maybe_unused]] auto n = ::pread(lock_fd_, pid, sizeof pid - 1, 0);
    return std::string(pid).empty() ? std::string("?") : std::string(pid);
  };
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(int64_t(wait_seconds * 1000));
  bool announced = false;
  while (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    const std::string pid = holder();
    if (std::chrono::steady_clock::now() >= deadline || interrupt_requested()) {
      ::close(lock_fd_);
      lock_fd_ = -1;
      if (interrupt_requested())
        throw Interrupted();
      throw_runtime_error(fmt::format(
          "run {} is already running (process {}){}; wait for it or stop it first", root_.string(),
          pid, wait_seconds > 0 ? fmt::format(" after waiting {:.0f} s", wait_seconds) : ""));
    }
    if (!announced && on_wait)
      on_wait(pid);
    announced = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  const std::string me = std::to_string(::getpid());
  [[maybe_unused]] auto t = ::ftruncate(lock_fd_, 0);
  [[maybe_unused]] auto w = ::pwrite(lock_fd_, me.data(), me.size(), 0);
}

fs::path RunDir::checkpoint_path(const std::string& which) const {
  return root_ / "checkpoints" / (which + ".pt");
}
fs::path RunDir::eval_state_path(const std::string& which) const {
  return root_ / "checkpoints" / ("test_" + which + ".state.json");
}
fs::path RunDir::results_path() const {
  return root_ / "results.json";
}
fs::path RunDir::metrics_path() const {
  return root_ / "metrics.jsonl";
}
fs::path RunDir::log_path() const {
  return root_ / "log.txt";
}

std::string run_state(const fs::path& folder) {
  std::ifstream in(folder / "status.json");
  if (!in)
    return {};
  try {
    return nlohmann::json::parse(in).value("state", "");
  } catch (const std::exception&) {
    return {};
  }
}

bool run_completed(const fs::path& folder) {
  return run_state(folder) == "completed" && fs::exists(folder / "results.json");
}

bool run_locked(const fs::path& folder) {
  const int fd = ::open((folder / ".lock").c_str(), O_RDONLY);
  if (fd < 0)
    return false;
  const bool held = ::flock(fd, LOCK_SH | LOCK_NB) != 0;
  ::close(fd);
  return held;
}

std::string RunDir::state() const {
  return run_state(root_);
}

void RunDir::write_config(const toml::table& resolved) const {
  std::ostringstream text;
  text << "# Resolved configuration of run " << run_id_ << " (every default filled in).\n"
       << toml::toml_formatter(resolved) << "\n";
  write_file_atomic(root_ / "config.toml", text.str());
}

void RunDir::set_state(const std::string& state, const std::string& detail) const {
  nlohmann::json status;
  {
    std::ifstream in(root_ / "status.json");
    if (in) {
      try {
        status = nlohmann::json::parse(in);
      } catch (const std::exception&) {
        status = nlohmann::json::object();
      }
    }
  }
  if (!status.contains("created"))
    status["created"] = now_iso();
  status["state"] = state;
  status["run_id"] = run_id_;
  status["experiment"] = experiment_;
  status["updated"] = now_iso();
  status["ardkit_version"] = kVersion;
  status["git_commit"] = kGitCommit;
  status["torch_version"] = TORCH_VERSION;
  status["pid"] = static_cast<int64_t>(::getpid());
  if (detail.empty())
    status.erase("error");
  else
    status["error"] = detail;
  write_file_atomic(root_ / "status.json", status.dump(2) + "\n");
}

void RunDir::append_metrics(const std::string& json_line) {
  {
    std::ofstream out(metrics_path(), std::ios::app);
    out << json_line << '\n';
  }
  if (tensorboard_)
    tensorboard_->record(nlohmann::json::parse(json_line));
}

void RunDir::start_tensorboard(int64_t resume_step, const std::string& label) {
  tensorboard_ = std::make_unique<TensorBoardLog>(root_, resume_step, label);
}

}  // namespace ardkit
