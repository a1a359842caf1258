// The dataset readers on the files a user points them at: IDX (gzipped or not; images and
// labels), CIFAR-10/100 binary batches and STL-10's binary planes. The first byte picks the
// reader; the rest is split into the files it opens (see fuzz::parts).
#include <ardkit/data.hpp>

#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::builtin();
  return 0;
}

namespace {

void build(const std::string& plugin, std::map<std::string, ardkit::Value> values) {
  const auto& entry = fuzz::builtin().find(ardkit::PluginKind::data, plugin);
  ardkit::Params params("fuzz [data]");
  for (const auto& [key, value] : values)
    params.set(key, value);
  ardkit::fill_defaults(entry.info.schema, params);
  ardkit::BuildContext context;
  context.train_split = false;  // the test files only: one input, one split
  auto data =
      fuzz::builtin().create<ardkit::DataSource>(ardkit::PluginKind::data, plugin, params, context);
  // Reading a batch touches the tensors the reader built from the file.
  if (const int64_t n = data->size(ardkit::Split::test); n > 0)
    data->get(ardkit::Split::test, torch::tensor({int64_t{0}, n - 1}),
              ardkit::Augmentation::none());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  if (size < 1)
    return -1;
  const std::string_view rest(reinterpret_cast<const char*>(bytes) + 1, size - 1);
  const auto dir = fuzz::scratch() / "data";
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  switch (bytes[0] % 4) {
    case 0:
    case 1: {  // IDX, gzipped or not (zlib reads both; the name decides nothing)
      const auto p = fuzz::parts(rest, 2);
      const char* gz = bytes[0] % 4 == 0 ? ".gz" : "";
      fuzz::write(dir / (std::string("t10k-images-idx3-ubyte") + gz), p[0]);
      fuzz::write(dir / (std::string("t10k-labels-idx1-ubyte") + gz), p[1]);
      fuzz::expect_clean([&] {
        build("idx", {{"root", dir.string()},
                      {"test_images", std::string("t10k-images-idx3-ubyte") + gz},
                      {"test_labels", std::string("t10k-labels-idx1-ubyte") + gz}});
      });
    } break;
    case 2: {  // CIFAR-10 and CIFAR-100 (label bytes, then 3x32x32 planes per record)
      fuzz::write(dir / "c10" / "test_batch.bin", rest);
      fuzz::write(dir / "c100" / "test.bin", rest);
      fuzz::expect_clean([&] { build("cifar", {{"root", (dir / "c10").string()}}); });
      fuzz::expect_clean([&] {
        build("cifar", {{"root", (dir / "c100").string()}, {"variant", std::string("cifar100")}});
      });
    } break;
    default: {  // STL-10: test_X.bin (column-major planes) and test_y.bin (labels 1..10)
      const auto p = fuzz::parts(rest, 2);
      fuzz::write(dir / "test_X.bin", p[0]);
      fuzz::write(dir / "test_y.bin", p[1]);
      fuzz::expect_clean([&] { build("stl10", {{"root", dir.string()}}); });
    }
  }
  return 0;
}
