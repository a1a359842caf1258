// `ardkit grid`: runs every cell of a grid file on this machine (--jobs workers, each an `ardkit
// run` process) or submits it to Slurm as one job array; `ardkit grid status` says where each
// cell stands. Cells are ordinary runs, so a finished cell is never run twice and an interrupted
// one resumes from its checkpoint.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <deque>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include <fmt/format.h>

#include <ardkit/error.hpp>
#include <ardkit/host/run_dir.hpp>
#include <ardkit/interrupt.hpp>
#include <ardkit/progress.hpp>
#include <ardkit/text.hpp>

#include "cli_common.hpp"
#include "commands.hpp"
#include "grid_plan.hpp"
#include "grid_slurm.hpp"

extern char** environ;

namespace ardkit::cli {

namespace {

const char* kGridHelp = R"(usage: ardkit grid [status] GRID.toml [options]

Runs every cell of a grid: base experiments x axes (a product; [[zip]] groups move together;
[[exclude]] drops cells). Each cell is an ordinary run folder in the run store, so finished
cells are never run again and interrupted ones resume; a teacher several cells need is trained
once, first. GRID.toml may also be a plain experiment file, gridded along --axis.

  ardkit grid GRID.toml                run the unfinished cells here (--jobs at a time)
  ardkit grid GRID.toml --dry-run      list the cells and which are done, run nothing
  ardkit grid status GRID.toml         done / running / failed / pending, with each failure
  ardkit grid GRID.toml --backend slurm   submit the unfinished cells as one sbatch job array

options)";

struct GridArgs {
  CommonOptions common;
  std::vector<std::string> words, axes, set;
  std::string output, backend = "local";
  int64_t jobs = 1, threads = 0;
  bool dry_run = false, no_submit = false;
};

// "3 done, 1 running, 1 failed, 4 pending"
std::string counts_line(const std::map<std::string, int>& counts) {
  return fmt::format("{} done, {} running, {} failed, {} pending",
                     counts.count("done") ? counts.at("done") : 0,
                     counts.count("running") ? counts.at("running") : 0,
                     counts.count("failed") ? counts.at("failed") : 0,
                     counts.count("pending") ? counts.at("pending") : 0);
}

// The listing of --dry-run and `grid status`.
int print_status(const GridPlan& plan, bool dry_run) {
  std::map<std::string, int> counts;
  std::cout << fmt::format("grid {} ({}): {} cells, run store {}\n", plan.spec.name,
                           plan.spec.file.string(), plan.cells.size(), plan.store.string());
  for (const auto& t : plan.teachers) {
    const TaskState s = task_state(plan, t);
    std::cout << fmt::format("  {:<8} {}{}\n", s.state, t.label,
                             s.detail.empty() ? "" : ": " + s.detail);
  }
  for (size_t i = 0; i < plan.cells.size(); ++i) {
    const GridTask& task = plan.cell_tasks[i];
    const TaskState s = task_state(plan, task);
    ++counts[s.state];
    std::string where = task.folder.empty() ? "" : task.folder.filename().string();
    if (task.same_as)
      where += fmt::format(" (same run as cell {})", *task.same_as);
    std::cout << fmt::format("  {:<8} {:>4}  {}  {}{}\n", s.state, i, plan.cells[i].label(), where,
                             s.detail.empty() ? "" : "\n             " + s.detail);
  }
  std::cout << counts_line(counts) << (dry_run ? " (dry run: nothing started)" : "") << "\n";
  return counts["failed"] ? 1 : 0;
}

// One child `ardkit run`, in its own process group so that a Ctrl-C at the terminal reaches
// only the grid, which passes it on exactly once (a second signal would stop a run at once,
// without its checkpoint).
pid_t spawn_run(const GridTask& task, const fs::path& log, int64_t threads,
                const std::vector<std::string>& plugin_path) {
  std::vector<std::string> args = {self_executable().string(), "run", task.experiment.string(),
                                   "--threads", std::to_string(threads)};
  for (const auto& o : task.overrides) {
    args.push_back("--set");
    args.push_back(o);
  }
  for (const auto& p : plugin_path) {
    args.push_back("--plugin-path");
    args.push_back(p);
  }
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attributes, 0);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int s : {SIGINT, SIGTERM, SIGUSR1})
    sigaddset(&defaults, s);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, argv[0], &actions, &attributes, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (rc != 0)
    throw_runtime_error(fmt::format("cannot start {}: {}", argv[0], std::strerror(rc)));
  {
    std::ofstream(log, std::ios::app);  // the log exists even if the child fails at once
  }
  return pid;
}

