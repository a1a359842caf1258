// Weight averaging of the student ([train] average_from): the running mean of the epoch-end
// weights, BatchNorm statistics recomputed as a cumulative average, checkpointed so that a
// resumed run averages the same epochs, and evaluated as the "averaged" checkpoint.
#include <torch/torch.h>

#include <ardkit/host/experiment_setup.hpp>
#include <ardkit/host/weight_average.hpp>
#include <ardkit/interrupt.hpp>
#include <ardkit/nn/batch_norm.hpp>
#include <ardkit/weights.hpp>

#include "experiment_run.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;

namespace {

// One BatchNorm layer between two linear maps of a 1x2x2 input.
class BnNet : public ardkit::Model {
 public:
  BnNet()
      : conv_(register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 3, 1)))),
        bn_(register_module("bn", ardkit::nn::BatchNorm2d(3))),
        fc_(register_module("fc", torch::nn::Linear(12, 2))) {}
  ardkit::ModelOutput forward_impl(const torch::Tensor& x) override {
    const auto h = bn_(conv_(x)).flatten(1);
    return {fc_(h), h};
  }
  int64_t feature_dim() const override {
    return 12;
  }
  ardkit::nn::BatchNorm2d bn() const {
    return bn_;
  }

 private:
  torch::nn::Conv2d conv_;
  ardkit::nn::BatchNorm2d bn_;
  torch::nn::Linear fc_;
};

void set_parameters(ardkit::Model& model, double value) {
  torch::NoGradGuard no_grad;
  for (auto& p : model.parameters())
    p.fill_(value);
}

const char* kRun = R"(
[run]
seed = 3
deterministic = true
[data]
plugin = "synthetic"
train_size = 192
validation = 0
test_size = 32
[student]
plugin = "small_cnn"
conv1 = 4
conv2 = 4
hidden = 16
batch_norm = true
[objective]
plugin = "natural"
[optimizer]
lr = 0.05
[train]
epochs = 3
batch_size = 32
log_every = 1
validate_every = 0
[[eval]]
plugin = "fgsm"
eps = 0.1
)";

std::vector<torch::Tensor> checkpoint_parameters(const test::ExperimentRun& run,
                                                 const std::string& which) {
  ardkit::TrainSetup setup = ardkit::build_components(run.experiment);
  ardkit::load_weights(*setup.student, run.run->checkpoint_path(which));
  return setup.student->parameters();
}

}  // namespace

TEST_CASE("the weight average is the mean of the epoch-end weights from average_from on") {
  BnNet net;
  ardkit::WeightAverage average(net, 1);
  for (int64_t epoch = 0; epoch < 4; ++epoch) {  // weights 0, 1, 2, 3 after epochs 0..3
    set_parameters(net, static_cast<double>(epoch));
    average.end_epoch(epoch);
  }
  CHECK(average.count() == 3);  // epochs 1, 2, 3
  // Through a checkpoint: a resumed run continues the same mean.
  torch::serialize::OutputArchive out;
  average.save(out);
  std::ostringstream bytes;
  out.save_to(bytes);
  BnNet other;
  ardkit::WeightAverage restored(other, 1);
  torch::serialize::InputArchive in;
  std::istringstream read(bytes.str());
  in.load_from(read);
  restored.load(in);
  CHECK(restored.count() == 3);
  const auto batch = torch::randn({8, 1, 2, 2});
  restored.apply([&] { return ardkit::Batch{batch, torch::zeros({8}, torch::kLong)}; }, 1);
  for (const auto& p : other.parameters())
    CHECK(torch::allclose(p, torch::full_like(p, 2.0)));  // (1 + 2 + 3) / 3
  ardkit::WeightAverage off(net, -1);
  off.end_epoch(5);
  CHECK_FALSE(off.active());
  CHECK(off.count() == 0);
}

