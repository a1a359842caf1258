// Data plugin `synthetic`: a small deterministic classification task for tests and smoke runs.
// Each class has a random blocky prototype image; samples are the prototype blended with noise.
#include <ATen/CPUGeneratorImpl.h>

#include <ardkit/ardkit.hpp>
#include <ardkit/in_memory_data.hpp>

namespace {

using ardkit::Params;

std::pair<torch::Tensor, torch::Tensor> draw(const torch::Tensor& prototypes, int64_t n,
                                             double noise, at::Generator& generator) {
  const int64_t classes = prototypes.size(0);
  auto y = torch::randint(0, classes, {n}, generator, torch::TensorOptions().dtype(torch::kLong));
  auto u = torch::rand({n, prototypes.size(1), prototypes.size(2), prototypes.size(3)}, generator);
  auto x = (prototypes.index_select(0, y) * (1.0 - noise) + u * noise).clamp(0.0, 1.0);
  return {x, y};
}

std::shared_ptr<ardkit::Component> make(const Params& p, const ardkit::BuildContext& c) {
  auto generator =
      at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(p.get_int("seed")));
  ardkit::DataSpec spec;
  spec.channels = p.get_int("channels");
  spec.height = p.get_int("height");
  spec.width = p.get_int("width");
  spec.num_classes = p.get_int("num_classes");
  spec.name = "synthetic";
  // Blocky binary prototypes: a random on/off 4x4 pattern scaled up to the image size, so that
  // classes differ at the coarse scale a pooled CNN sees and are learnable within a few steps.
  const auto coarse =
      torch::rand({spec.num_classes, spec.channels, 4, 4}, generator).gt(0.5).to(torch::kFloat);
  const auto prototypes = torch::nn::functional::interpolate(
      coarse, torch::nn::functional::InterpolateFuncOptions()
                  .size(std::vector<int64_t>{spec.height, spec.width})
                  .mode(torch::kNearest));
  const double noise = p.get_real("noise");
  auto [train_x, train_y] = draw(prototypes, p.get_int("train_size"), noise, generator);
  auto [test_x, test_y] = draw(prototypes, p.get_int("test_size"), noise, generator);
  // The training set is drawn either way (the test set's draws follow it), but a data-free run's
  // source does not hold it.
  if (!c.train_split)
    train_x = train_y = torch::Tensor();
  return std::make_shared<ardkit::InMemoryData>(spec, train_x, train_y, test_x, test_y,
                                                ardkit::split_options_from(p),
                                                ardkit::augment_options_from(p));
}

ardkit::ParamSchema schema() {
  using namespace ardkit::param;
  ardkit::ParamSchema s = {
      integer("num_classes", 10).at_least(2).at_most(100000).help("number of classes"),
      integer("channels", 1).at_least(1).at_most(64).help("image channels"),
      integer("height", 8)
          .at_least(4)
          .at_most(4096)
          .help("image height (multiple of 4 for small_cnn)"),
      integer("width", 8).at_least(4).at_most(4096).help("image width"),
      integer("train_size", 512)
          .at_least(1)
          .at_most(10000000)
          .help("training samples (validation is carved out of these)"),
      integer("test_size", 256).at_least(1).at_most(10000000).help("test samples"),
      real("noise", 0.3)
          .at_least(0)
          .at_most(1)
          .help("weight of uniform noise blended into each prototype"),
      integer("seed", 0).at_least(0).help(
          "seed of prototypes and samples (independent of the run seed)"),
  };
  ardkit::add_split_params(s, 64);
  ardkit::add_augment_params(s);
  return s;
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest.add(ardkit::PluginKind::data, "synthetic", "1.0.0",
               "deterministic tiny classification data (class prototypes plus noise) for tests",
               schema(), make);
}
