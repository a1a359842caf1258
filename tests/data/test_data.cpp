// Data plugins: the IDX reader on generated files (gzipped and plain), corrupt and missing files,
// splits and subsets, synthetic determinism, augmentation.
#include <zlib.h>

#include <atomic>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <ardkit/ardkit.hpp>
#include <ardkit/host/prefetcher.hpp>
#include <ardkit/in_memory_data.hpp>

#include "test_util.hpp"

using ardkit::PluginKind;
using ardkit::Split;
using test::contains;
using test::error_of;

namespace {

std::vector<uint8_t> idx_bytes(const std::vector<uint32_t>& shape, uint8_t first) {
  std::vector<uint8_t> bytes = {0, 0, 0x08, static_cast<uint8_t>(shape.size())};
  size_t count = 1;
  for (uint32_t d : shape) {
    for (int shift : {24, 16, 8, 0})
      bytes.push_back(static_cast<uint8_t>(d >> shift));
    count *= d;
  }
  // Every pixel of image i holds first + i, so images can be told apart after a split.
  const size_t per_item = count / shape[0];
  for (size_t i = 0; i < count; ++i)
    bytes.push_back(static_cast<uint8_t>(first + i / per_item));
  return bytes;
}

void write_bytes(const std::filesystem::path& file, const std::vector<uint8_t>& bytes, bool gzip) {
  if (gzip) {
    gzFile f = gzopen(file.c_str(), "wb");
    gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
    gzclose(f);
  } else {
    std::ofstream(file, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
}

// 20 training and 6 test images of 4x4; labels cycle through 0..9.
void write_dataset(const std::filesystem::path& root, bool gzip) {
  const std::string ext = gzip ? ".gz" : "";
  auto labels = [](uint32_t n) {
    auto b = idx_bytes({n}, 0);
    for (size_t i = 8; i < b.size(); ++i)
      b[i] = static_cast<uint8_t>((i - 8) % 10);
    return b;
  };
  write_bytes(root / ("train-images-idx3-ubyte" + ext), idx_bytes({20, 4, 4}, 0), gzip);
  write_bytes(root / ("train-labels-idx1-ubyte" + ext), labels(20), gzip);
  write_bytes(root / ("t10k-images-idx3-ubyte" + ext), idx_bytes({6, 4, 4}, 100), gzip);
  write_bytes(root / ("t10k-labels-idx1-ubyte" + ext), labels(6), gzip);
}

std::shared_ptr<ardkit::DataSource> idx(const std::filesystem::path& root,
                                        std::map<std::string, ardkit::Value> extra = {}) {
  extra["root"] = root.string();
  if (!extra.count("validation"))
    extra["validation"] = int64_t{4};
  return test::make<ardkit::DataSource>(PluginKind::data, "idx", extra);
}

}  // namespace

TEST_CASE("idx reads gzipped and plain files identically, with splits") {
  for (bool gzip : {true, false}) {
    CAPTURE(gzip);
    test::TempDir dir;
    write_dataset(dir.path, gzip);
    auto data = idx(dir.path);
    CHECK(data->spec().height == 4);
    CHECK(data->spec().channels == 1);
    CHECK(data->size(Split::train) == 16);
    CHECK(data->size(Split::validation) == 4);
    CHECK(data->size(Split::test) == 6);
    const auto test_batch =
        data->get(Split::test, torch::arange(0, 6), ardkit::Augmentation::none());
    CHECK(test_batch.x.sizes() == std::vector<int64_t>{6, 1, 4, 4});
    CHECK(test_batch.x[0][0][0][0].item<float>() == doctest::Approx(100.0 / 255));
    CHECK(test_batch.y[3].item<int64_t>() == 3);
    CHECK(test_batch.x.max().item<float>() <= 1.0f);
    // Train and validation partition the training file: all 20 first pixels appear exactly once.
    const auto train = data->get(Split::train, torch::arange(0, 16), ardkit::Augmentation::none());
    const auto val =
        data->get(Split::validation, torch::arange(0, 4), ardkit::Augmentation::none());
    auto firsts = torch::cat(
        {train.x.select(2, 0).select(2, 0).flatten(), val.x.select(2, 0).select(2, 0).flatten()});
    CHECK(std::get<0>(torch::_unique(firsts)).size(0) == 20);
  }
}

TEST_CASE("idx split is seeded and subsets cut") {
  test::TempDir dir;
  write_dataset(dir.path, true);
  auto first = [&](int64_t seed) {
    return idx(dir.path, {{"split_seed", seed}})
        ->get(Split::validation, torch::arange(0, 4), ardkit::Augmentation::none())
        .x;
  };
  CHECK(torch::equal(first(1), first(1)));
  CHECK_FALSE(torch::equal(first(1), first(2)));
  auto small = idx(dir.path, {{"train_subset", int64_t{5}}, {"test_subset", int64_t{2}}});
  CHECK(small->size(Split::train) == 5);
  CHECK(small->size(Split::test) == 2);
}

TEST_CASE("idx: missing, truncated and malformed files are clear errors") {
  test::TempDir dir;
  auto m = error_of([&] { idx(dir.path); }, ardkit::ErrorKind::config);
  CHECK(contains(m, "train-images-idx3-ubyte.gz not found"));
  CHECK(contains(m, "apt-get install dataset-fashion-mnist"));

  write_dataset(dir.path, false);
  auto bytes = idx_bytes({20, 4, 4}, 0);
  bytes.resize(bytes.size() - 10);
  write_bytes(dir / "train-images-idx3-ubyte", bytes, false);
  m = error_of([&] { idx(dir.path); }, ardkit::ErrorKind::runtime);
  CHECK(contains(m, "truncated: the header promises 320 bytes of data, the file holds 310"));

  write_bytes(dir / "train-images-idx3-ubyte", idx_bytes({20}, 0), false);
  CHECK(contains(error_of([&] { idx(dir.path); }, ardkit::ErrorKind::runtime), "expected 3"));

  // A gzip stream cut in the middle.
  write_dataset(dir.path, false);
  std::filesystem::remove(dir / "train-images-idx3-ubyte");
  write_bytes(dir / "train-images-idx3-ubyte.gz", idx_bytes({20, 4, 4}, 0), true);
  const auto size = std::filesystem::file_size(dir / "train-images-idx3-ubyte.gz");
  std::filesystem::resize_file(dir / "train-images-idx3-ubyte.gz", size / 2);
  CHECK(contains(error_of([&] { idx(dir.path); }, ardkit::ErrorKind::runtime),
                 "train-images-idx3-ubyte.gz"));

  write_dataset(dir.path, true);
  CHECK(contains(error_of(
                     [&] {
                       idx(dir.path, {{"validation", int64_t{20}}});
                     },
                     ardkit::ErrorKind::config),
                 "leaves no training samples"));
  CHECK(contains(error_of(
                     [&] {
                       idx(dir.path, {{"num_classes", int64_t{5}}});
                     },
                     ardkit::ErrorKind::config),
                 "labels go up to 9"));
}

TEST_CASE("synthetic data is deterministic in its own seed") {
  auto a = test::make<ardkit::DataSource>(PluginKind::data, "synthetic", {{"seed", int64_t{3}}});
  auto b = test::make<ardkit::DataSource>(PluginKind::data, "synthetic", {{"seed", int64_t{3}}});
  auto c = test::make<ardkit::DataSource>(PluginKind::data, "synthetic", {{"seed", int64_t{4}}});
  const auto idx = torch::arange(0, 32);
  CHECK(torch::equal(a->get(Split::test, idx, ardkit::Augmentation::none()).x,
                     b->get(Split::test, idx, ardkit::Augmentation::none()).x));
  CHECK_FALSE(torch::equal(a->get(Split::test, idx, ardkit::Augmentation::none()).x,
                           c->get(Split::test, idx, ardkit::Augmentation::none()).x));
  CHECK(a->size(Split::validation) == 64);
}

TEST_CASE("augmentation crops with zero padding and flips, only when asked, only on train") {
  auto data = test::make<ardkit::DataSource>(
      PluginKind::data, "synthetic", {{"crop_padding", int64_t{2}}, {"horizontal_flip", true}});
  const auto idx = torch::arange(0, 64);
  const auto plain = data->get(Split::train, idx, ardkit::Augmentation::none()).x;
  const auto augmented = data->get(Split::train, idx, ardkit::Augmentation::seeded(1)).x;
  CHECK(augmented.sizes() == plain.sizes());
  CHECK_FALSE(torch::equal(plain, augmented));
  // The seed alone decides the augmentation: not the default generator, not the thread.
  torch::manual_seed(99);
  CHECK(torch::equal(augmented, data->get(Split::train, idx, ardkit::Augmentation::seeded(1)).x));
  CHECK_FALSE(
      torch::equal(augmented, data->get(Split::train, idx, ardkit::Augmentation::seeded(2)).x));
  CHECK(torch::equal(data->get(Split::test, idx, ardkit::Augmentation::seeded(1)).x,
                     data->get(Split::test, idx, ardkit::Augmentation::none()).x));
  // A flip alone is exactly a mirror image.
  ardkit::AugmentOptions flip_only{0, true};
  const auto flipped =
      ardkit::augment(plain, flip_only, at::make_generator<at::CPUGeneratorImpl>(2));
  for (int64_t i = 0; i < 64; ++i) {
    const bool same = torch::equal(flipped[i], plain[i]);
    CHECK((same || torch::equal(flipped[i], plain[i].flip({2}))));
  }
}

namespace {

// Serves sample i as an image filled with i; refuses the batch holding `bad` (when >= 0).
class CountingData : public ardkit::DataSource {
 public:
  explicit CountingData(int64_t bad) : bad_(bad) {}
  ardkit::DataSpec spec() const override {
    return {1, 2, 2, 10, "counting"};
  }
  int64_t size(ardkit::Split) const override {
    return 20;
  }
  ardkit::Batch get(ardkit::Split, const torch::Tensor& indices, ardkit::Augmentation) override {
    ++calls;
    if (bad_ >= 0 && indices.eq(bad_).any().item<bool>())
      ardkit::throw_runtime_error("sample " + std::to_string(bad_) + " is unreadable");
    return {indices.to(torch::kFloat).view({-1, 1, 1, 1}).expand({-1, 1, 2, 2}).contiguous(),
            indices.remainder(10)};
  }
  std::atomic<int> calls{0};

 private:
  int64_t bad_;
};

}  // namespace

TEST_CASE("the prefetcher serves batches in order from its first step, and errors at theirs") {
  CountingData data(-1);
  const auto order = torch::arange(19, -1, -1, torch::kLong);  // 19, 18, ..., 0
  ardkit::BatchPrefetcher batches(data, order, 6, /*first_step=*/1, 0, 0);
  CHECK(batches.steps() == 4);  // 6 + 6 + 6 + 2
  for (const int64_t first : {13, 7, 1}) {
    const auto batch = batches.next();
    CAPTURE(first);
    CHECK(batch.x.size(0) == std::min<int64_t>(6, first + 1));
    CHECK(batch.x[0][0][0][0].item<int64_t>() == first);
  }
  CHECK(data.calls == 3);

  // The batch holding sample 7 (the third) fails: the two before it arrive, then its error.
  CountingData broken(7);
  ardkit::BatchPrefetcher failing(broken, order, 6, 0, 0, 0);
  CHECK(failing.next().x[0][0][0][0].item<int64_t>() == 19);
  CHECK(failing.next().x[0][0][0][0].item<int64_t>() == 13);
  const auto message = test::error_of([&] { failing.next(); }, ardkit::ErrorKind::runtime);
  CHECK(message.find("sample 7 is unreadable") != std::string::npos);

  // Left after one batch, as an interrupted epoch leaves it: destruction does not wait for
  // batches nobody asks for.
  CountingData lazy(-1);
  {
    ardkit::BatchPrefetcher abandoned(lazy, order, 2, 0, 0, 0);
    abandoned.next();
  }
  CHECK(lazy.calls <= 3);  // the one taken, at most one prefetched, at most one in flight
}
