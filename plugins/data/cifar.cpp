// Data plugin `cifar`: CIFAR-10 and CIFAR-100 in their binary distributions
// (cifar-10-batches-bin: data_batch_1..5.bin, test_batch.bin; cifar-100-binary: train.bin,
// test.bin). Each record is the label byte(s) then 3072 pixel bytes, red plane, green, blue.
#include <fmt/format.h>

#include <ardkit/ardkit.hpp>
#include <ardkit/in_memory_data.hpp>
#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;

namespace {

using ardkit::Params;

constexpr int64_t kPixels = 3 * 32 * 32;

struct Format {
  std::string name;
  std::vector<std::string> train_files, test_files;
  int64_t label_bytes;  // 1 (CIFAR-10) or 2 (CIFAR-100: coarse, fine)
  int64_t label_index;  // which label byte is the class
  int64_t classes;
};

Format format_of(const Params& p) {
  if (p.get_string("variant") == "cifar10")
    return {"cifar10",
            {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
             "data_batch_5.bin"},
            {"test_batch.bin"},
            1,
            0,
            10};
  const bool coarse = p.get_string("labels") == "coarse";
  return {coarse ? "cifar100-coarse" : "cifar100",
          {"train.bin"},
          {"test.bin"},
          2,
          coarse ? 0 : 1,
          coarse ? 20 : 100};
}

fs::path root_of(const Params& p) {
  const std::string& root = p.get_string("root");
  if (!root.empty())
    return root;
  return p.get_string("variant") == "cifar10" ? "data/cifar-10-batches-bin"
                                              : "data/cifar-100-binary";
}

// Images [N,3,32,32] uint8 and labels [N] of the given files, concatenated.
std::pair<torch::Tensor, torch::Tensor> read_records(const Params& p, const Format& f,
                                                     const std::vector<std::string>& names) {
  const fs::path root = root_of(p);
  const int64_t record = f.label_bytes + kPixels;
  std::vector<torch::Tensor> images, labels;
  for (const auto& name : names) {
    const fs::path path = root / name;
    std::error_code ec;
    if (!fs::is_regular_file(path, ec))
      ardkit::throw_config_error(fmt::format(
          "{}: [data] {} file {} not found; put the binary version of {} (the *-binary.tar.gz "
          "archive, unpacked) there or set root",
          p.origin("root"), f.name, path.string(), f.name));
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    if (bytes.empty() || bytes.size() % record != 0)
      ardkit::throw_runtime_error(fmt::format(
          "{}: truncated or not a {} binary file: {} bytes is not a whole number of {}-byte "
          "records; re-extract the archive",
          path.string(), f.name, bytes.size(), record));
    const int64_t n = static_cast<int64_t>(bytes.size()) / record;
    auto raw = torch::from_blob(bytes.data(), {n, record}, torch::kByte).clone();
    auto y = raw.select(1, f.label_index).to(torch::kLong);
    const int64_t top = y.max().item<int64_t>();
    if (top >= f.classes)
      ardkit::throw_runtime_error(
          fmt::format("{}: label {} in a {}-class file; is this the {} file (variant / labels)?",
                      path.string(), top, f.classes, f.name));
    images.push_back(raw.slice(1, f.label_bytes, record).reshape({n, 3, 32, 32}));
    labels.push_back(y);
  }
  return {torch::cat(images), torch::cat(labels)};
}

std::shared_ptr<ardkit::Component> make(const Params& p, const ardkit::BuildContext& c) {
  const Format f = format_of(p);
  // A data-free run opens no training file at all.
  torch::Tensor train_x, train_y;
  if (c.train_split)
    std::tie(train_x, train_y) = read_records(p, f, f.train_files);
  auto [test_x, test_y] = read_records(p, f, f.test_files);
  ardkit::DataSpec spec;
  spec.channels = 3;
  spec.height = 32;
  spec.width = 32;
  spec.num_classes = f.classes;
  spec.name = f.name;
  return std::make_shared<ardkit::InMemoryData>(spec, train_x, train_y, test_x, test_y,
                                                ardkit::split_options_from(p),
                                                ardkit::augment_options_from(p));
}

ardkit::ParamSchema schema() {
  using namespace ardkit::param;
  ardkit::ParamSchema s = {
      string("variant", "cifar10").one_of({"cifar10", "cifar100"}).help("which dataset"),
      string("root", "")
          .help("folder of the binary files; default data/cifar-10-batches-bin or "
                "data/cifar-100-binary"),
      string("labels", "fine")
          .one_of({"fine", "coarse"})
          .help("CIFAR-100: the 100 fine classes or the 20 superclasses"),
  };
  ardkit::add_split_params(s, 1000);
  ardkit::add_augment_params(s, 4, true);
  return s;
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest.add(ardkit::PluginKind::data, "cifar", "1.0.0",
               "CIFAR-10 / CIFAR-100 binary files; crop 4 + flip by default", schema(), make);
}
