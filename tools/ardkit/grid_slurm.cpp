#include "grid_slurm.hpp"

#include <fmt/format.h>

#include <array>
#include <cstdio>
#include <iostream>

#include <ardkit/error.hpp>
#include <ardkit/host/run_dir.hpp>
#include <ardkit/progress.hpp>
#include <ardkit/text.hpp>

namespace ardkit::cli {

namespace {

// POSIX shell quoting: everything between single quotes is literal.
std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s)
    out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// One line per array task: the log file, then the command.
std::string task_lines(const GridPlan& plan, const std::vector<const GridTask*>& tasks,
                       const std::vector<std::string>& plugin_path) {
  std::string out;
  const fs::path self = self_executable();
  for (const auto* t : tasks) {
    std::vector<std::string> words = {
        shell_quote(fs::absolute(plan.folder / "logs" / t->log_name).string()),
        shell_quote(self.string()), "run",
        // The experiment path exactly as the plan has it (relative to --chdir, the submission
        // folder): a teacher's path is part of its students' run ids.
        shell_quote(t->experiment.string()), "--threads", std::to_string(plan.spec.slurm.cpus)};
    for (const auto& o : t->overrides)
      words.insert(words.end(), {"--set", shell_quote(o)});
    for (const auto& p : plugin_path)
      words.insert(words.end(), {"--plugin-path", shell_quote(fs::absolute(p).string())});
    out += join(words, " ") + "\n";
  }
  return out;
}

// The batch script of one job array. Slurm signals only the batch shell (B:USR1), which passes
// the signal to `ardkit run`; exit 130 means "checkpointed on a signal": requeue, and the
// requeued task resumes from that checkpoint.
std::string batch_script(const GridPlan& plan, const std::string& job, const fs::path& tasks,
                         size_t count) {
  const SlurmOptions& s = plan.spec.slurm;
  const fs::path slurm = fs::absolute(plan.folder / "slurm");
  std::string out = "#!/bin/bash\n";
  out += fmt::format("#SBATCH --job-name=ardkit-{}-{}\n", plan.spec.name, job);
  out += fmt::format("#SBATCH --array=0-{}{}\n", count - 1,
                     s.concurrency > 0 ? fmt::format("%{}", s.concurrency) : "");
  out += fmt::format("#SBATCH --cpus-per-task={}\n", s.cpus);
  out += fmt::format("#SBATCH --time={}\n", s.time);
  if (!s.partition.empty())
    out += fmt::format("#SBATCH --partition={}\n", s.partition);
  if (s.gpus > 0)
    out += fmt::format("#SBATCH --gpus-per-task={}\n", s.gpus);
  if (!s.memory.empty())
    out += fmt::format("#SBATCH --mem={}\n", s.memory);
  out += fmt::format("#SBATCH --signal=B:USR1@{}\n", s.signal_seconds);
  out += "#SBATCH --requeue\n#SBATCH --open-mode=append\n";
  out += fmt::format("#SBATCH --output={}/{}-%A_%a.out\n", slurm.string(), job);
  out += fmt::format("#SBATCH --chdir={}\n", fs::current_path().string());
  for (const auto& e : s.extra)
    out += "#SBATCH " + e + "\n";
  out += fmt::format(R"(
# Written by `ardkit grid --backend slurm` for grid {name}; task N runs line N+1 of {tasks}.
set -u
line=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" {tasks})
eval "set -- $line"
log=$1; shift
echo "$(date -u +%FT%TZ) slurm job ${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}} on $(hostname), restart ${{SLURM_RESTART_COUNT:-0}}" >> "$log"
"$@" >> "$log" 2>&1 &
child=$!
trap 'kill -USR1 $child 2>/dev/null' USR1
trap 'kill -TERM $child 2>/dev/null' TERM
code=0
wait $child || code=$?
# A trapped signal interrupts `wait`: wait again until ardkit has checkpointed and exited.
while kill -0 $child 2>/dev/null; do code=0; wait $child || code=$?; done
if [ "$code" -eq 130 ]; then
  echo "$(date -u +%FT%TZ) checkpointed on a signal; requeueing" >> "$log"
  scontrol requeue "${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}"
fi
exit $code
)",
                     fmt::arg("name", plan.spec.name), fmt::arg("tasks", tasks.string()));
  return out;
}

// Runs a command, returns its standard output; throws with its output when it fails.
std::string run_capture(const std::string& command) {
  std::string out;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe)
    throw_runtime_error("cannot run " + command);
  std::array<char, 4096> buffer;
  while (size_t n = std::fread(buffer.data(), 1, buffer.size(), pipe))
    out.append(buffer.data(), n);
  const int status = ::pclose(pipe);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' '))
    out.pop_back();
  if (status != 0)
    throw_runtime_error(fmt::format("{} failed: {}", command, out));
  return out;
}

}  // namespace

int submit_slurm(const GridPlan& plan, const std::vector<std::string>& plugin_path,
                 bool no_submit) {
  const fs::path slurm = plan.folder / "slurm";
  fs::create_directories(slurm);
  fs::create_directories(plan.folder / "logs");
  std::vector<const GridTask*> teachers, cells;
  for (const auto& t : plan.teachers)
    if (!run_completed(t.folder))
      teachers.push_back(&t);
  for (const auto& c : plan.cell_tasks) {
    if (!c.error.empty())
      log_line(fmt::format("grid: {} does not validate, not submitted: {}", c.label, c.error));
    else if (!c.same_as && !run_completed(c.folder))
      cells.push_back(&c);
  }
  if (cells.empty()) {
    log_line(fmt::format("grid {}: every cell is done; nothing to submit", plan.spec.name));
    return 0;
  }
  if (!no_submit && run_capture("command -v sbatch || echo none") == "none")
    throw_runtime_error(
        "grid --backend slurm: sbatch not found on PATH; run it on a Slurm "
        "submit host, or add --no-submit to only write the job scripts");
  std::string dependency;
  std::vector<std::string> commands;
  for (const auto& [job, tasks] : {std::make_pair(std::string("teachers"), teachers),
                                   std::make_pair(std::string("cells"), cells)}) {
    if (tasks.empty())
      continue;
    const fs::path list = fs::absolute(slurm / (job + ".tasks"));
    const fs::path script = fs::absolute(slurm / (job + ".sbatch"));
    write_file_atomic(list, task_lines(plan, tasks, plugin_path));
    write_file_atomic(script, batch_script(plan, job, list, tasks.size()));
    std::string command = "sbatch --parsable";
    if (!dependency.empty())
      command += " --dependency=afterok:" + dependency + " --kill-on-invalid-dep=yes";
    command += " " + shell_quote(script.string());
    commands.push_back(command);
    if (no_submit)
      continue;
    std::string id = run_capture(command);
    id = id.substr(0, id.find(';'));  // "ID;CLUSTER" on federated clusters
    log_line(fmt::format("grid {}: submitted {} {} as job array {} ({} task(s){})", plan.spec.name,
                         job, script.string(), id, tasks.size(),
                         dependency.empty() ? "" : ", after job " + dependency));
    if (job == "teachers")
      dependency = id;
  }
  if (no_submit)
    std::cout << "job scripts written; submit with:\n  " << join(commands, "\n  ")
              << (commands.size() > 1 ? "  (with --dependency=afterok:<teachers job id>)" : "")
              << "\n";
  else
    log_line(fmt::format("grid {}: `ardkit grid status {}` follows the cells; logs in {}",
                         plan.spec.name, plan.spec.file.string(), (plan.folder / "logs").string()));
  return 0;
}

}  // namespace ardkit::cli
