#pragma once
#include <string>
#include <vector>

namespace ardkit::cli {

// Each command parses its own arguments (argv without the command word) and returns the exit
// status; errors are thrown as ardkit::Error and mapped to exit statuses by main.
int run_command(const std::vector<std::string>& args);
int validate_command(const std::vector<std::string>& args);
int plugins_command(const std::vector<std::string>& args);
int report_command(const std::vector<std::string>& args);
int eval_command(const std::vector<std::string>& args);
int export_command(const std::vector<std::string>& args);
int analyze_command(const std::vector<std::string>& args);
int grid_command(const std::vector<std::string>& args);
int zoo_command(const std::vector<std::string>& args);

}  // namespace ardkit::cli
