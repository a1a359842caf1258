#include "ardkit/progress.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <functional>
#include <mutex>
#include <vector>

namespace ardkit {

namespace {
std::mutex log_mutex;
std::ofstream& log_file() {
  static std::ofstream file;
  return file;
}
}  // namespace

void set_log_file(const std::string& path) {
  std::lock_guard<std::mutex> lock(log_mutex);
  if (log_file().is_open())
    log_file().close();
  if (!path.empty())
    log_file().open(path, std::ios::app);
}

void log_line(const std::string& line, bool echo) {
  std::lock_guard<std::mutex> lock(log_mutex);
  if (echo)
    std::fprintf(stderr, "%s\n", line.c_str());
  if (log_file().is_open()) {
    // The file keeps when each line happened (UTC), for reading a long run after the fact; the
    // terminal already has its own clock.
    const auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm tm{};
    gmtime_r(&t, &tm);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ ", &tm);
    log_file() << stamp << line << '\n' << std::flush;
  }
}

namespace {
constexpr auto kTerminalInterval = std::chrono::milliseconds(200);
constexpr auto kLogInterval = std::chrono::milliseconds(10000);
constexpr auto kTerminalLogInterval = std::chrono::milliseconds(30000);

// Who listens on this thread (a ProgressWithin), and the parts entered below it.
struct Listening {
  std::function<bool()> due;
  std::function<void(double, const std::string&)> report;
  struct Frame {
    double begin, end;
    std::string label;
  };
  std::vector<Frame> frames;
};
thread_local Listening* listening = nullptr;

std::string count_text(double done) {
  return done == std::floor(done) ? fmt::format("{:.0f}", done) : fmt::format("{:.2f}", done);
}
}  // namespace

Progress::Progress(std::string label, int64_t total)
    : label_(std::move(label)),
      total_(std::max<int64_t>(total, 1)),
      tty_(isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_),
      last_log_(start_) {}

Progress::~Progress() {
  if (!finished_ && tty_)
    std::fprintf(stderr, "\n");
}

bool Progress::due() const {
  return !finished_ &&
         std::chrono::steady_clock::now() - last_draw_ >= (tty_ ? kTerminalInterval : kLogInterval);
}

void Progress::update(double done, const std::string& detail) {
  if (!due())
    return;
  last_draw_ = std::chrono::steady_clock::now();
  draw(done, detail, false);
}

void Progress::finish(const std::string& detail) {
  if (finished_)
    return;
  finished_ = true;
  draw(static_cast<double>(total_), detail, true);
}

void Progress::draw(double done, const std::string& detail, bool final) {
  const auto now = std::chrono::steady_clock::now();
  const double seconds = std::chrono::duration<double>(now - start_).count();
  const double fraction = std::clamp(done / static_cast<double>(total_), 0.0, 1.0);
  const double eta = fraction > 0 ? seconds * (1 - fraction) / fraction : 0;
  const std::string line =
      fmt::format("{} {}/{} ({:.0f}%) {:.0f}s{} {}", label_, count_text(done), total_,
                  fraction * 100, seconds, final ? "" : fmt::format(" eta {:.0f}s", eta), detail);
  if (!tty_) {
    log_line(line);
    return;
  }
  constexpr int width = 24;
  const int filled = static_cast<int>(fraction * width);
  const std::string bar = std::string(filled, '#') + std::string(width - filled, '.');
  std::fprintf(stderr, "\r\033[K%s [%s] %3.0f%% %.0fs%s %s%s", label_.c_str(), bar.c_str(),
               fraction * 100, seconds, final ? "" : fmt::format(" eta {:.0f}s", eta).c_str(),
               detail.c_str(), final ? "\n" : "");
  std::fflush(stderr);
  // The log file, which the terminal's redraws never reach, gets the end and a line now and then.
  if (final) {
    log_line(fmt::format("{} done in {:.1f}s {}", label_, seconds, detail), /*echo=*/false);
  } else if (now - last_log_ >= kTerminalLogInterval) {
    last_log_ = now;
    log_line(line, /*echo=*/false);
  }
}

ProgressWithin::ProgressWithin(Progress& progress, int64_t unit, std::string prefix)
    : ProgressWithin([&progress] { return progress.due(); },
                     [&progress, unit, prefix = std::move(prefix)](double fraction,
                                                                   const std::string& detail) {
                       progress.update(static_cast<double>(unit) + fraction, prefix + detail);
                     }) {}

ProgressWithin::ProgressWithin(std::function<bool()> due,
                               std::function<void(double, const std::string&)> report)
    : previous_(listening) {
  listening = new Listening{std::move(due), std::move(report), {}};
}

ProgressWithin::~ProgressWithin() {
  delete listening;
  listening = static_cast<Listening*>(previous_);
}

ProgressPart::ProgressPart(double begin, double end, std::string label)
    : active_(listening != nullptr) {
  if (active_)
    listening->frames.push_back({begin, end, std::move(label)});
}

ProgressPart::~ProgressPart() {
  if (active_ && listening && !listening->frames.empty())
    listening->frames.pop_back();
}

bool progress_due() {
  return listening != nullptr && listening->due();
}

void report_progress_now(double done, double total, const std::string& detail) {
  if (!listening)
    return;
  double fraction = total > 0 ? std::clamp(done / total, 0.0, 1.0) : 0.0;
  std::string text;
  for (auto it = listening->frames.rbegin(); it != listening->frames.rend(); ++it)
    fraction = it->begin + (it->end - it->begin) * fraction;
  for (const auto& frame : listening->frames)
    text += frame.label;
  listening->report(fraction, text + detail);
}

}  // namespace ardkit
