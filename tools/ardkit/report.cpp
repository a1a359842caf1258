#include "report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include <ardkit/error.hpp>
#include <ardkit/hash.hpp>
#include <ardkit/host/run_dir.hpp>
#include <ardkit/text.hpp>

#include "cli_common.hpp"
#include "commands.hpp"
#include "grid_plan.hpp"
#include "results_index.hpp"

namespace ardkit::cli {

namespace {

const char* kReportHelp = R"(usage: ardkit report PATH... [options]

One table of results, grouped by any coordinates with mean ± std over the rest (seeds) and the
count. PATH is a grid file (its cells, labelled by their axes), a run folder, a folder of run
folders, or an `ardkit eval` results file. Each run store keeps an index (STORE/index.sqlite,
rebuilt from the run folders whenever they change).

  ardkit report experiments/fmnist/grids/methods.toml --output runs/fmnist-grid
  ardkit report runs/fmnist-distill --format markdown
  ardkit report GRID.toml --by experiment --html report.html

options)";

const ReportStat kNone;

// TOML text of a coordinate as a reader wants it: strings without their quotes, and floats such
// as 5/6 with six significant digits (0.833333) instead of all seventeen.
std::string shown(const std::string& value) {
  if (value.size() >= 2 && (value.front() == '"' || value.front() == '\''))
    return value.substr(1, value.size() - 2);
  if (value.size() > 8 && value.find_first_not_of("0123456789.-+eE") == std::string::npos &&
      value.find('.') != std::string::npos) {
    try {
      return fmt::format("{:.6g}", std::stod(value));
    } catch (const std::exception&) {
    }
  }
  return value;
}

// An entry per checkpoint of a run (and per evaluation file in its evals/).
void add_entries(Report& report, const IndexedRun& run,
                 const std::vector<std::pair<std::string, std::string>>& coordinates,
                 const std::string& only) {
  const auto entry_of = [&](const std::string& source, const nlohmann::ordered_json& r) {
    ReportEntry e;
    e.folder = run.folder;
    e.run_id = run.run_id;
    e.name = run.name;
    e.source = source;
    e.coordinates = coordinates;
    e.points = r.value("points", int64_t{0});
    e.clean = r.value("clean_acc", 0.0);
    if (r.contains("attacks"))
      for (const auto& [name, v] : r["attacks"].items()) {
        e.attacks.emplace_back(name, v.value("robust_acc", 0.0));
        // Run results keep each attack's threat beside the table (eps, norm); eval results
        // keep it in the attack's entry.
        const auto& res = run.results;
        const double eps = v.contains("eps")     ? v.value("eps", 0.0)
                           : res.contains("eps") ? res["eps"].value(name, 0.0)
                                                 : 0.0;
        const std::string norm = v.contains("norm")     ? v.value("norm", "")
                                 : res.contains("norm") ? res["norm"].value(name, "")
                                                        : res.value("threat_model", "");
        e.threats[name] = {{"norm", norm}, {"eps", eps}};
      }
    if (r.contains("worst_case_acc"))
      e.worst = r.value("worst_case_acc", 0.0);
    e.config = &run.config;
    e.results = &run.results;
    e.epochs = &run.epochs;
    report.entries.push_back(std::move(e));
  };
  for (const std::string& which : checkpoint_kinds())
    if (run.results.contains(which) && (only == "all" || only == which))
      entry_of(which, run.results[which]);
  for (const auto& [stem, e] : run.evals)
    if (only == "all" || only == "eval")
      entry_of("eval:" + stem, e);
}

using Coordinates = std::vector<std::pair<std::string, std::string>>;

// Coordinates that tell apart runs of one name whose configurations differ in more than the seed
// (and where and how they ran): grouped by name alone they would be averaged as if they were
// seeds of one experiment. The keys in which they differ become coordinates ("attack.eps"); past
// three independent keys, "config" holds a short hash of the configuration instead.
std::map<const IndexedRun*, Coordinates> distinguishing_coordinates(
    const std::vector<const IndexedRun*>& runs) {
  // Where, how and under which label a run was watched does not tell experiments apart.
  static const std::set<std::string> ignored = {"/run/seed",        "/run/output", "/run/threads",
                                                "/run/plugin_path", "/run/name",   "/run/label",
                                                "/run/tensorboard"};
  std::map<std::string, std::vector<const IndexedRun*>> by_name;
  for (const auto* r : runs)
    by_name[r->name].push_back(r);
  std::map<const IndexedRun*, Coordinates> out;
  for (const auto& [name, same] : by_name) {
    std::vector<std::map<std::string, std::string>> flat;
    std::set<std::string> keys;
    for (const auto* r : same) {
      std::map<std::string, std::string> f;
      const auto flattened = r->config.flatten();  // items() of a temporary would dangle
      for (const auto& [pointer, value] : flattened.items())
        if (!ignored.count(pointer) && pointer.rfind("/run/plugin_path/", 0) != 0) {
          f[pointer] = value.dump();
          keys.insert(pointer);
        }
      flat.push_back(std::move(f));
    }
    // Keys that split the runs the same way move together (attack.eps with every [[eval]] eps
    // and step size; objective.plugin with that objective's parameters): one stands for each such
    // set, a plugin choice first, then the shallowest key.
    const auto rank = [](const std::string& k) {
      const bool plugin = k.size() >= 7 && k.compare(k.size() - 7, 7, "/plugin") == 0;
      return std::make_tuple(!plugin, std::count(k.begin(), k.end(), '/'), k);
    };
    std::map<std::vector<size_t>, std::string> representative;
    for (const auto& k : keys) {
      std::map<std::string, size_t> class_of;
      std::vector<size_t> partition;
      for (const auto& f : flat) {
        const auto v = f.find(k);
        partition.push_back(
            class_of.emplace(v == f.end() ? "\x1f" : v->second, class_of.size()).first->second);
      }
      if (class_of.size() < 2)
        continue;
      auto [it, inserted] = representative.emplace(partition, k);
      if (!inserted && rank(k) < rank(it->second))
        it->second = k;
    }
    std::vector<std::string> differing;
    for (const auto& [partition, k] : representative)
      differing.push_back(k);
    std::sort(differing.begin(), differing.end());
    if (differing.empty())
      continue;
    for (size_t i = 0; i < same.size(); ++i) {
      Coordinates& c = out[same[i]];
      if (differing.size() > 3) {
        std::string text;
        for (const auto& [k, v] : flat[i])
          text += k + "=" + v + "\n";
        c.emplace_back("config", fmt::format("{:06x}", fnv1a(text.data(), text.size()) & 0xffffff));
        continue;
      }
      for (const auto& k : differing) {
        std::string dotted = k.substr(1);
        std::replace(dotted.begin(), dotted.end(), '/', '.');
        const auto v = flat[i].find(k);
        c.emplace_back(dotted, v == flat[i].end() ? "-" : shown(v->second));
      }
    }
  }
  return out;
}

// A stand-alone `ardkit eval` results file as a run with no folder.
IndexedRun eval_file_run(const fs::path& file) {
  std::ifstream in(file);
  IndexedRun run;
  try {
    const auto j = nlohmann::ordered_json::parse(in);
    if (!j.is_object() || !j.contains("attacks") || !j.contains("clean_acc"))
      throw std::runtime_error("no clean_acc and attacks");
    check_results_json(j, file, false);
    run.name = j.value("name", file.stem().string());
    run.run_id = run.name;
    run.evals.emplace_back(file.stem().string(), j);
    if (j.contains("config"))
      run.config = j["config"];
  } catch (const std::exception& e) {
    throw_config_error(fmt::format("report: {} is not an `ardkit eval` results file ({})",
                                   file.string(), e.what()));
  }
  return run;
}

std::string format_stat(const ReportStat& s, int n) {
  if (s.values.empty())
    return "-";
  return n > 1 ? fmt::format("{:.2f} ± {:.2f}", s.mean, s.std) : fmt::format("{:.2f}", s.mean);
}

std::string column_title(const std::string& metric) {
  return metric == "worst_case" ? "worst" : metric;
}

// The budget columns, in this order, of those any run recorded: what a fair comparison of
// data-free methods holds equal (generator updates, student steps, images through the teacher).
const std::vector<std::pair<std::string, std::string>> kBudgetColumns = {
    {"generator_updates", "gen_updates"},
    {"student_steps", "steps"},
    {"teacher_queries", "queries"}};

std::string budget_title(const std::string& key) {
  for (const auto& [k, title] : kBudgetColumns)
    if (k == key)
      return title;
  return key;
}

// A count as a reader scans it: 640, 81.9k, 1.23M.
std::string compact_count(int64_t n) {
  if (n < 10000)
    return std::to_string(n);
  if (n < 1000000)
    return fmt::format("{:.1f}k", double(n) / 1e3);
  return fmt::format("{:.3g}M", double(n) / 1e6);
}

// A group's budget for `key`: the one value its members share, else "min-max"; "-" (or "" in
// CSV) when a member did not record it. `compact` shortens large counts for tables.
std::string budget_range(const ReportGroup& g, const std::string& key, bool compact) {
  int64_t lo = std::numeric_limits<int64_t>::max(), hi = std::numeric_limits<int64_t>::min();
  for (const auto* e : g.members) {
    if (!e->results || !e->results->contains("budget") || !(*e->results)["budget"].contains(key))
      return compact ? "-" : "";
    const int64_t v = (*e->results)["budget"][key].get<int64_t>();
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  const auto text = [&](int64_t v) { return compact ? compact_count(v) : std::to_string(v); };
  return lo == hi ? text(lo) : text(lo) + "-" + text(hi);
}

// The table as rows of strings (header first), shared by the terminal, Markdown and LaTeX.
std::vector<std::vector<std::string>> table_rows(const Report& r) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> header(r.group_by.begin(), r.group_by.end());
  header.push_back("checkpoint");
  header.push_back("n");
  for (const auto& k : r.budget)
    header.push_back(budget_title(k));
  for (const auto& m : r.metrics)
    header.push_back(column_title(m));
  rows.push_back(header);
  for (const auto& g : r.groups) {
    std::vector<std::string> row;
    for (const auto& [k, v] : g.keys)
      row.push_back(v);
    row.push_back(g.source);
    row.push_back(std::to_string(g.members.size()));
    row.insert(row.end(), g.budget.begin(), g.budget.end());
    for (const auto& m : r.metrics)
      row.push_back(format_stat(*g.stat(m), int(g.members.size())));
    rows.push_back(row);
  }
  return rows;
}

// Display width in characters (± is two bytes in UTF-8).
size_t width_of(const std::string& s) {
  size_t w = 0;
  for (unsigned char c : s)
    w += (c & 0xC0) != 0x80;
  return w;
}

std::string pad(const std::string& s, size_t width, bool right) {
  const std::string fill(width > width_of(s) ? width - width_of(s) : 0, ' ');
  return right ? fill + s : s + fill;
}

std::string format_terminal(const Report& r, bool markdown) {
  const auto rows = table_rows(r);
  std::vector<size_t> widths(rows[0].size(), markdown ? 3 : 0);
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i)
      widths[i] = std::max(widths[i], width_of(row[i]));
  const size_t text_columns = r.group_by.size() + 1;
  std::string out;
  for (size_t k = 0; k < rows.size(); ++k) {
    std::vector<std::string> cells;
    for (size_t i = 0; i < rows[k].size(); ++i)
      cells.push_back(pad(rows[k][i], widths[i], i >= text_columns));
    out += markdown ? "| " + join(cells, " | ") + " |\n" : join(cells, "  ") + "\n";
    if (markdown && k == 0) {
      std::vector<std::string> rule;
      for (size_t i = 0; i < widths.size(); ++i)
        rule.push_back(i >= text_columns ? std::string(widths[i] - 1, '-') + ":"
                                         : std::string(widths[i], '-'));
      out += "| " + join(rule, " | ") + " |\n";
    }
  }
  return out;
}

