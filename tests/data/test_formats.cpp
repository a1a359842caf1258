// CIFAR-10/100 and STL-10 binary formats on generated files (no real data is needed), class
// remapping and stratified subsets.
#include <torch/torch.h>

#include <ardkit/ardkit.hpp>
#include <fstream>

#include "test_util.hpp"

using ardkit::PluginKind;
using ardkit::Split;
using test::contains;
using test::error_of;

namespace {

// CIFAR records: label byte(s), then red, green, blue planes of 32x32. Pixel (c, h, w) of record
// r holds (r * 7 + c * 3 + h + w) mod 256, so layout mistakes change values.
uint8_t cifar_pixel(int64_t r, int64_t c, int64_t h, int64_t w) {
  return static_cast<uint8_t>((r * 7 + c * 3 + h + w) % 256);
}

void write_cifar(const std::filesystem::path& file, int64_t first, int64_t n,
                 std::vector<uint8_t> (*labels)(int64_t)) {
  std::ofstream out(file, std::ios::binary);
  for (int64_t r = first; r < first + n; ++r) {
    for (uint8_t l : labels(r))
      out.put(static_cast<char>(l));
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t h = 0; h < 32; ++h)
        for (int64_t w = 0; w < 32; ++w)
          out.put(static_cast<char>(cifar_pixel(r, c, h, w)));
  }
}

std::vector<uint8_t> cifar10_label(int64_t r) {
  return {static_cast<uint8_t>(r % 10)};
}
std::vector<uint8_t> cifar100_labels(int64_t r) {
  return {static_cast<uint8_t>(r % 20), static_cast<uint8_t>(r % 100)};  // coarse, fine
}

std::shared_ptr<ardkit::DataSource> data(const std::string& plugin,
                                         std::map<std::string, ardkit::Value> params) {
  return test::make<ardkit::DataSource>(PluginKind::data, plugin, params);
}

}  // namespace

TEST_CASE("cifar10: five training batches and a test batch, planar RGB, labels") {
  test::TempDir dir;
  for (int b = 0; b < 5; ++b)
    write_cifar(dir / ("data_batch_" + std::to_string(b + 1) + ".bin"), b * 20, 20, cifar10_label);
  write_cifar(dir / "test_batch.bin", 1000, 30, cifar10_label);
  auto d = data("cifar", {{"root", dir.path.string()}, {"validation", int64_t{0}}});
  CHECK(d->spec().channels == 3);
  CHECK(d->spec().num_classes == 10);
  CHECK(d->spec().name == "cifar10");
  CHECK(d->size(Split::train) == 100);
  CHECK(d->size(Split::test) == 30);
  const auto b =
      d->get(Split::train, torch::tensor({0, 57}, torch::kLong), ardkit::Augmentation::none());
  CHECK(b.y[1].item<int64_t>() == 7);
  for (auto [c, h, w] : {std::tuple{0, 0, 0}, {1, 5, 9}, {2, 31, 30}})
    CHECK(b.x[1][c][h][w].item<float>() == doctest::Approx(cifar_pixel(57, c, h, w) / 255.0));
  const auto t =
      d->get(Split::test, torch::tensor({3}, torch::kLong), ardkit::Augmentation::none());
  CHECK(t.x[0][2][4][1].item<float>() == doctest::Approx(cifar_pixel(1003, 2, 4, 1) / 255.0));
  // The CIFAR defaults are the literature's augmentation: crop with 4 padding, flip.
  const auto p = test::params_for(PluginKind::data, "cifar");
  CHECK(p.get_int("crop_padding") == 4);
  CHECK(p.get_bool("horizontal_flip"));
}

