#pragma once
// `ardkit report`: the results of runs (a grid's cells, run folders, evaluation files) grouped by
// any of their coordinates, mean ± std over the rest (seeds), in the terminal or as Markdown,
// CSV, LaTeX, JSON, RobustBench's model_info, or one self-contained HTML page.
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace ardkit::cli {

namespace fs = std::filesystem;

// One evaluated model: a run's last or best checkpoint, or an `ardkit eval` result.
struct ReportEntry {
  fs::path folder;  // the run folder ("" for a loose evaluation file)
  std::string run_id, name;
  std::string source;  // "last", "best", "eval:best-test", "eval"
  std::vector<std::pair<std::string, std::string>> coordinates;  // key, value as shown
  int64_t points = 0;
  double clean = 0;
  std::vector<std::pair<std::string, double>> attacks;  // in evaluation order
  std::optional<double> worst;
  nlohmann::ordered_json threats = nlohmann::ordered_json::object();  // attack: {norm, eps}
  const nlohmann::ordered_json* config = nullptr;   // resolved configuration, when a run
  const nlohmann::ordered_json* results = nullptr;  // results.json, when a run
  const nlohmann::ordered_json* epochs = nullptr;   // per-epoch training metrics, when a run
};

struct ReportStat {
  double mean = 0, std = 0;
  std::vector<double> values;
};

struct ReportGroup {
  std::vector<std::pair<std::string, std::string>> keys;
  std::string source;
  std::vector<const ReportEntry*> members;
  std::vector<std::pair<std::string, ReportStat>> stats;  // metric -> stat, in column order
  // The members' training budget (results.json "budget"), as shown: one number when every member
  // spent the same, else "min-max"; "-" when a member has none. In Report::budget order.
  std::vector<std::string> budget;
  const ReportStat* stat(const std::string& metric) const;
};

struct Report {
  std::vector<std::string> group_by;
  std::vector<std::string> metrics;  // "clean", attack names..., "worst_case"
  // Budget keys any entry's run recorded (generator_updates, student_steps, teacher_queries).
  std::vector<std::string> budget;
  std::vector<ReportEntry> entries;
  std::vector<ReportGroup> groups;
  std::vector<std::string> axes;  // every coordinate key, for the HTML page's choices
  // Everything the formats print, as one JSON document (what --format json writes).
  nlohmann::ordered_json to_json() const;
};

// The self-contained HTML page: the tables, scatter, eps curves, training curves, a heat map of
// two axes (`heatmap`, or the first two varying ones) and the configuration differences.
std::string report_html(const Report& report, const std::vector<std::string>& heatmap);

}  // namespace ardkit::cli