std::string latex_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::string("_%&#$").find(c) != std::string::npos)
      out += '\\';
    out += c;
  }
  return out;
}

std::string format_latex(const Report& r) {
  auto rows = table_rows(r);
  const size_t text_columns = r.group_by.size() + 1;
  std::string spec(text_columns, 'l');
  spec += std::string(rows[0].size() - text_columns, 'r');
  std::string out = "% ardkit report: accuracy (%) mean $\\pm$ std over n runs\n";
  out += "\\begin{tabular}{" + spec + "}\n\\toprule\n";
  for (size_t k = 0; k < rows.size(); ++k) {
    for (auto& cell : rows[k]) {
      cell = latex_escape(cell);
      const auto pm = cell.find("±");
      if (pm != std::string::npos)
        cell = cell.substr(0, pm) + "$\\pm$" + cell.substr(pm + std::string("±").size());
    }
    out += join(rows[k], " & ") + " \\\\\n";
    if (k == 0)
      out += "\\midrule\n";
  }
  out += "\\bottomrule\n\\end{tabular}\n";
  return out;
}

std::string format_csv(const Report& r) {
  const auto quote = [](const std::string& s) {
    if (s.find_first_of(",\"\n") == std::string::npos)
      return s;
    std::string out = "\"";
    for (char c : s)
      out += c == '"' ? std::string("\"\"") : std::string(1, c);
    return out + "\"";
  };
  std::vector<std::string> header;
  for (const auto& k : r.group_by)
    header.push_back(quote(k));
  header.insert(header.end(), {"checkpoint", "n"});
  header.insert(header.end(), r.budget.begin(), r.budget.end());
  for (const auto& m : r.metrics) {
    header.push_back(m + "_mean");
    header.push_back(m + "_std");
  }
  std::string out = join(header, ",") + "\n";
  for (const auto& g : r.groups) {
    std::vector<std::string> row;
    for (const auto& [k, v] : g.keys)
      row.push_back(quote(v));
    row.push_back(g.source);
    row.push_back(std::to_string(g.members.size()));
    for (const auto& k : r.budget)
      row.push_back(budget_range(g, k, false));
    for (const auto& m : r.metrics) {
      const ReportStat* s = g.stat(m);
      row.push_back(s->values.empty() ? "" : fmt::format("{}", s->mean));
      row.push_back(s->values.empty() ? "" : fmt::format("{}", s->std));
    }
    out += join(row, ",") + "\n";
  }
  return out;
}

