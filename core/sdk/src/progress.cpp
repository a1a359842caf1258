#include "ardkit/progress.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <mutex>

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

Progress::Progress(std::string label, int64_t total)
    : label_(std::move(label)),
      total_(std::max<int64_t>(total, 1)),
      tty_(isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() {
  if (!finished_ && tty_)
    std::fprintf(stderr, "\n");
}

void Progress::update(int64_t done, const std::string& detail) {
  const auto now = std::chrono::steady_clock::now();
  // A terminal gets a redraw a few times a second; a log gets a line every 10 seconds.
  const auto interval = tty_ ? std::chrono::milliseconds(200) : std::chrono::milliseconds(10000);
  if (now - last_draw_ < interval)
    return;
  last_draw_ = now;
  draw(done, detail, false);
}

void Progress::finish(const std::string& detail) {
  if (finished_)
    return;
  finished_ = true;
  draw(total_, detail, true);
}

void Progress::draw(int64_t done, const std::string& detail, bool final) {
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double fraction = std::min(1.0, static_cast<double>(done) / static_cast<double>(total_));
  const double eta = fraction > 0 ? seconds * (1 - fraction) / fraction : 0;
  if (tty_) {
    constexpr int width = 24;
    const int filled = static_cast<int>(fraction * width);
    const std::string bar = std::string(filled, '#') + std::string(width - filled, '.');
    std::fprintf(stderr, "\r\033[K%s [%s] %3.0f%% %.0fs%s %s%s", label_.c_str(), bar.c_str(),
                 fraction * 100, seconds, final ? "" : fmt::format(" eta {:.0f}s", eta).c_str(),
                 detail.c_str(), final ? "\n" : "");
    std::fflush(stderr);
    if (final) {
      std::lock_guard<std::mutex> lock(log_mutex);
      if (log_file().is_open())
        log_file() << fmt::format("{} done in {:.1f}s {}\n", label_, seconds, detail) << std::flush;
    }
  } else {
    log_line(fmt::format("{} {}/{} ({:.0f}%) {:.0f}s{} {}", label_, done, total_, fraction * 100,
                         seconds, final ? "" : fmt::format(" eta {:.0f}s", eta), detail));
  }
}

}  // namespace ardkit
