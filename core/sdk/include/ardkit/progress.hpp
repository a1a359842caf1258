#pragma once
#include <chrono>
#include <string>

#include "ardkit/export.hpp"

namespace ardkit {

// Progress of long work: a redrawn bar on a terminal, plain periodic lines otherwise (logs, CI).
class ARDKIT_API Progress {
 public:
  Progress(std::string label, int64_t total);
  ~Progress();
  void update(int64_t done, const std::string& detail = {});
  void finish(const std::string& detail = {});

 private:
  void draw(int64_t done, const std::string& detail, bool final);
  std::string label_;
  int64_t total_;
  bool tty_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

// Log lines go to stderr (progress) and, when set, to the run's log file too.
ARDKIT_API void set_log_file(const std::string& path);
// `echo = false` writes to the log file only (for what the caller prints on stdout itself).
ARDKIT_API void log_line(const std::string& line, bool echo = true);

}  // namespace ardkit