// "8/255" when eps is a whole number of 1/255 steps (RobustBench's spelling), else the number.
std::string eps_text(double eps) {
  const double steps = eps * 255;
  if (eps > 0 && std::abs(steps - std::round(steps)) < 1e-6)
    return fmt::format("{}/255", int64_t(std::round(steps)));
  return fmt::format("{}", eps);
}

// RobustBench's model_info fields, one object per entry: what its model zoo's JSON files hold.
std::string format_robustbench(const Report& r) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const auto& e : r.entries) {
    const nlohmann::ordered_json& res = e.results ? *e.results : nlohmann::ordered_json::object();
    double eps = 0;
    std::string norm;
    std::optional<double> autoattack;
    for (const auto& [name, acc] : e.attacks) {
      if (name.find("autoattack") != std::string::npos)
        autoattack = acc;
      eps = std::max(eps, e.threats[name].value("eps", 0.0));
      norm = e.threats[name].value("norm", "");
    }
    nlohmann::ordered_json m;
    m["link"] = "";
    m["name"] = e.name;
    m["authors"] = "";
    m["additional_data"] = false;
    m["number_forward_passes"] = 1;
    m["dataset"] = res.value("dataset", "");
    m["venue"] = "";
    m["architecture"] = res.value("architecture", "");
    m["eps"] = eps_text(eps);
    m["threat_model"] = norm == "l2" || norm == "L2" ? "L2" : "Linf";
    m["clean_acc"] = fmt::format("{:.2f}", e.clean);
    m["reported"] = fmt::format("{:.2f}", autoattack.value_or(e.worst.value_or(e.clean)));
    m["autoattack_acc"] =
        autoattack ? nlohmann::ordered_json(fmt::format("{:.2f}", *autoattack)) : "";
    m["footnote"] = fmt::format("ardkit {} ({}, {} test points{})", e.run_id, e.source, e.points,
                                autoattack ? "" : "; no AutoAttack in its evaluation");
    out.push_back(std::move(m));
  }
  return out.dump(2) + "\n";
}

}  // namespace

