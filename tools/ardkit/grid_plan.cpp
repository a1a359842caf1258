#include "grid_plan.hpp"

#include <fmt/format.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include <ardkit/error.hpp>
#include <ardkit/host/experiment_setup.hpp>
#include <ardkit/host/run_dir.hpp>

namespace ardkit::cli {

namespace {

std::string toml_string(const std::string& s) {
  return nlohmann::json(s).dump();  // a JSON string is a valid TOML basic string
}

}  // namespace

bool is_grid_file(const fs::path& file) {
  try {
    return toml::parse_file(file.string()).contains("grid");
  } catch (const std::exception&) {
    return false;  // not TOML: whoever reads it as an experiment says what is wrong
  }
}

fs::path self_executable() {
  // Read once: a rebuild while a grid runs replaces the file, and the link then names the old
  // one "... (deleted)"; the path itself still leads to the (new) ardkit.
  static const fs::path self = [] {
    std::error_code ec;
    std::string path = fs::read_symlink("/proc/self/exe", ec).string();
    if (ec)
      throw_runtime_error("cannot find the ardkit executable (/proc/self/exe): " + ec.message());
    const std::string deleted = " (deleted)";
    if (path.size() > deleted.size() &&
        path.compare(path.size() - deleted.size(), deleted.size(), deleted) == 0)
      path.resize(path.size() - deleted.size());
    return fs::path(path);
  }();
  return self;
}

GridPlan plan_grid(const fs::path& file, const std::vector<std::string>& axes,
                   const std::vector<std::string>& set, const std::string& output,
                   const std::vector<fs::path>& plugin_path) {
  GridPlan plan;
  plan.spec = read_grid(file, axes, set);
  plan.cells = plan.spec.cells();
  // The run store: --output, else [grid] output, else the first experiment's [run] output
  // (every cell then writes there, so the grid's folders and the report find them all).
  std::string store = !output.empty() ? output : plan.spec.output.value_or("");
  if (store.empty()) {
    const auto root = read_experiment(plan.spec.experiments.front(), plan.spec.set);
    const auto* run = root.get_as<toml::table>("run");
    const auto* node = run ? run->get_as<std::string>("output") : nullptr;
    store = node ? node->get() : "runs";
  }
  plan.store = store;
  plan.folder = plan.store / "grids" / plan.spec.name;

  std::map<std::string, size_t> by_run_id, teacher_by_folder;
  for (const auto& cell : plan.cells) {
    GridTask task;
    task.label = fmt::format("cell {} ({})", cell.index, cell.label());
    task.log_name = fmt::format("cell-{:04d}.log", cell.index);
    task.experiment = cell.experiment;
    task.overrides = cell.overrides;
    task.overrides.push_back("run.output=" + toml_string(store));
    // Its axis values name the cell's curves in one TensorBoard of the store (not in the run id).
    task.overrides.push_back("run.label=" + toml_string(cell.label()));
    try {
      const LoadedExperiment loaded = load_experiment(cell.experiment, task.overrides, plugin_path);
      task.run_id = loaded.config.run_id();
      task.folder = plan.store / task.run_id;
      for (const TeacherRun* t : loaded.teacher_runs()) {
        const std::string key = t->folder.lexically_normal().string();
        auto [it, inserted] = teacher_by_folder.emplace(key, plan.teachers.size());
        if (inserted) {
          GridTask teacher;
          teacher.run_id = t->folder.filename().string();
          teacher.label = "teacher " + teacher.run_id;
          teacher.log_name = "teacher-" + teacher.run_id + ".log";
          teacher.experiment = t->file;
          teacher.overrides = {"run.output=" + toml_string(t->output)};
          teacher.folder = t->folder;
          plan.teachers.push_back(std::move(teacher));
        }
        task.teachers.push_back(it->second);
      }
      auto [it, inserted] = by_run_id.emplace(task.run_id, cell.index);
      if (!inserted)
        task.same_as = it->second;
    } catch (const Error& e) {
      task.error = e.what();
    }
    plan.cell_tasks.push_back(std::move(task));
  }
  return plan;
}

std::string last_error_line(const fs::path& log) {
  std::ifstream in(log);
  std::string line, last;
  while (std::getline(in, line))
    if (line.rfind("ardkit: error: ", 0) == 0)
      last = line.substr(15);
  return last;
}

TaskState task_state(const GridPlan& plan, const GridTask& task) {
  if (!task.error.empty())
    return {"failed", task.error};
  if (run_completed(task.folder))
    return {"done", ""};
  const std::string state = run_state(task.folder);
  if (state == "running" && run_locked(task.folder))
    return {"running", ""};
  if (state == "failed") {
    std::ifstream in(task.folder / "status.json");
    std::string error;
    try {
      error = nlohmann::json::parse(in).value("error", "");
    } catch (const std::exception&) {
    }
    return {"failed",
            error.empty() ? last_error_line(plan.folder / "logs" / task.log_name) : error};
  }
  // A run that ended before its folder existed (a bad dataset path, a missing teacher) left
  // only its log.
  if (state.empty()) {
    const std::string error = last_error_line(plan.folder / "logs" / task.log_name);
    if (!error.empty())
      return {"failed", error};
  }
  if (state == "interrupted" || state == "running")
    return {"pending", "resumes from its checkpoint"};
  return {"pending", ""};
}

void write_grid_manifest(const GridPlan& plan) {
  nlohmann::ordered_json j;
  j["grid"] = plan.spec.name;
  j["file"] = fs::absolute(plan.spec.file).lexically_normal().string();
  j["axes"] = plan.spec.axis_keys();
  auto& cells = j["cells"] = nlohmann::ordered_json::array();
  for (size_t i = 0; i < plan.cells.size(); ++i) {
    const auto& cell = plan.cells[i];
    const auto& task = plan.cell_tasks[i];
    nlohmann::ordered_json c;
    c["index"] = cell.index;
    c["label"] = cell.label();
    c["experiment"] = cell.experiment.string();
    auto& coordinates = c["coordinates"] = nlohmann::ordered_json::object();
    for (const auto& coordinate : cell.coordinates)
      coordinates[coordinate.key] = coordinate.value;
    c["run_id"] = task.run_id;
    c["overrides"] = task.overrides;
    if (!task.error.empty())
      c["error"] = task.error;
    cells.push_back(std::move(c));
  }
  std::error_code ec;
  fs::create_directories(plan.folder, ec);
  if (ec)
    throw_runtime_error("cannot create " + plan.folder.string() + ": " + ec.message());
  write_file_atomic(plan.folder / "cells.json", j.dump(2) + "\n");
}

}  // namespace ardkit::cli
