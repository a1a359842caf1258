#pragma once
// Option handling shared by the ardkit commands.
#include <fmt/format.h>
#include <toml++/toml.h>

#include <boost/program_options.hpp>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include <ardkit/error.hpp>

namespace ardkit::cli {

namespace po = boost::program_options;
namespace fs = std::filesystem;

struct CommonOptions {
  std::vector<std::string> plugin_path;
  bool help = false;
};

// --help and --plugin-path, which every command that loads plugins takes.
void add_common(po::options_description& d, CommonOptions& o);
po::variables_map parse(const std::vector<std::string>& args,
                        const po::options_description& visible,
                        const po::positional_options_description& positional);
// A numeric option checked as it is parsed: a value below `minimum` or above `maximum` (or nan)
// is a usage error naming the option, never silently ignored or replaced.
template <typename T>
po::typed_value<T>* number(T* target, const char* option, T minimum,
                           T maximum = std::numeric_limits<T>::max()) {
  return po::value(target)->notifier([=](const T& v) {
    if (!(v >= minimum && v <= maximum))
      throw_config_error(
          maximum == std::numeric_limits<T>::max()
              ? fmt::format("--{} {}: expected a number >= {}", option, v, minimum)
              : fmt::format("--{} {}: expected a number in [{}, {}]", option, v, minimum, maximum));
  });
}
std::vector<fs::path> to_paths(const std::vector<std::string>& items);
// LibTorch intra-op threads (0 = one per core) and flush-to-zero for denormals.
void set_threads(int64_t configured);

toml::table parse_toml(const fs::path& file);
// A whole text file ("" when it cannot be read).
std::string read_text(const fs::path& file);
// The evaluation file of a run folder: its student at checkpoints/WHICH.pt on its [data], with
// its [[eval]] attacks.
toml::table evaluation_of_run(const fs::path& run, const std::string& which);
// TARGET of `eval` and `export`: a run folder (as above) or an evaluation file; returns the
// TOML and the file that messages should name.
std::pair<toml::table, fs::path> evaluation_root(const std::string& target,
                                                 const std::string& which);
// A model file as an evaluation: TorchScript, or a checkpoint of `model_plugin` (or of the model
// zoo entry `zoo`), on `data_plugin`.
std::pair<toml::table, fs::path> model_file_evaluation(const std::string& target,
                                                       const std::string& model_plugin,
                                                       const std::string& data_plugin,
                                                       const std::string& zoo = "");

}  // namespace ardkit::cli