const ReportStat* ReportGroup::stat(const std::string& metric) const {
  for (const auto& [m, s] : stats)
    if (m == metric)
      return &s;
  return &kNone;
}

nlohmann::ordered_json Report::to_json() const {
  nlohmann::ordered_json j;
  j["group_by"] = group_by;
  j["metrics"] = metrics;
  j["axes"] = axes;
  auto& groups_json = j["groups"] = nlohmann::ordered_json::array();
  for (const auto& g : groups) {
    nlohmann::ordered_json gj;
    gj["keys"] = nlohmann::ordered_json::object();
    for (const auto& [k, v] : g.keys)
      gj["keys"][k] = v;
    gj["checkpoint"] = g.source;
    gj["n"] = g.members.size();
    gj["runs"] = nlohmann::ordered_json::array();
    for (const auto* e : g.members)
      gj["runs"].push_back(e->run_id);
    if (!budget.empty()) {
      gj["budget"] = nlohmann::ordered_json::object();
      for (size_t i = 0; i < budget.size(); ++i)
        gj["budget"][budget[i]] = g.budget[i];
    }
    gj["metrics"] = nlohmann::ordered_json::object();
    for (const auto& [m, s] : g.stats)
      gj["metrics"][m] = {{"mean", s.mean}, {"std", s.std}, {"values", s.values}};
    groups_json.push_back(std::move(gj));
  }
  auto& entries_json = j["runs"] = nlohmann::ordered_json::array();
  for (const auto& e : entries) {
    nlohmann::ordered_json ej;
    ej["run_id"] = e.run_id;
    ej["name"] = e.name;
    ej["folder"] = e.folder.string();
    ej["checkpoint"] = e.source;
    ej["coordinates"] = nlohmann::ordered_json::object();
    for (const auto& [k, v] : e.coordinates)
      ej["coordinates"][k] = v;
    ej["points"] = e.points;
    ej["clean"] = e.clean;
    ej["attacks"] = nlohmann::ordered_json::object();
    for (const auto& [name, acc] : e.attacks)
      ej["attacks"][name] = acc;
    ej["threats"] = e.threats;
    if (e.worst)
      ej["worst_case"] = *e.worst;
    entries_json.push_back(std::move(ej));
  }
  return j;
}

