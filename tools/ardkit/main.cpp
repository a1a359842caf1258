// The `ardkit` command: dispatches to a command and maps errors to exit statuses
// (0 ok, 1 failure while running, 2 usage or configuration error, 3 plugin loading error).
#include <c10/util/Exception.h>

#include <unistd.h>

#include <boost/program_options/errors.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <ardkit/error.hpp>
#include <ardkit/plugin.hpp>
#include <ardkit/text.hpp>
#include <ardkit/version.hpp>

#include "commands.hpp"

namespace {

const char* kHelp = R"(usage: ardkit COMMAND [options]

ardkit: plugin-based adversarial robustness distillation experiments.

commands:
  run EXPERIMENT.toml       train and evaluate an experiment (resumes if interrupted)
  validate EXPERIMENT.toml  check an experiment file without running it
  plugins [list|show NAME]  list plugins, or show one plugin's parameters
  eval TARGET               clean and robust accuracy of a model (evaluation file or run folder)
  export TARGET -o OUT.pt   a model's weights as a PyTorch state dict (torch.load-able)
  grid [status] GRID.toml   run an ablation grid here or on Slurm, or show where it stands
  report PATH...            one table of the results of completed runs
  analyze TEACHER STUDENT...  how much of a teacher's representation students took over
  zoo [list]                the RobustBench model zoo entries a model table can name

`ardkit COMMAND --help` describes each command's options; `ardkit --version` prints the version.
)";

// Errors are one line on the terminal, prefixed "ardkit: error:". A message of several lines (a
// TorchScript traceback) is summarised there and written whole to a file the line names.
int fail(const std::string& message, int code) {
  std::string line = ardkit::one_line(message);
  if (line != message) {
    std::error_code ec;
    const auto file = std::filesystem::temp_directory_path(ec) /
                      ("ardkit-error-" + std::to_string(::getpid()) + ".txt");
    std::ofstream out(file);
    if (out << message << "\n")
      line += " (the whole message is in " + file.string() + ")";
  }
  std::cerr << "ardkit: error: " << line << "\n";
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << kHelp;
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version" || args[0] == "-V" || args[0] == "version") {
    std::cout << "ardkit " << ardkit::kVersion << " (commit " << ardkit::kGitCommit << ", LibTorch "
              << TORCH_VERSION << ", plugin ABI " << ARDKIT_ABI_VERSION << ")\n";
    return 0;
  }
  const std::string command = args[0];
  args.erase(args.begin());
  try {
    if (command == "run")
      return ardkit::cli::run_command(args);
    if (command == "validate")
      return ardkit::cli::validate_command(args);
    if (command == "plugins")
      return ardkit::cli::plugins_command(args);
    if (command == "report")
      return ardkit::cli::report_command(args);
    if (command == "eval")
      return ardkit::cli::eval_command(args);
    if (command == "export")
      return ardkit::cli::export_command(args);
    if (command == "analyze")
      return ardkit::cli::analyze_command(args);
    if (command == "grid")
      return ardkit::cli::grid_command(args);
    if (command == "zoo")
      return ardkit::cli::zoo_command(args);
    return fail("unknown command '" + command + "'" +
                    ardkit::did_you_mean(command, {"run", "validate", "plugins", "report", "eval",
                                                   "export", "analyze", "grid", "zoo"}) +
                    "; see ardkit --help",
                2);
  } catch (const ardkit::Error& e) {
    return fail(e.what(), e.exit_code());
  } catch (const boost::program_options::error& e) {
    return fail(
        std::string("ardkit ") + command + ": " + e.what() + "; see ardkit " + command + " --help",
        2);
  } catch (const c10::Error& e) {
    return fail("LibTorch: " + ardkit::message_of(e), 1);
  } catch (const std::exception& e) {
    return fail(e.what(), 1);
  }
}
