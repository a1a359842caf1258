#include "results_index.hpp"

#include "cli_common.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include <ardkit/error.hpp>
#include <ardkit/host/run_dir.hpp>

namespace ardkit::cli {

namespace {

// Bumped when the tables change: an index of another version is rebuilt from the folders.
constexpr int kIndexVersion = 2;

const char* kSchema = R"(
CREATE TABLE IF NOT EXISTS runs(
  folder TEXT PRIMARY KEY, run_id TEXT, name TEXT, stamp TEXT,
  config TEXT, results TEXT, evals TEXT, epochs TEXT);
CREATE TABLE IF NOT EXISTS accuracy(
  folder TEXT, source TEXT, metric TEXT, value REAL, norm TEXT, eps REAL);
CREATE INDEX IF NOT EXISTS accuracy_folder ON accuracy(folder);
CREATE TABLE IF NOT EXISTS epochs(folder TEXT, epoch INTEGER, metric TEXT, value REAL);
CREATE INDEX IF NOT EXISTS epochs_folder ON epochs(folder);
CREATE TABLE IF NOT EXISTS coordinates(
  grid TEXT, cell INTEGER, run_id TEXT, key TEXT, value TEXT);
CREATE TABLE IF NOT EXISTS manifests(file TEXT PRIMARY KEY, stamp TEXT);
)";

// Size and modification time of each file: what says an entry is out of date.
std::string stamp_of(const std::vector<fs::path>& files) {
  std::string out;
  std::error_code ec;
  for (const auto& f : files) {
    const auto t = fs::last_write_time(f, ec);
    const auto size = fs::file_size(f, ec);
    out += fmt::format("{}:{}:{};", f.filename().string(),
                       ec ? 0 : int64_t(t.time_since_epoch().count()), ec ? 0 : int64_t(size));
  }
  return out;
}

std::vector<fs::path> eval_files(const fs::path& folder) {
  std::vector<fs::path> out;
  std::error_code ec;
  if (fs::is_directory(folder / "evals", ec))
    for (const auto& e : fs::directory_iterator(folder / "evals"))
      if (e.path().extension() == ".json" &&
          e.path().string().find(".state.json") == std::string::npos)
        out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// "FILE: /last/clean_acc must be a number, found "high"; ..." for the first field of the wrong
// type.
void check_evaluation_json(const nlohmann::ordered_json& j, const fs::path& file,
                           const std::string& at) {
  const auto fail = [&](const std::string& pointer, const char* expected,
                        const nlohmann::ordered_json& found) {
    throw_runtime_error(fmt::format(
        "{}: {} must be {}, found {}; the file was edited or not written by this ardkit: delete "
        "it and re-run what writes it",
        file.string(), pointer, expected, found.dump().substr(0, 40)));
  };
  if (!j.is_object())
    fail(at.empty() ? "the file" : at, "an object", j);
  for (const char* key : {"clean_acc", "worst_case_acc"})
    if (j.contains(key) && !j[key].is_number())
      fail(at + "/" + key, "a number", j[key]);
  if (j.contains("points") && !j["points"].is_number_integer())
    fail(at + "/points", "an integer", j["points"]);
  for (const char* key : {"name", "label", "split"})
    if (j.contains(key) && !j[key].is_string())
      fail(at + "/" + key, "a string", j[key]);
  if (!j.contains("attacks"))
    return;
  if (!j["attacks"].is_object())
    fail(at + "/attacks", "an object of attacks", j["attacks"]);
  for (const auto& [name, attack] : j["attacks"].items()) {
    const std::string where = at + "/attacks/" + name;
    if (!attack.is_object())
      fail(where, "an object", attack);
    for (const char* key : {"robust_acc", "seconds", "eps"})
      if (attack.contains(key) && !attack[key].is_number())
        fail(where + "/" + key, "a number", attack[key]);
    if (attack.contains("norm") && !attack["norm"].is_string())
      fail(where + "/norm", "a string", attack["norm"]);
  }
}

}  // namespace

void check_results_json(const nlohmann::ordered_json& j, const fs::path& file, bool run) {
  if (!run) {
    check_evaluation_json(j, file, "");
    return;
  }
  if (!j.is_object())
    check_evaluation_json(j, file, "");  // reports "must be an object"
  // Every field a report reads, with the type it reads it as (nlohmann's value() throws a bare
  // type_error on any other).
  const auto fail = [&](const std::string& pointer, const char* expected) {
    throw_runtime_error(fmt::format(
        "{}: {} must be {}; the file was edited or not written by this ardkit: delete it and "
        "re-run what writes it",
        file.string(), pointer, expected));
  };
  for (const char* key : {"name", "run_id", "dataset", "architecture", "objective", "threat_model"})
    if (j.contains(key) && !j[key].is_string())
      fail(std::string("/") + key, "a string");
  // Each attack's radius and norm, by attack name.
  for (const auto& [key, number] : {std::pair{"eps", true}, std::pair{"norm", false}}) {
    if (!j.contains(key))
      continue;
    if (!j[key].is_object())
      fail(std::string("/") + key, "an object of attacks");
    for (const auto& [name, v] : j[key].items())
      if (number ? !v.is_number() : !v.is_string())
        fail(std::string("/") + key + "/" + name, number ? "a number" : "a string");
  }
  for (const std::string& which : checkpoint_kinds())
    if (j.contains(which))
      check_evaluation_json(j[which], file, "/" + which);
}

namespace {

nlohmann::ordered_json parse_json(const fs::path& file) {
  try {
    return nlohmann::ordered_json::parse(read_text(file));
  } catch (const std::exception& e) {
    throw_runtime_error(
        fmt::format("{}: unreadable JSON ({}); re-run what wrote it", file.string(), e.what()));
  }
}

// The per-epoch rows of a run's metrics.jsonl: epoch, lr, train_* and val_* numbers. A resumed
// run may repeat an epoch (the last row wins); a line cut short by a crash is skipped.
nlohmann::ordered_json epoch_rows(const fs::path& file) {
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  std::ifstream in(file);
  std::string line;
  std::map<int64_t, size_t> by_epoch;
  while (std::getline(in, line)) {
    nlohmann::ordered_json j;
    try {
      j = nlohmann::ordered_json::parse(line);
    } catch (const std::exception&) {
      continue;
    }
    // A row another writer left (or a line a crash garbled into other JSON) is skipped.
    if (!j.is_object() || !j.contains("type") || j["type"] != "epoch" ||
        (j.contains("epoch") && !j["epoch"].is_number_integer()))
      continue;
    nlohmann::ordered_json row = nlohmann::ordered_json::object();
    for (const auto& [k, v] : j.items())
      if (v.is_number() &&
          (k == "epoch" || k == "lr" || k.rfind("train_", 0) == 0 || k.rfind("val_", 0) == 0))
        row[k] = v;
    const int64_t epoch = j.value("epoch", int64_t{0});
    if (auto it = by_epoch.find(epoch); it != by_epoch.end()) {
      rows[it->second] = row;
    } else {
      by_epoch[epoch] = rows.size();
      rows.push_back(row);
    }
  }
  return rows;
}

nlohmann::ordered_json config_json(const fs::path& file) {
  try {
    std::ostringstream text;
    text << toml::json_formatter(toml::parse_file(file.string()));
    return nlohmann::ordered_json::parse(text.str());
  } catch (const std::exception& e) {
    throw_runtime_error(
        fmt::format("{}: unreadable run configuration ({})", file.string(), e.what()));
  }
}

}  // namespace

struct ResultsIndex::Impl {
  fs::path file;
  SQLite::Database db;
  explicit Impl(const fs::path& f)
      : file(f), db(f.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE, 30000) {}
};

std::vector<fs::path> completed_runs_in(const fs::path& store) {
  std::vector<fs::path> out;
  std::error_code ec;
  if (!fs::is_directory(store, ec))
    return out;
  for (const auto& e : fs::directory_iterator(store))
    if (e.is_directory() && run_completed(e.path()))
      out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

ResultsIndex::ResultsIndex(const fs::path& store, bool rebuild) {
  const fs::path file = store / "index.sqlite";
  try {
    impl_ = new Impl(file);
    auto& db = impl_->db;
    const int version = db.execAndGet("PRAGMA user_version").getInt();
    if (rebuild || version != kIndexVersion) {
      db.exec(
          "DROP TABLE IF EXISTS runs; DROP TABLE IF EXISTS accuracy; "
          "DROP TABLE IF EXISTS coordinates; DROP TABLE IF EXISTS manifests;");
      db.exec(fmt::format("PRAGMA user_version = {}", kIndexVersion));
    }
    db.exec(kSchema);
  } catch (const SQLite::Exception& e) {
    delete impl_;
    throw_runtime_error(
        fmt::format("{}: cannot open the results index ({}); delete it and it is "
                    "rebuilt from the run folders",
                    file.string(), e.what()));
  }
}

ResultsIndex::~ResultsIndex() {
  delete impl_;
}

const fs::path& ResultsIndex::file() const {
  return impl_->file;
}

namespace {

// The run as indexed when its files' stamp has not changed since.
bool read_indexed(SQLite::Database& db, const std::string& key, const std::string& stamp,
                  IndexedRun& run) {
  SQLite::Statement find(db,
                         "SELECT stamp, config, results, evals, epochs FROM runs WHERE folder = ?");
  find.bind(1, key);
  if (!find.executeStep() || find.getColumn(0).getString() != stamp)
    return false;
  run.config = nlohmann::ordered_json::parse(find.getColumn(1).getString());
  run.results = nlohmann::ordered_json::parse(find.getColumn(2).getString());
  const auto evals_json = nlohmann::ordered_json::parse(find.getColumn(3).getString());
  for (const auto& [k, v] : evals_json.items())
    run.evals.emplace_back(k, v);
  run.epochs = nlohmann::ordered_json::parse(find.getColumn(4).getString());
  return true;
}

// The run from its folder's files, each checked.
void read_folder(const fs::path& folder, const std::vector<fs::path>& evals, IndexedRun& run) {
  run.results = parse_json(folder / "results.json");
  check_results_json(run.results, folder / "results.json", true);
  run.config = config_json(folder / "config.toml");
  for (const auto& e : evals) {
    run.evals.emplace_back(e.stem().string(), parse_json(e));
    check_results_json(run.evals.back().second, e, false);
  }
  run.epochs = epoch_rows(folder / "metrics.jsonl");
}

void store_run(SQLite::Database& db, const std::string& key, const std::string& stamp,
               const IndexedRun& run) {
  nlohmann::ordered_json evals_json = nlohmann::ordered_json::object();
  for (const auto& [stem, e] : run.evals)
    evals_json[stem] = e;
  SQLite::Statement put(db, "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
  put.bind(1, key);
  put.bind(2, run.results.value("run_id", run.folder.filename().string()));
  put.bind(3, run.results.value("name", ""));
  put.bind(4, stamp);
  put.bind(5, run.config.dump());
  put.bind(6, run.results.dump());
  put.bind(7, evals_json.dump());
  put.bind(8, run.epochs.dump());
  put.exec();
}

void store_epochs(SQLite::Database& db, const std::string& key, const IndexedRun& run) {
  SQLite::Statement clear(db, "DELETE FROM epochs WHERE folder = ?");
  clear.bind(1, key);
  clear.exec();
  for (const auto& row : run.epochs)
    for (const auto& [metric, value] : row.items())
      if (metric != "epoch") {
        SQLite::Statement e(db, "INSERT INTO epochs VALUES (?, ?, ?, ?)");
        e.bind(1, key);
        e.bind(2, row.value("epoch", int64_t{0}));
        e.bind(3, metric);
        e.bind(4, value.get<double>());
        e.exec();
      }
}

// The figures as rows, for SQL: one per (source, metric).
void store_accuracy(SQLite::Database& db, const std::string& key, const IndexedRun& run) {
  SQLite::Statement clear(db, "DELETE FROM accuracy WHERE folder = ?");
  clear.bind(1, key);
  clear.exec();
  const auto add = [&](const std::string& source, const nlohmann::ordered_json& r) {
    const auto row = [&](const std::string& metric, double value, const std::string& norm,
                         double eps) {
      SQLite::Statement a(db, "INSERT INTO accuracy VALUES (?, ?, ?, ?, ?, ?)");
      a.bind(1, key);
      a.bind(2, source);
      a.bind(3, metric);
      a.bind(4, value);
      a.bind(5, norm);
      a.bind(6, eps);
      a.exec();
    };
    row("clean", r.value("clean_acc", 0.0), "", 0.0);
    if (r.contains("attacks"))
      for (const auto& [name, v] : r["attacks"].items())
        row(name, v.value("robust_acc", 0.0), v.value("norm", ""), v.value("eps", 0.0));
    if (r.contains("worst_case_acc"))
      row("worst_case", r.value("worst_case_acc", 0.0), "", 0.0);
  };
  for (const std::string& which : checkpoint_kinds())
    if (run.results.contains(which))
      add(which, run.results[which]);
  for (const auto& [stem, e] : run.evals)
    add("eval:" + stem, e);
}

// Grid manifests: which run is which cell.
void index_manifests(SQLite::Database& db, const fs::path& grids) {
  std::error_code ec;
  if (!fs::is_directory(grids, ec))
    return;
  for (const auto& g : fs::directory_iterator(grids)) {
    const fs::path manifest = g.path() / "cells.json";
    if (!fs::exists(manifest, ec))
      continue;
    const std::string stamp = stamp_of({manifest});
    SQLite::Statement find(db, "SELECT stamp FROM manifests WHERE file = ?");
    find.bind(1, manifest.string());
    if (find.executeStep() && find.getColumn(0).getString() == stamp)
      continue;
    const auto j = parse_json(manifest);
    const std::string grid = j.value("grid", "");
    SQLite::Statement clear(db, "DELETE FROM coordinates WHERE grid = ?");
    clear.bind(1, grid);
    clear.exec();
    for (const auto& cell : j["cells"])
      for (const auto& [k, v] : cell["coordinates"].items()) {
        SQLite::Statement put(db, "INSERT INTO coordinates VALUES (?, ?, ?, ?, ?)");
        put.bind(1, grid);
        put.bind(2, cell.value("index", 0));
        put.bind(3, cell.value("run_id", ""));
        put.bind(4, k);
        put.bind(5, v.get<std::string>());
        put.exec();
      }
    SQLite::Statement put(db, "INSERT OR REPLACE INTO manifests VALUES (?, ?)");
    put.bind(1, manifest.string());
    put.bind(2, stamp);
    put.exec();
  }
}

}  // namespace

// Each completed folder is read from the index when its files are unchanged, else from the files
// (and indexed); then the grid manifests. One transaction: a failure leaves the index as it was.
std::vector<IndexedRun> ResultsIndex::update(const std::vector<fs::path>& folders) {
  auto& db = impl_->db;
  std::vector<IndexedRun> out;
  try {
    SQLite::Transaction transaction(db);
    for (const auto& folder : folders) {
      if (!run_completed(folder))
        continue;
      std::vector<fs::path> files = {folder / "results.json", folder / "config.toml",
                                     folder / "metrics.jsonl"};
      const auto evals = eval_files(folder);
      files.insert(files.end(), evals.begin(), evals.end());
      const std::string stamp = stamp_of(files);
      const std::string key = fs::absolute(folder).lexically_normal().string();
      IndexedRun run;
      run.folder = folder;
      if (!read_indexed(db, key, stamp, run)) {
        read_folder(folder, evals, run);
        store_run(db, key, stamp, run);
        store_epochs(db, key, run);
        store_accuracy(db, key, run);
      }
      run.run_id = run.results.value("run_id", folder.filename().string());
      run.name = run.results.value("name", run.run_id);
      out.push_back(std::move(run));
    }
    index_manifests(db, impl_->file.parent_path() / "grids");
    transaction.commit();
  } catch (const SQLite::Exception& e) {
    throw_runtime_error(
        fmt::format("{}: results index error ({}); delete the file and it is "
                    "rebuilt from the run folders",
                    impl_->file.string(), e.what()));
  }
  return out;
}

}  // namespace ardkit::cli