namespace {

struct ReportArgs {
  CommonOptions common;
  std::vector<std::string> paths, grid_axes, grid_set;
  std::string format = "table", html, checkpoint = "all", output, by_text, heatmap_text;
  bool rebuild = false;
};

// The command's options; false (with the help printed) when there is nothing to report.
bool parse_report_args(const std::vector<std::string>& args, ReportArgs& a, int& status) {
  po::options_description d(kReportHelp);
  add_common(d, a.common);
  d.add_options()("by", po::value(&a.by_text),
                  "group by these coordinates, comma-separated (default: every axis but "
                  "run.seed; for run folders, the run name)")(
      "format,f", po::value(&a.format)->default_value("table"),
      "table | markdown | csv | latex | json | robustbench")(
      "html", po::value(&a.html), "also write one self-contained HTML page here")(
      "heatmap", po::value(&a.heatmap_text),
      "the HTML heat map's two axes, e.g. objective.adv_weight,attack.steps (default: the first "
      "two grouping keys)")("checkpoint", po::value(&a.checkpoint)->default_value("all"),
                            "last | best | eval | all: which evaluations to show")(
      "output,o", po::value(&a.output), "run store of a grid file (as given to `ardkit grid`)")(
      "axis", po::value(&a.grid_axes)->composing(), "a grid's --axis, as given to `ardkit grid`")(
      "set", po::value(&a.grid_set)->composing(), "a grid's --set, as given to `ardkit grid`")(
      "rebuild-index", po::bool_switch(&a.rebuild), "rebuild the results index from the folders")(
      "paths", po::value(&a.paths), "grid files, run folders, folders of runs, eval results");
  po::positional_options_description positional;
  positional.add("paths", -1);
  parse(args, d, positional);
  if (a.common.help || a.paths.empty()) {
    std::cout << d << "\n";
    status = a.common.help ? 0 : 2;
    return false;
  }
  const std::vector<std::string> formats = {"table", "markdown", "csv",
                                            "latex", "json",     "robustbench"};
  if (std::find(formats.begin(), formats.end(), a.format) == formats.end())
    throw_config_error("report: --format '" + a.format + "' is not one of " + join(formats, ", ") +
                       did_you_mean(a.format, formats));
  if (a.checkpoint != "all" && a.checkpoint != "eval" &&
      std::find(checkpoint_kinds().begin(), checkpoint_kinds().end(), a.checkpoint) ==
          checkpoint_kinds().end())
    throw_config_error("report: --checkpoint must be last, best, averaged, eval or all");
  return true;
}

void add_unique(std::vector<std::string>& keys, const std::string& k) {
  if (std::find(keys.begin(), keys.end(), k) == keys.end())
    keys.push_back(k);
}

// Gathers the entries of every path given: a grid's cells labelled by their axes, run folders
// and eval results labelled by name, seed and whatever else tells them apart.
class ReportCollector {
 public:
  ReportCollector(const ReportArgs& a, Report& report) : a_(a), report_(report) {}