// A one-line summary of a finished run's results: clean and worst-case accuracy of "last".
std::string result_summary(const fs::path& folder) {
  std::ifstream in(folder / "results.json");
  try {
    const auto j = nlohmann::json::parse(in);
    const auto& r = j.contains("last") ? j["last"] : j.at("best");
    return fmt::format("clean {:.2f}, worst case {:.2f}", r.value("clean_acc", 0.0),
                       r.value("worst_case_acc", r.value("clean_acc", 0.0)));
  } catch (const std::exception&) {
    return "no results";
  }
}

// Runs the tasks `jobs` at a time; returns how many failed. Stops starting new ones after an
// interrupt and passes it to the running ones, which checkpoint.
int run_tasks(const GridPlan& plan, const std::vector<const GridTask*>& tasks, int64_t jobs,
              int64_t threads, const std::vector<std::string>& plugin_path, int& finished,
              int total) {
  std::deque<const GridTask*> queue(tasks.begin(), tasks.end());
  struct Running {
    const GridTask* task;
    std::chrono::steady_clock::time_point start;
  };
  std::map<pid_t, Running> running;
  int failed = 0;
  bool forwarded = false;
  while (!running.empty() || (!queue.empty() && !interrupt_requested())) {
    while (!interrupt_requested() && !queue.empty() && int64_t(running.size()) < jobs) {
      const GridTask* task = queue.front();
      queue.pop_front();
      const fs::path log = plan.folder / "logs" / task->log_name;
      pid_t pid = 0;
      try {
        pid = spawn_run(*task, log, threads, plugin_path);
      } catch (const Error& e) {
        // A cell that cannot start (ardkit being rebuilt, a full process table) fails alone;
        // the grid goes on with the others and the same command retries it.
        ++failed;
        ++finished;
        log_line(fmt::format("grid: [{}/{}] {} FAILED to start: {}", finished, total, task->label,
                             e.what()));
        continue;
      }
      running[pid] = {task, std::chrono::steady_clock::now()};
      log_line(fmt::format("grid: started {} (log {})", task->label, log.string()));
    }
    if (interrupt_requested() && !forwarded) {
      for (const auto& [pid, r] : running)
        ::kill(pid, SIGTERM);
      forwarded = true;
      if (!running.empty())
        log_line(
            fmt::format("grid: stopping; {} running cell(s) checkpoint first", running.size()));
    }
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    const auto it = running.find(pid);
    if (it == running.end())
      continue;
    const GridTask& task = *it->second.task;
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - it->second.start).count();
    running.erase(it);
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    ++finished;
    if (code == 0) {
      log_line(fmt::format("grid: [{}/{}] {} done in {:.0f} s: {}", finished, total, task.label,
                           seconds, result_summary(task.folder)));
    } else if (code == 130) {
      --finished;
      log_line(fmt::format("grid: {} interrupted after {:.0f} s; it resumes from its checkpoint",
                           task.label, seconds));
    } else {
      ++failed;
      const std::string error = last_error_line(plan.folder / "logs" / task.log_name);
      log_line(fmt::format(
          "grid: [{}/{}] {} FAILED (exit {}): {}", finished, total, task.label, code,
          error.empty() ? "see " + (plan.folder / "logs" / task.log_name).string() : error));
    }
  }
  return failed;
}

