#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "ardkit/export.hpp"

namespace ardkit {

// Progress of long work: a redrawn bar on a terminal, plain periodic lines otherwise (logs, CI).
// A terminal gets a redraw five times a second and log.txt a line every 30 s; without a terminal
// (a log, CI, Slurm) stderr and log.txt get a line every 10 s.
class ARDKIT_API Progress {
 public:
  Progress(std::string label, int64_t total);
  ~Progress();
  // `done` of `total` units; a fraction of a unit is work inside one (ProgressWithin).
  void update(double done, const std::string& detail = {});
  void finish(const std::string& detail = {});
  // Whether update() would draw now: callers skip building a detail that nobody would see.
  bool due() const;

 private:
  void draw(double done, const std::string& detail, bool final);
  std::string label_;
  int64_t total_;
  bool tty_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_, last_log_;
};

// Progress inside one unit of a Progress (an evaluation's attack batch, which AutoAttack can keep
// busy for minutes). Whoever draws wraps the unit's work in a ProgressWithin; a long attack says
// how far it is with report_progress(); a composite attack gives each part its share of the unit
// with a ProgressPart. The state is per thread; with nobody listening (a training step's attack)
// a report costs one thread-local read.
class ARDKIT_API ProgressWithin {
 public:
  // Reports below land as progress.update(unit + fraction, prefix + their detail).
  ProgressWithin(Progress& progress, int64_t unit, std::string prefix = {});
  // Any other drawer: `due` says whether a report would be shown now, `report` gets the fraction
  // of the work done (0..1) and the detail.
  ProgressWithin(std::function<bool()> due,
                 std::function<void(double fraction, const std::string& detail)> report);
  ~ProgressWithin();
  ProgressWithin(const ProgressWithin&) = delete;
  ProgressWithin& operator=(const ProgressWithin&) = delete;

 private:
  void* previous_;
};

// A part of the enclosing work: reports inside it cover [begin, end) of the enclosing one (as
// fractions), their detail after `label` ("apgd-t, robust 41/50: ").
class ARDKIT_API ProgressPart {
 public:
  ProgressPart(double begin, double end, std::string label);
  ~ProgressPart();
  ProgressPart(const ProgressPart&) = delete;
  ProgressPart& operator=(const ProgressPart&) = delete;

 private:
  bool active_;
};

// Whether a report now would be drawn (someone listens and the refresh interval has passed).
ARDKIT_API bool progress_due();
// `done` of `total` of the innermost work, with its detail.
ARDKIT_API void report_progress_now(double done, double total, const std::string& detail);
// The same, building the detail (a callable returning std::string) only when it will be drawn:
//   ardkit::report_progress(i, steps, [&] { return fmt::format("step {}/{}", i, steps); });
template <class Detail>
void report_progress(double done, double total, const Detail& detail) {
  if (progress_due())
    report_progress_now(done, total, detail());
}

// Log lines go to stderr (progress) and, when set, to the run's log file too.
ARDKIT_API void set_log_file(const std::string& path);
// `echo = false` writes to the log file only (for what the caller prints on stdout itself).
ARDKIT_API void log_line(const std::string& line, bool echo = true);

}  // namespace ardkit