  void add(const std::string& p) {
    const fs::path path(p);
    std::error_code ec;
    if (path.extension() == ".toml" && fs::is_regular_file(path, ec))
      add_grid(path);
    else
      add_runs(runs_at(p));
  }

  // Run folders, after the grids: runs of one name that differ in more than the seed are told
  // apart by the keys in which they differ, and grouped by them too.
  void add_loose_runs() {
    const auto distinct = distinguishing_coordinates(loose_);
    for (const auto* run : loose_) {
      Coordinates coordinates = {{"name", run->name}};
      if (run->config.contains("run") && run->config["run"].contains("seed"))
        coordinates.emplace_back("run.seed", run->config["run"]["seed"].dump());
      if (const auto it = distinct.find(run); it != distinct.end())
        for (const auto& [k, v] : it->second) {
          coordinates.emplace_back(k, v);
          note_axis(k);
          add_unique(default_by_, k);
        }
      add_entries(report_, *run, coordinates, a_.checkpoint);
    }
  }

  const std::vector<std::string>& default_by() const {
    return default_by_;
  }
  bool is_axis(const std::string& k) const {
    return axes_seen_.count(k) > 0;
  }

 private:
  void note_axis(const std::string& k) {
    if (axes_seen_.insert(k).second)
      report_.axes.push_back(k);
  }

