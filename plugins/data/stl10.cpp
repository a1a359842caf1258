// Data plugin `stl10`: the labelled splits of STL-10's binary distribution (stl10_binary:
// train_X.bin, train_y.bin, test_X.bin, test_y.bin). Images are 3x96x96 bytes, each colour plane
// stored column by column; labels are bytes 1..10.
#include <fmt/format.h>

#include <ardkit/ardkit.hpp>
#include <ardkit/in_memory_data.hpp>
#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;

namespace {

using ardkit::Params;

constexpr int64_t kSide = 96;
constexpr int64_t kImageBytes = 3 * kSide * kSide;

std::string read_file(const Params& p, const std::string& name) {
  const fs::path path = fs::path(p.get_string("root")) / name;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec))
    ardkit::throw_config_error(fmt::format(
        "{}: [data] STL-10 file {} not found; unpack stl10_binary.tar.gz there or set root",
        p.origin("root"), path.string()));
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

std::pair<torch::Tensor, torch::Tensor> read_split(const Params& p, const std::string& prefix) {
  std::string x_bytes = read_file(p, prefix + "_X.bin");
  std::string y_bytes = read_file(p, prefix + "_y.bin");
  const auto where = (fs::path(p.get_string("root")) / (prefix + "_X.bin")).string();
  if (x_bytes.empty() || x_bytes.size() % kImageBytes != 0)
    ardkit::throw_runtime_error(fmt::format(
        "{}: truncated: {} bytes is not a whole number of 96x96x3 images; re-extract the archive",
        where, x_bytes.size()));
  const int64_t n = static_cast<int64_t>(x_bytes.size()) / kImageBytes;
  if (static_cast<int64_t>(y_bytes.size()) != n)
    ardkit::throw_runtime_error(
        fmt::format("{}: {} images but {} labels in {}_y.bin; the files do not belong together",
                    where, n, y_bytes.size(), prefix));
  // Column-major planes: [n][c][w][h] in the file, transposed to NCHW.
  auto x = torch::from_blob(x_bytes.data(), {n, 3, kSide, kSide}, torch::kByte)
               .transpose(2, 3)
               .contiguous();
  auto y = torch::from_blob(y_bytes.data(), {n}, torch::kByte).to(torch::kLong) - 1;
  if (y.min().item<int64_t>() < 0 || y.max().item<int64_t>() > 9)
    ardkit::throw_runtime_error(where + ": labels outside 1..10; is this an STL-10 label file?");
  return {x, y};
}

std::shared_ptr<ardkit::Component> make(const Params& p, const ardkit::BuildContext& c) {
  // A data-free run opens no training file at all.
  torch::Tensor train_x, train_y;
  if (c.train_split)
    std::tie(train_x, train_y) = read_split(p, "train");
  auto [test_x, test_y] = read_split(p, "test");
  ardkit::DataSpec spec;
  spec.channels = 3;
  spec.height = kSide;
  spec.width = kSide;
  spec.num_classes = 10;
  spec.name = "stl10";
  return std::make_shared<ardkit::InMemoryData>(spec, train_x, train_y, test_x, test_y,
                                                ardkit::split_options_from(p),
                                                ardkit::augment_options_from(p));
}

ardkit::ParamSchema schema() {
  using namespace ardkit::param;
  ardkit::ParamSchema s = {
      string("root", "data/stl10_binary").help("folder holding train_X.bin ... test_y.bin"),
  };
  ardkit::add_split_params(s, 500);
  ardkit::add_augment_params(s, 12, true);
  return s;
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest.add(ardkit::PluginKind::data, "stl10", "1.0.0",
               "STL-10 labelled splits, binary files (96x96); crop 12 + flip by default", schema(),
               make);
}