TEST_CASE("BatchNorm statistics are recomputed as the average over the batches") {
  BnNet net;
  net.eval();
  std::vector<torch::Tensor> batches;
  for (int i = 0; i < 3; ++i)
    batches.push_back(torch::randn({8, 1, 2, 2}) * (i + 1) + i);
  size_t next = 0;
  auto bn = net.bn();
  bn->running_mean.fill_(7);  // stale statistics: must not survive
  ardkit::recompute_batchnorm(
      net,
      [&] {
        return ardkit::Batch{batches[next++], torch::zeros({8}, torch::kLong)};
      },
      3);
  CHECK(next == 3);
  // The conv's outputs, batch by batch: their per-channel mean and unbiased variance, averaged.
  torch::Tensor mean = torch::zeros({3}), var = torch::zeros({3});
  {
    torch::NoGradGuard no_grad;
    auto conv = net.named_children()["conv"]->as<torch::nn::Conv2d>();
    for (const auto& b : batches) {
      const auto h = conv->forward(b);
      mean += h.mean({0, 2, 3}) / 3;
      var += h.var({0, 2, 3}, /*unbiased=*/true) / 3;
    }
  }
  CHECK(torch::allclose(bn->running_mean, mean, 1e-5, 1e-6));
  CHECK(torch::allclose(bn->running_var, var, 1e-5, 1e-6));
  CHECK(bn->options.momentum().value() == doctest::Approx(0.1));  // restored
  CHECK_FALSE(net.is_training());                                 // mode restored
}

TEST_CASE("a run with average_from evaluates its averaged weights, and resumes to the same") {
  test::ExperimentRun whole(kRun, {"train.average_from=1"}, "average.toml");
  REQUIRE(whole.train() == ardkit::TrainOutcome::completed);
  REQUIRE(fs::exists(whole.run->checkpoint_path("averaged")));
  const auto results = whole.results();
  REQUIRE(results.contains("averaged"));
  CHECK(results["averaged"].contains("clean_acc"));
  CHECK(results["averaged"]["attacks"].contains("fgsm"));
  CHECK(whole.lines("epoch").back()["averaged_epochs"] == 2);  // epochs 1 and 2 (0-based)

  // The mean of the weights after epochs 2 and 3 (1-based): a 2-epoch run of the same seed
  // stops where the 3-epoch run was after its second epoch.
  test::ExperimentRun two(kRun, {"train.epochs=2"}, "two.toml");
  REQUIRE(two.train() == ardkit::TrainOutcome::completed);
  const auto after2 = checkpoint_parameters(two, "last");
  const auto after3 = checkpoint_parameters(whole, "last");
  const auto averaged = checkpoint_parameters(whole, "averaged");
  REQUIRE(averaged.size() == after3.size());
  for (size_t i = 0; i < averaged.size(); ++i)
    CHECK(torch::allclose(averaged[i], (after2[i] + after3[i]) / 2, 1e-5, 1e-6));

  // Interrupted mid-run and resumed: the same averaged weights.
  test::ExperimentRun split(
      std::string(kRun) + "[[hook]]\nplugin = \"interrupt_after\"\nstep = 9\n",
      {"train.average_from=1"}, "split.toml");
  ardkit::install_interrupt_handlers();
  REQUIRE(split.train() == ardkit::TrainOutcome::interrupted);
  ardkit::clear_interrupt();
  REQUIRE(split.train() == ardkit::TrainOutcome::completed);
  const auto resumed = checkpoint_parameters(split, "averaged");
  for (size_t i = 0; i < averaged.size(); ++i)
    CHECK(torch::equal(resumed[i], averaged[i]));

  // Without averaging there is no such checkpoint, and the run id is what it always was.
  test::ExperimentRun plain(kRun, {}, "plain.toml");
  test::ExperimentRun explicit_off(kRun, {"train.average_from=-1"}, "plain.toml");
  CHECK(plain.experiment.config.run_id() == explicit_off.experiment.config.run_id());
  CHECK(plain.experiment.config.run_id() != whole.experiment.config.run_id());
}