  void add_grid(const fs::path& path) {
    const GridPlan plan =
        plan_grid(path, a_.grid_axes, a_.grid_set, a_.output, to_paths(a_.common.plugin_path));
    std::vector<fs::path> folders;
    for (const auto& t : plan.cell_tasks)
      if (!t.folder.empty())
        folders.push_back(t.folder);
    ResultsIndex index(plan.store, a_.rebuild);
    std::map<std::string, const IndexedRun*> by_id;
    for (const auto& r : index.update(folders)) {
      keep_.push_back(std::make_unique<IndexedRun>(r));
      by_id[r.run_id] = keep_.back().get();
    }
    // Default grouping: every axis but the seed, and of a [[zip]] group only its first key
    // (the others move with it and would only repeat it).
    std::vector<std::string> leaders;
    if (plan.spec.experiments.size() > 1)
      leaders.push_back("experiment");
    for (const auto& group : plan.spec.groups)
      leaders.push_back(group.front().key);
    for (const auto& k : plan.spec.axis_keys())
      note_axis(k);
    for (const auto& k : leaders)
      if (k != "run.seed")
        add_unique(default_by_, k);
    size_t missing = 0;
    for (size_t i = 0; i < plan.cells.size(); ++i) {
      const auto it = by_id.find(plan.cell_tasks[i].run_id);
      if (it == by_id.end()) {
        ++missing;
        continue;
      }
      Coordinates coordinates;
      for (const auto& c : plan.cells[i].coordinates)
        coordinates.emplace_back(c.key, shown(c.value));
      add_entries(report_, *it->second, coordinates, a_.checkpoint);
    }
    if (missing)
      std::cerr << fmt::format(
          "report: {} of {} cells of {} have no results yet (`ardkit grid status {}`)\n", missing,
          plan.cells.size(), path.string(), path.string());
  }

  std::vector<IndexedRun> runs_at(const std::string& p) const {
    const fs::path path(p);
    std::error_code ec;
    if (path.extension() == ".json" && fs::is_regular_file(path, ec))
      return {eval_file_run(path)};
    if (fs::exists(path / "results.json", ec)) {
      if (!run_completed(path))
        throw_runtime_error("report: " + p + " is not a completed run");
      ResultsIndex index(path.parent_path().empty() ? "." : path.parent_path(), a_.rebuild);
      return index.update({path});
    }
    if (fs::is_directory(path, ec)) {
      ResultsIndex index(path, a_.rebuild);
      return index.update(completed_runs_in(path));
    }
    throw_config_error("report: " + p +
                       " is neither a grid file, a run folder, a folder of runs nor an eval "
                       "results file");
  }

  void add_runs(std::vector<IndexedRun> runs) {
    for (auto& r : runs) {
      keep_.push_back(std::make_unique<IndexedRun>(std::move(r)));
      loose_.push_back(keep_.back().get());
    }
    note_axis("name");
    note_axis("run.seed");
    if (std::find(default_by_.begin(), default_by_.end(), "name") == default_by_.end())
      default_by_.insert(default_by_.begin(), "name");
  }