int run_local(const GridPlan& plan, int64_t jobs, int64_t threads,
              const std::vector<std::string>& plugin_path) {
  fs::create_directories(plan.folder / "logs");
  std::vector<const GridTask*> teachers, cells;
  for (const auto& t : plan.teachers)
    if (task_state(plan, t).state != "done")
      teachers.push_back(&t);
  int already = 0, invalid = 0;
  for (const auto& c : plan.cell_tasks) {
    if (!c.error.empty()) {
      ++invalid;
      log_line(fmt::format("grid: {} does not validate: {}", c.label, c.error));
    } else if (c.same_as) {
      continue;
    } else if (run_completed(c.folder)) {
      ++already;
    } else {
      cells.push_back(&c);
    }
  }
  const int total = int(cells.size() + teachers.size());
  log_line(
      fmt::format("grid {}: {} cells ({} done, {} to run, {} invalid), {} teacher run(s) "
                  "first; {} job(s) x {} thread(s); logs in {}",
                  plan.spec.name, plan.cells.size(), already, cells.size(), invalid,
                  teachers.size(), jobs, threads, (plan.folder / "logs").string()));
  install_interrupt_handlers();
  int finished = 0;
  int failed = run_tasks(plan, teachers, jobs, threads, plugin_path, finished, total);
  // A cell whose teacher failed would only repeat its teacher's error.
  std::vector<const GridTask*> ready;
  for (const auto* c : cells) {
    const auto missing = std::find_if(c->teachers.begin(), c->teachers.end(), [&](size_t t) {
      return !run_completed(plan.teachers[t].folder);
    });
    if (missing == c->teachers.end())
      ready.push_back(c);
    else if (!interrupt_requested())
      log_line(fmt::format("grid: {} skipped: its {} did not complete", c->label,
                           plan.teachers[*missing].label));
  }
  if (!interrupt_requested())
    failed += run_tasks(plan, ready, jobs, threads, plugin_path, finished, total);
  std::map<std::string, int> counts;
  for (const auto& c : plan.cell_tasks)
    ++counts[task_state(plan, c).state];
  log_line(fmt::format("grid {}: {}", plan.spec.name, counts_line(counts)));
  if (interrupt_requested()) {
    log_line("grid: interrupted; run the same command again to resume every unfinished cell");
    return 130;
  }
  return counts["failed"] || failed ? 1 : 0;
}

}  // namespace

int grid_command(const std::vector<std::string>& args) {
  GridArgs a;
  po::options_description d(kGridHelp);
  add_common(d, a.common);
  d.add_options()("axis", po::value(&a.axes)->composing(),
                  "an axis: --axis attack.eps=0.05,0.1 (repeatable; replaces the file's axis)")(
      "set", po::value(&a.set)->composing(), "a fixed override of every cell (repeatable)")(
      "output,o", po::value(&a.output), "run store (overrides [grid] output)")(
      "dry-run,n", po::bool_switch(&a.dry_run), "list the cells and their state; run nothing")(
      "jobs,j", number(&a.jobs, "jobs", int64_t{1})->default_value(1),
      "cells run at once (local backend)")(
      "threads", number(&a.threads, "threads", int64_t{0})->default_value(0),
      "LibTorch threads per cell (0: the cores divided among the jobs)")(
      "backend", po::value(&a.backend)->default_value("local"), "local | slurm")(
      "no-submit", po::bool_switch(&a.no_submit),
      "slurm: write the job script and print the sbatch command, submit nothing")(
      "words", po::value(&a.words), "[status] GRID.toml");
  po::positional_options_description positional;
  positional.add("words", -1);
  parse(args, d, positional);
  if (a.common.help) {
    std::cout << d << "\n";
    return 0;
  }
  const bool status = !a.words.empty() && a.words[0] == "status";
  if (status)
    a.words.erase(a.words.begin());
  if (a.words.size() != 1)
    throw_config_error("grid: expected one GRID.toml; usage: ardkit grid [status] GRID.toml");
  if (a.jobs < 1)
    throw_config_error("grid: --jobs must be at least 1");
  if (a.backend != "local" && a.backend != "slurm")
    throw_config_error("grid: --backend '" + a.backend + "' is not one of local, slurm" +
                       did_you_mean(a.backend, {"local", "slurm"}));
  const int64_t cores = std::max<int64_t>(1, std::thread::hardware_concurrency());
  const int64_t threads = a.threads > 0 ? a.threads : std::max<int64_t>(1, cores / a.jobs);
  const GridPlan plan =
      plan_grid(a.words[0], a.axes, a.set, a.output, to_paths(a.common.plugin_path));
  if (status || a.dry_run)
    return print_status(plan, a.dry_run);
  write_grid_manifest(plan);
  if (a.backend == "slurm")
    return submit_slurm(plan, a.common.plugin_path, a.no_submit);
  return run_local(plan, a.jobs, threads, a.common.plugin_path);
}

}  // namespace ardkit::cli
