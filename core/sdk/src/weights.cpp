#include "ardkit/weights.hpp"

#include <fmt/format.h>
#include <torch/torch.h>

#include <map>
#include <regex>
#include <set>

#include "ardkit/error.hpp"
#include "ardkit/file.hpp"
#include "ardkit/hash.hpp"
#include "ardkit/progress.hpp"
#include "ardkit/text.hpp"

namespace fs = std::filesystem;

namespace ardkit {
namespace {

// "a, b, c and 7 more": long key lists stay on one readable line.
std::string some(const std::vector<std::string>& keys) {
  constexpr size_t shown = 6;
  std::vector<std::string> head(keys.begin(), keys.begin() + std::min(keys.size(), shown));
  std::string out = join(head, ", ");
  if (keys.size() > shown)
    out += fmt::format(" and {} more", keys.size() - shown);
  return out;
}

std::string shape(const torch::Tensor& t) {
  std::vector<std::string> dims;
  for (auto d : t.sizes())
    dims.push_back(std::to_string(d));
  return "[" + join(dims, ",") + "]";
}

struct Rename {
  std::regex pattern;
  std::string replacement;
};

std::vector<Rename> compile_renames(const WeightOptions& options) {
  std::vector<Rename> out;
  for (const auto& rule : options.renames) {
    const auto eq = rule.find('=');
    if (eq == std::string::npos)
      throw_config_error(
          fmt::format("{}: rename rule '{}' has no '='; write \"pattern=replacement\", e.g. "
                      "\"^features\\\\.=feature_extractor.\"",
                      options.where, rule));
    try {
      out.push_back({std::regex(rule.substr(0, eq)), rule.substr(eq + 1)});
    } catch (const std::regex_error& e) {
      throw_config_error(fmt::format("{}: rename rule '{}' is not a valid regular expression ({})",
                                     options.where, rule, e.what()));
    }
  }
  return out;
}

}  // namespace

void add_weight_params(ParamSchema& s) {
  s.push_back(param::string("checkpoint", "")
                  .help("weights to load: an ardkit checkpoint or a file written by torch.save "
                        "(zip or legacy)"));
  s.push_back(param::string("checkpoint_key", "")
                  .help("entry of a checkpoint dict holding the state dict, e.g. \"state_dict\" "
                        "or \"a/b\"; empty = the file itself or a usual entry"));
  s.push_back(param::string_list("strip_prefix", {"module."})
                  .help("prefixes removed from the file's keys (DataParallel's module.)"));
  s.push_back(
      param::string_list("rename", {})
          .help("key renaming rules \"regex=replacement\", applied in order after strip_prefix"));
  s.push_back(param::boolean("strict", true)
                  .help("missing or unexpected keys are errors; false loads what matches"));
  s.push_back(param::string("sha256", "")
                  .help("the checkpoint file's SHA-256 (sha256sum); loading refuses another file"));
  s.push_back(param::string("zoo", "").help(
      "a RobustBench model zoo name (`ardkit zoo list`), e.g. \"cifar10/Linf/Wang2023Better_"
      "WRN-28-10\": the host sets plugin and architecture from it, and `file` is the checkpoint"));
}

WeightOptions weight_options_from(const Params& host) {
  WeightOptions o;
  o.key = host.get_string("checkpoint_key");
  o.strip_prefixes = host.get_string_list("strip_prefix");
  o.renames = host.get_string_list("rename");
  o.strict = host.get_bool("strict");
  o.where = host.where();
  if (const std::string zoo = host.get_string("zoo"); !zoo.empty())
    o.where += fmt::format(" (zoo {})", zoo);
  o.sha256 = host.get_string("sha256");
  if (!o.sha256.empty() && (o.sha256.size() != 64 ||
                            o.sha256.find_first_not_of("0123456789abcdef") != std::string::npos))
    throw_config_error(
        fmt::format("{}: sha256 must be 64 lowercase hex digits (what sha256sum "
                    "prints), got '{}'",
                    host.origin("sha256"), o.sha256));
  compile_renames(o);  // report a bad rule now, before any file is read
  return o;
}

StateDict model_state_dict(torch::nn::Module& model) {
  StateDict out;
  for (const auto& item : model.named_modules()) {
    const std::string prefix = item.key().empty() ? "" : item.key() + ".";
    for (const auto& p : item.value()->named_parameters(/*recurse=*/false))
      out.emplace_back(prefix + p.key(), p.value());
    for (const auto& b : item.value()->named_buffers(/*recurse=*/false))
      out.emplace_back(prefix + b.key(), b.value());
  }
  return out;
}

uint64_t weights_digest(torch::nn::Module& model) {
  uint64_t h = kFnvOffset;
  for (const auto& [name, tensor] : model_state_dict(model)) {
    const auto values = tensor.detach().to(torch::kCPU).contiguous();
    const std::string header = c10::str(name, ' ', values.sizes(), ' ', values.dtype());
    h = fnv1a(header.data(), header.size(), h);
    h = fnv1a(values.data_ptr(), values.nbytes(), h);
  }
  return h;
}

size_t load_state_dict(torch::nn::Module& model, const StateDict& state,
                       const WeightOptions& options, const std::string& source) {
  const auto renames = compile_renames(options);
  std::map<std::string, torch::Tensor> incoming;
  std::vector<std::string> incoming_order;
  for (const auto& [original, tensor] : state) {
    std::string key = original;
    for (const auto& prefix : options.strip_prefixes)
      if (!prefix.empty() && key.rfind(prefix, 0) == 0)
        key = key.substr(prefix.size());
    for (const auto& r : renames)
      key = std::regex_replace(key, r.pattern, r.replacement);
    if (incoming.count(key))
      throw_config_error(
          fmt::format("{}: two keys of the file both become '{}' after "
                      "strip_prefix/rename; adjust the rules",
                      source, key));
    incoming.emplace(key, tensor);
    incoming_order.push_back(key);
  }
  std::vector<std::string> missing, unexpected, misshaped;
  std::set<std::string> known;
  const StateDict target = model_state_dict(model);
  for (const auto& [name, tensor] : target) {
    known.insert(name);
    const auto it = incoming.find(name);
    if (it == incoming.end()) {
      // PyTorch < 0.4.1 wrote no BatchNorm counters; PyTorch itself accepts such files.
      if (name.size() < 20 || name.compare(name.size() - 20, 20, ".num_batches_tracked") != 0)
        missing.push_back(name);
    } else if (!it->second.sizes().equals(tensor.sizes())) {
      misshaped.push_back(
          fmt::format("{} (file {} vs model {})", name, shape(it->second), shape(tensor)));
    }
  }
  for (const auto& key : incoming_order)
    if (!known.count(key))
      unexpected.push_back(key);
  std::vector<std::string> problems;
  if (!missing.empty())
    problems.push_back(fmt::format("{} missing: {}", missing.size(), some(missing)));
  if (!unexpected.empty())
    problems.push_back(fmt::format("{} unexpected: {}", unexpected.size(), some(unexpected)));
  if (!misshaped.empty())
    problems.push_back(fmt::format("{} mis-shaped: {}", misshaped.size(), some(misshaped)));
  if (!misshaped.empty() || (options.strict && !problems.empty()))
    throw_config_error(fmt::format(
        "{}: weights do not fit {}: {}; check the architecture's parameters, map names with "
        "strip_prefix / rename{}",
        source, options.where.empty() ? "the model" : options.where, join(problems, "; "),
        misshaped.empty() ? ", or set strict = false to load the keys that match" : ""));
  if (!problems.empty())
    log_line(fmt::format("warning: {}: loading the matching keys only ({})", source,
                         join(problems, "; ")),
             true);
  torch::NoGradGuard no_grad;
  size_t loaded = 0;
  for (const auto& [name, tensor] : target) {
    const auto it = incoming.find(name);
    if (it == incoming.end())
      continue;
    tensor.copy_(it->second.to(tensor.scalar_type()));
    ++loaded;
  }
  return loaded;
}

void load_weights(Model& model, const fs::path& file, const WeightOptions& options) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec))
    throw_config_error(
        fmt::format("{}{}: checkpoint not found; check the path (a run keeps its weights in "
                    "RUN/checkpoints/last.pt and best.pt)",
                    options.where.empty() ? "" : options.where + ": ", file.string()));
  if (!options.sha256.empty()) {
    if (const std::string actual = file_sha256(file); actual != options.sha256)
      throw_config_error(fmt::format(
          "{}{}: SHA-256 {} is not the sha256 = \"{}\" the table expects; this is another file "
          "(or a damaged copy): fetch the right one, or correct sha256",
          options.where.empty() ? "" : options.where + ": ", file.string(), actual,
          options.sha256));
  }
  if (!is_libtorch_archive(file)) {
    load_state_dict(model, read_pytorch_state_dict(file, options.key), options, file.string());
    return;
  }
  try {
    torch::serialize::InputArchive archive;
    // Onto the model's device: a checkpoint written on a GPU loads on a CPU-only machine.
    archive.load_from(file.string(), device_of(model));
    torch::serialize::InputArchive student;
    // A full training checkpoint holds the weights under "student"; a bare model file is itself.
    if (archive.try_read("student", student))
      model.load(student);
    else
      model.load(archive);
  } catch (const c10::Error& e) {
    throw_runtime_error(
        fmt::format("{}: cannot load weights into this model ({}); check that the "
                    "checkpoint was written for the same architecture and parameters",
                    file.string(), e.what_without_backtrace()));
  }
}

}  // namespace ardkit