  const ReportArgs& a_;
  Report& report_;
  std::vector<std::unique_ptr<IndexedRun>> keep_;  // entries point into these
  std::vector<const IndexedRun*> loose_;           // runs given as folders, not by a grid
  std::vector<std::string> default_by_;
  std::set<std::string> axes_seen_;
};

// Columns: clean, every attack in the order first met, the worst case; budget columns where
// budgets differ by method, whenever a data-free run is among the entries (a real-data run's
// steps follow from its epochs and data).
void choose_columns(Report& report) {
  report.metrics.push_back("clean");
  for (const auto& e : report.entries)
    for (const auto& [name, acc] : e.attacks)
      add_unique(report.metrics, name);
  if (report.metrics.size() > 1)
    report.metrics.push_back("worst_case");
  const auto recorded = [](const ReportEntry& e, const std::string& key) {
    return e.results && e.results->contains("budget") && (*e.results)["budget"].contains(key);
  };
  if (std::none_of(report.entries.begin(), report.entries.end(),
                   [&](const ReportEntry& e) { return recorded(e, "generator_updates"); }))
    return;
  for (const auto& column : kBudgetColumns) {
    // A named copy: clang 14 cannot capture a structured binding in a lambda (C++17).
    const std::string& key = column.first;
    if (std::any_of(report.entries.begin(), report.entries.end(),
                    [&](const ReportEntry& e) { return recorded(e, key); }))
      report.budget.push_back(key);
  }
}

// Groups in the order their first member appears (the grid's order).
void group_entries(Report& report) {
  std::map<std::string, size_t> group_of;
  for (const auto& e : report.entries) {
    std::vector<std::pair<std::string, std::string>> keys;
    for (const auto& k : report.group_by) {
      std::string v = "-";
      for (const auto& [ck, cv] : e.coordinates)
        if (ck == k)
          v = cv;
      keys.emplace_back(k, v);
    }
    std::string id = e.source;
    for (const auto& [k, v] : keys)
      id += "\x1f" + v;
    auto [it, inserted] = group_of.emplace(id, report.groups.size());
    if (inserted)
      report.groups.push_back({keys, e.source, {}, {}});
    report.groups[it->second].members.push_back(&e);
  }
}

// One metric over a group's members: mean and sample standard deviation over the seeds.
ReportStat group_stat(const ReportGroup& g, const std::string& m) {
  ReportStat s;
  for (const auto* e : g.members) {
    if (m == "clean")
      s.values.push_back(e->clean);
    else if (m == "worst_case" && e->worst)
      s.values.push_back(*e->worst);
    for (const auto& [name, acc] : e->attacks)
      if (name == m)
        s.values.push_back(acc);
  }
  if (s.values.empty())
    return s;
  for (double v : s.values)
    s.mean += v / double(s.values.size());
  if (s.values.size() > 1) {
    double ss = 0;
    for (double v : s.values)
      ss += (v - s.mean) * (v - s.mean);
    s.std = std::sqrt(ss / double(s.values.size() - 1));
  }
  return s;
}

void summarise_groups(Report& report) {
  for (auto& g : report.groups) {
    for (const auto& k : report.budget)
      g.budget.push_back(budget_range(g, k, true));
    for (const auto& m : report.metrics)
      g.stats.emplace_back(m, group_stat(g, m));
  }
}

void print_report(const Report& report, const std::string& format) {
  if (format == "table")
    std::cout << format_terminal(report, false);
  else if (format == "markdown")
    std::cout << format_terminal(report, true);
  else if (format == "csv")
    std::cout << format_csv(report);
  else if (format == "latex")
    std::cout << format_latex(report);
  else if (format == "json")
    std::cout << report.to_json().dump(2) << "\n";
  else
    std::cout << format_robustbench(report);
}

}  // namespace

// Stages: collect the entries of every path, choose the grouping and the columns, group and
// summarise, print, and write the HTML page when asked.
int report_command(const std::vector<std::string>& args) {
  ReportArgs a;
  int status = 0;
  if (!parse_report_args(args, a, status))
    return status;
  Report report;
  ReportCollector collector(a, report);
  for (const auto& p : a.paths)
    collector.add(p);
  collector.add_loose_runs();
  if (report.entries.empty())
    throw_runtime_error("report: no completed runs or evaluations under the given paths");
  report.group_by = a.by_text.empty() ? collector.default_by() : split(a.by_text, ',');
  for (const auto& k : report.group_by)
    if (!collector.is_axis(k))
      throw_config_error(
          fmt::format("report: --by {}: not a coordinate of these runs{}; they "
                      "have: {}",
                      k, did_you_mean(k, report.axes), join(report.axes, ", ")));
  choose_columns(report);
  group_entries(report);
  summarise_groups(report);
  print_report(report, a.format);
  if (a.html.empty())
    return 0;
  const std::vector<std::string> heatmap =
      a.heatmap_text.empty() ? std::vector<std::string>{} : split(a.heatmap_text, ',');
  for (const auto& k : heatmap)
    if (!collector.is_axis(k))
      throw_config_error(fmt::format("report: --heatmap {}: not a coordinate of these runs{}", k,
                                     did_you_mean(k, report.axes)));
  write_file_atomic(a.html, report_html(report, heatmap));
  std::cerr << "report: wrote " << a.html << "\n";
  return 0;
}

}  // namespace ardkit::cli
