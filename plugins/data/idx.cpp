// Data plugin `idx`: datasets in the IDX format of MNIST and Fashion-MNIST (gzipped or not).
// Defaults read Debian's dataset-fashion-mnist package.
#include <zlib.h>

#include <ardkit/ardkit.hpp>
#include <ardkit/in_memory_data.hpp>
#include <filesystem>
#include <limits>

namespace fs = std::filesystem;

namespace {

using ardkit::Params;

// Reads a whole IDX file through zlib, which also reads uncompressed files transparently.
std::vector<uint8_t> read_all(const fs::path& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (!file)
    ardkit::throw_runtime_error(path.string() + ": cannot open: " + std::strerror(errno));
  std::vector<uint8_t> out;
  std::vector<uint8_t> chunk(1 << 20);
  for (;;) {
    const int n = gzread(file, chunk.data(), static_cast<unsigned>(chunk.size()));
    if (n < 0) {
      int code = 0;
      const std::string message = gzerror(file, &code);
      gzclose(file);
      ardkit::throw_runtime_error(path.string() + ": corrupt or truncated file (" + message +
                                  "); re-install the dataset or check the path");
    }
    if (n == 0)
      break;
    out.insert(out.end(), chunk.begin(), chunk.begin() + n);
  }
  gzclose(file);
  return out;
}

uint32_t big_endian(const std::vector<uint8_t>& bytes, size_t offset) {
  return (uint32_t(bytes[offset]) << 24) | (uint32_t(bytes[offset + 1]) << 16) |
         (uint32_t(bytes[offset + 2]) << 8) | uint32_t(bytes[offset + 3]);
}

// An IDX tensor of unsigned bytes with `expected_dims` dimensions.
torch::Tensor read_idx(const fs::path& path, int expected_dims) {
  const auto bytes = read_all(path);
  const std::string fix =
      "; re-install the dataset (apt-get install --reinstall dataset-fashion-mnist) or check "
      "[data] root";
  if (bytes.size() < 4 || bytes[0] != 0 || bytes[1] != 0)
    ardkit::throw_runtime_error(path.string() + ": not an IDX file (bad magic number)" + fix);
  if (bytes[2] != 0x08)
    ardkit::throw_runtime_error(path.string() + ": IDX element type " + std::to_string(bytes[2]) +
                                " is not unsigned byte (0x08)" + fix);
  const int dims = bytes[3];
  if (dims != expected_dims)
    ardkit::throw_runtime_error(path.string() + ": IDX file has " + std::to_string(dims) +
                                " dimensions, expected " + std::to_string(expected_dims) +
                                " (images and labels swapped?)" + fix);
  const size_t header = 4 + 4 * static_cast<size_t>(dims);
  if (bytes.size() < header)
    ardkit::throw_runtime_error(path.string() + ": truncated IDX header" + fix);
  // The dimensions come from the file: their product may overflow, and a product that wrapped
  // around to the file's size must not pass for a match.
  std::vector<int64_t> shape;
  size_t count = 1;
  const size_t available = bytes.size() - header;
  for (int d = 0; d < dims; ++d) {
    shape.push_back(big_endian(bytes, 4 + 4 * d));
    if (shape.back() == 0)
      ardkit::throw_runtime_error(path.string() + ": IDX dimension " + std::to_string(d) +
                                  " is 0: the file holds no data" + fix);
    if (count > std::numeric_limits<size_t>::max() / static_cast<size_t>(shape.back()))
      ardkit::throw_runtime_error(path.string() +
                                  ": the IDX header's dimensions multiply to more bytes than "
                                  "any file holds (corrupt header)" +
                                  fix);
    count *= static_cast<size_t>(shape.back());
  }
  if (available != count)
    ardkit::throw_runtime_error(path.string() + ": truncated: the header promises " +
                                std::to_string(count) + " bytes of data, the file holds " +
                                std::to_string(bytes.size() - header) + fix);
  auto tensor = torch::empty(shape, torch::kByte);
  std::memcpy(tensor.data_ptr<uint8_t>(), bytes.data() + header, count);
  return tensor;
}

fs::path locate(const Params& p, const std::string& key) {
  fs::path path = fs::path(p.get_string("root")) / p.get_string(key);
  std::error_code ec;
  if (fs::is_regular_file(path, ec))
    return path;
  // Accept the uncompressed twin of a .gz name (and the other way round).
  fs::path twin = path.extension() == ".gz" ? fs::path(path).replace_extension()
                                            : fs::path(path.string() + ".gz");
  if (fs::is_regular_file(twin, ec))
    return twin;
  ardkit::throw_config_error(
      p.origin("root") + ": [data] dataset file " + path.string() +
      " not found; install it (apt-get install dataset-fashion-mnist) or set root / " + key +
      " to where the IDX files are");
}

std::shared_ptr<ardkit::Component> make(const Params& p, const ardkit::BuildContext& c) {
  // A data-free run opens no training file at all.
  torch::Tensor train_x, train_y;
  if (c.train_split) {
    train_x = read_idx(locate(p, "train_images"), 3);
    train_y = read_idx(locate(p, "train_labels"), 1);
  }
  auto test_x = read_idx(locate(p, "test_images"), 3);
  auto test_y = read_idx(locate(p, "test_labels"), 1);
  if (!c.train_split) {
    train_x = test_x.narrow(0, 0, 0);
    train_y = test_y.narrow(0, 0, 0);
  }
  if (train_x.size(0) != train_y.size(0) || test_x.size(0) != test_y.size(0))
    ardkit::throw_runtime_error(
        p.where() + ": image and label files disagree on the number of samples (" +
        std::to_string(train_x.size(0)) + " vs " + std::to_string(train_y.size(0)) +
        "); check that they belong together");
  const int64_t classes = p.get_int("num_classes");
  const int64_t top = torch::cat({train_y, test_y}).max().item<int64_t>();
  if (top >= classes)
    ardkit::throw_config_error(p.origin("num_classes") + ": [data] labels go up to " +
                               std::to_string(top) +
                               " but num_classes = " + std::to_string(classes));
  ardkit::DataSpec spec;
  spec.channels = 1;
  spec.height = test_x.size(1);
  spec.width = test_x.size(2);
  spec.num_classes = classes;
  spec.name = p.get_string("name");
  return std::make_shared<ardkit::InMemoryData>(
      spec, c.train_split ? train_x.unsqueeze(1) : torch::Tensor(),
      c.train_split ? train_y.to(torch::kLong) : torch::Tensor(), test_x.unsqueeze(1),
      test_y.to(torch::kLong), ardkit::split_options_from(p), ardkit::augment_options_from(p));
}

ardkit::ParamSchema schema() {
  using namespace ardkit::param;
  ardkit::ParamSchema s = {
      string("root", "/usr/share/datasets/fashion-mnist").help("folder holding the four IDX files"),
      string("name", "fashion-mnist").help("dataset name recorded in results"),
      string("train_images", "train-images-idx3-ubyte.gz").help("training images file in root"),
      string("train_labels", "train-labels-idx1-ubyte.gz").help("training labels file in root"),
      string("test_images", "t10k-images-idx3-ubyte.gz").help("test images file in root"),
      string("test_labels", "t10k-labels-idx1-ubyte.gz").help("test labels file in root"),
      integer("num_classes", 10).at_least(2).help("number of classes"),
  };
  ardkit::add_split_params(s, 5000);
  ardkit::add_augment_params(s);
  return s;
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest.add(ardkit::PluginKind::data, "idx", "1.0.0",
               "MNIST-format IDX files (gzipped or not); defaults to Debian's Fashion-MNIST",
               schema(), make);
}