TEST_CASE("cifar100: fine or coarse labels, truncated, missing and mislabelled files") {
  test::TempDir dir;
  write_cifar(dir / "train.bin", 0, 200, cifar100_labels);
  write_cifar(dir / "test.bin", 0, 10, cifar100_labels);
  auto fine = data("cifar", {{"variant", std::string("cifar100")},
                             {"root", dir.path.string()},
                             {"validation", int64_t{0}}});
  CHECK(fine->spec().num_classes == 100);
  CHECK(fine->get(Split::train, torch::tensor({150}, torch::kLong), ardkit::Augmentation::none())
            .y[0]
            .item<int64_t>() == 50);
  auto coarse = data("cifar", {{"variant", std::string("cifar100")},
                               {"labels", std::string("coarse")},
                               {"root", dir.path.string()},
                               {"validation", int64_t{0}}});
  CHECK(coarse->spec().num_classes == 20);
  CHECK(coarse->get(Split::train, torch::tensor({150}, torch::kLong), ardkit::Augmentation::none())
            .y[0]
            .item<int64_t>() == 10);

  // A cut file, a CIFAR-100 file read as CIFAR-10, a missing file.
  {
    std::ifstream in(dir / "train.bin", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(dir / "train.bin", std::ios::binary) << bytes.substr(0, bytes.size() - 100);
  }
  const auto cut = error_of(
      [&] {
        data("cifar", {{"variant", std::string("cifar100")}, {"root", dir.path.string()}});
      },
      ardkit::ErrorKind::runtime);
  CHECK(contains(cut, "train.bin: truncated or not a cifar100 binary file"));
  test::TempDir wrong;
  for (int b = 0; b < 5; ++b)
    write_cifar(wrong / ("data_batch_" + std::to_string(b + 1) + ".bin"), 0, 3, cifar10_label);
  write_cifar(wrong / "test_batch.bin", 0, 4, [](int64_t) { return std::vector<uint8_t>{42}; });
  CHECK(contains(error_of(
                     [&] {
                       data("cifar", {{"root", wrong.path.string()}, {"validation", int64_t{0}}});
                     },
                     ardkit::ErrorKind::runtime),
                 "label 42 in a 10-class file"));
  const auto missing = error_of(
      [&] {
        data("cifar", {{"root", (dir / "nowhere").string()}});
      },
      ardkit::ErrorKind::config);
  CHECK(contains(missing, "data_batch_1.bin not found"));
}

TEST_CASE("stl10: column-major planes become NCHW and labels 1..10 become 0..9") {
  test::TempDir dir;
  auto write = [&](const std::string& prefix, int64_t n, bool short_labels) {
    std::ofstream x(dir / (prefix + "_X.bin"), std::ios::binary);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < 3; ++c)
        for (int64_t w = 0; w < 96; ++w)  // the file walks columns first
          for (int64_t h = 0; h < 96; ++h)
            x.put(static_cast<char>((i + c * 5 + h * 2 + w) % 256));
    std::ofstream y(dir / (prefix + "_y.bin"), std::ios::binary);
    for (int64_t i = 0; i < n - (short_labels ? 1 : 0); ++i)
      y.put(static_cast<char>(1 + i % 10));
  };
  write("train", 12, false);
  write("test", 5, false);
  auto d = data("stl10", {{"root", dir.path.string()}, {"validation", int64_t{2}}});
  CHECK(d->spec().height == 96);
  CHECK(d->size(Split::train) == 10);
  const auto t =
      d->get(Split::test, torch::tensor({3}, torch::kLong), ardkit::Augmentation::none());
  CHECK(t.y[0].item<int64_t>() == 3);
  CHECK(t.x[0][1][10][4].item<float>() == doctest::Approx(((3 + 5 + 20 + 4) % 256) / 255.0));
  CHECK(t.x[0][2][0][50].item<float>() == doctest::Approx(((3 + 10 + 0 + 50) % 256) / 255.0));
  write("test", 5, true);
  CHECK(contains(error_of(
                     [&] {
                       data("stl10", {{"root", dir.path.string()}});
                     },
                     ardkit::ErrorKind::runtime),
                 "5 images but 4 labels"));
}

TEST_CASE("class_map merges, reorders and drops classes and stratified subsets balance classes") {
  // Six classes, so there is something to merge, reorder and drop.
  auto base = data("synthetic", {{"num_classes", int64_t{6}}, {"validation", int64_t{0}}});
  auto mapped = data("synthetic", {{"num_classes", int64_t{6}},
                                   {"validation", int64_t{0}},
                                   {"class_map", std::vector<int64_t>{1, 0, 1, -1, 2, -1}}});
  CHECK(mapped->spec().num_classes == 3);
  const auto all = [](ardkit::DataSource& d, Split s) {
    return d.get(s, torch::arange(d.size(s)), ardkit::Augmentation::none());
  };
  const auto before = all(*base, Split::test).y;
  const auto after = all(*mapped, Split::test);
  CHECK(after.y.size(0) == before.lt(3).sum().item<int64_t>() + before.eq(4).sum().item<int64_t>());
  CHECK(after.y.eq(0).sum().item<int64_t>() == before.eq(1).sum().item<int64_t>());
  CHECK(after.y.eq(1).sum().item<int64_t>() ==
        before.eq(0).sum().item<int64_t>() + before.eq(2).sum().item<int64_t>());
  CHECK(contains(error_of(
                     [&] {
                       data("synthetic", {{"num_classes", int64_t{6}},
                                          {"class_map", std::vector<int64_t>{0, 1}}});
                     },
                     ardkit::ErrorKind::config),
                 "class_map has 2 entries but the data has 6 classes"));

  auto first = data("synthetic", {{"num_classes", int64_t{6}}, {"test_subset", int64_t{12}}});
  auto strat = data("synthetic", {{"num_classes", int64_t{6}},
                                  {"test_subset", int64_t{12}},
                                  {"subset", std::string("stratified")}});
  const auto counts = torch::bincount(all(*strat, Split::test).y, {}, 6);
  CHECK(torch::equal(counts, torch::full({6}, 2, torch::kLong)));
  CHECK(all(*first, Split::test).y.size(0) == 12);
  CHECK(torch::equal(all(*first, Split::test).y, before.slice(0, 0, 12)));
}
