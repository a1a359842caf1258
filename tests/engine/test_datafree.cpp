// The data-free path of the engine: no training image is read, generator state is checkpointed
// and resumes bit-exactly, sample grids are written, and the adaptive balance, the ITA hook and
// the BatchNorm taps follow their documented rules.
#include <torch/torch.h>

#include <ardkit/host/data_free.hpp>
#include <ardkit/host/experiment_setup.hpp>
#include <ardkit/host/image_grid.hpp>
#include <ardkit/host/loss_balance.hpp>
#include <ardkit/interrupt.hpp>
#include <csignal>
#include <fstream>
#include <nlohmann/json.hpp>

#include "experiment_run.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;

namespace {

// 16x16 test images only (train_forbidden throws on any training access), a fixed BatchNorm
// teacher, ARD on the generator's batches.
const char* kDataFree = R"(
[run]
seed = 5
deterministic = true
[data]
plugin = "train_forbidden"
[teacher]
plugin = "bn_teacher"
[student]
plugin = "small_cnn"
conv1 = 8
conv2 = 8
hidden = 32
batch_norm = true
[generator]
plugin = "dfad"
latent_dim = 16
width = 8
iterations = 3
student_steps = 2
[objective]
plugin = "ard"
temperature = 4
[attack]
plugin = "pgd"
eps = 0.1
steps = 2
[optimizer]
lr = 0.05
[train]
epochs = 2
batch_size = 16
log_every = 1
eval_points = 32
[[eval]]
plugin = "pgd"
name = "pgd3"
eps = 0.1
steps = 3
)";

struct Run : test::ExperimentRun {
  explicit Run(const std::vector<std::string>& overrides, const std::string& extra = "")
      : ExperimentRun(std::string(kDataFree) + extra, overrides, "df.toml") {}
};

// Every tensor of a checkpoint's sub-archive, recursively, by dotted name. Optimizer state is
// keyed by parameter addresses ("0x55..."), which differ between processes: each address is
// replaced by its order of first appearance.
void collect(torch::serialize::InputArchive& archive, const std::string& prefix,
             std::map<std::string, torch::Tensor>& out, std::map<std::string, std::string>& ids) {
  for (auto key : archive.keys()) {
    torch::Tensor t;
    torch::serialize::InputArchive sub;
    std::string name = key;
    if (name.rfind("0x", 0) == 0) {
      if (!ids.count(name))
        ids[name] = "#" + std::to_string(ids.size());
      name = ids[name];
    }
    if (archive.try_read(key, t))
      out[prefix + name] = t;
    else if (archive.try_read(key, sub))
      collect(sub, prefix + name + ".", out, ids);
  }
}

std::map<std::string, torch::Tensor> checkpoint(const fs::path& file, const std::string& part) {
  torch::serialize::InputArchive archive, sub;
  archive.load_from(file.string());
  archive.read(part, sub);
  std::map<std::string, torch::Tensor> out;
  std::map<std::string, std::string> ids;
  collect(sub, "", out, ids);
  return out;
}

// Equal tensors under equal names; optimizer state (whose keys are parameter addresses, in no
// stable order) as equal collections of tensors.
void check_same(const std::map<std::string, torch::Tensor>& a,
                const std::map<std::string, torch::Tensor>& b) {
  REQUIRE(a.size() == b.size());
  std::vector<torch::Tensor> state_a, state_b;
  for (const auto& [key, value] : a) {
    const std::string key_shown = key;  // CAPTURE cannot capture a binding (C++17)
    CAPTURE(key_shown);
    REQUIRE(b.count(key));
    if (key.find('#') != std::string::npos) {
      state_a.push_back(value);
      state_b.push_back(b.at(key));
    } else {
      CHECK(torch::equal(value, b.at(key)));
    }
  }
  const auto order = [](std::vector<torch::Tensor>& v) {
    std::sort(v.begin(), v.end(), [](const torch::Tensor& x, const torch::Tensor& y) {
      return std::make_pair(x.numel(), x.to(torch::kDouble).sum().item<double>()) <
             std::make_pair(y.numel(), y.to(torch::kDouble).sum().item<double>());
    });
  };
  order(state_a);
  order(state_b);
  for (size_t i = 0; i < state_a.size(); ++i)
    CHECK(torch::equal(state_a[i], state_b[i]));
}

// PNG width and height from the IHDR chunk.
std::pair<uint32_t, uint32_t> png_size(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::vector<unsigned char> head(24);
  in.read(reinterpret_cast<char*>(head.data()), 24);
  REQUIRE(in.gcount() == 24);
  REQUIRE(head[1] == 'P');
  REQUIRE(head[2] == 'N');
  REQUIRE(head[3] == 'G');
  const auto be = [&](int at) {
    return (uint32_t(head[at]) << 24) | (uint32_t(head[at + 1]) << 16) |
           (uint32_t(head[at + 2]) << 8) | uint32_t(head[at + 3]);
  };
  return {be(16), be(20)};
}

}  // namespace

TEST_CASE("a data-free run trains and evaluates without touching the training split") {
  Run r({});
  REQUIRE(r.train() == ardkit::TrainOutcome::completed);
  const auto results = r.results();
  CHECK(results["data_free"]["generator"] == "dfad");
  CHECK(results["data_free"]["training_images_read"] == false);
  CHECK(results["data_free"]["selection"] == "none");
  CHECK_FALSE(results.contains("best"));  // nothing selected a best checkpoint
  const auto steps = r.lines("step");
  REQUIRE(steps.size() == 12);  // 2 epochs x 3 iterations x 2 student steps
  // The budget: one DFAD update per iteration (after its 2 student steps), 16 images each; the
  // teacher sees each update's images (DFAD's discrepancy), each student batch to label it, and
  // again in ARD's loss.
  const auto budget = results["budget"];
  CHECK(budget["student_steps"] == 12);
  CHECK(budget["student_images"] == 12 * 16);
  CHECK(budget["generator_updates"] == 6);
  CHECK(budget["generator_images"] == 6 * 16);
  CHECK(budget["teacher_queries"] == 6 * 16 + 12 * 16 + 12 * 16);
  for (const char* key : {"gen.discrepancy", "gen.loss", "syn.mean", "syn.std",
                          "syn.teacher_confidence", "syn.class_entropy", "kl_adv"}) {
    CAPTURE(key);
    CHECK(steps.back().contains(key));
  }
  CHECK(steps.back()["gen.discrepancy"].get<double>() <= 0);  // -L1: maximized discrepancy
  // 16 images of 16x16 in a 4-wide grid with one-pixel gaps: 4 * 17 + 1 = 69 square.
  for (const char* grid : {"epoch_001.png", "epoch_002.png"}) {
    CAPTURE(grid);
    const auto size = png_size(r.run->root() / "samples" / grid);
    CHECK(size.first == 69);
    CHECK(size.second == 69);
  }
  // Asking for real validation reaches the data plugin: this one refuses to load training data.
  Run real({"generator.real_validation=true"});
  CHECK_THROWS_WITH(real.train(), doctest::Contains("built to serve its training split"));
}

TEST_CASE("a data-free run without a teacher is a config error naming [generator]") {
  test::TempDir dir;
  std::string text = kDataFree;
  text.replace(text.find("[teacher]\nplugin = \"bn_teacher\"\n"),
               std::string("[teacher]\nplugin = \"bn_teacher\"\n").size(), "");
  const std::string ard = "plugin = \"ard\"\ntemperature = 4\n";
  text.replace(text.find(ard), ard.size(), "plugin = \"pgd_at\"\n");
  test::write_text(dir / "df.toml", text);
  auto experiment = ardkit::load_experiment(dir / "df.toml", {}, {ARDKIT_TEST_PLUGIN_DIR "/good"});
  CHECK_THROWS_WITH(ardkit::build_components(experiment),
                    doctest::Contains("[generator] synthesises training data from a teacher"));
}

TEST_CASE("generators refuse teachers and layers they cannot use, before any step") {
  // BatchNorm matching needs a teacher with BatchNorm layers.
  Run no_bn({"generator.plugin=\"bn_stats\"", "generator.latent_dim=16",
             "teacher.plugin=\"fixed_linear\""});
  CHECK_THROWS_WITH(no_bn.train(), doctest::Contains("has no BatchNorm layer"));
  CHECK_FALSE(fs::exists(no_bn.run->checkpoint_path("last")));
  // Attention transfer pairs layers one to one: two lists of different lengths are refused; a
  // layer given on one side needs a map of its size on the other (the student's block2 is H/4,
  // the teacher's only map H/2).
  Run unpaired({"generator.plugin=\"zskt\"", "generator.latent_dim=16",
                "generator.student_taps=[\"block1\", \"block2\"]",
                "generator.teacher_taps=[\"block\"]"});
  CHECK_THROWS_WITH(unpaired.train(), doctest::Contains("give the same number of layers"));
  Run no_size({"generator.plugin=\"zskt\"", "generator.latent_dim=16",
               "generator.student_taps=[\"block2\"]"});
  CHECK_THROWS_WITH(no_size.train(), doctest::Contains("no single map of that size"));
  // A latent-optimizing generator has no fresh samples to give.
  Run fresh({"generator.plugin=\"bn_stats\"", "generator.latent_dim=16",
             "generator.student_batch=\"fresh\""});
  CHECK_THROWS_WITH(fresh.train(), doctest::Contains("set student_batch = \"pool\""));
}

TEST_CASE("data-free runs resume bit-exactly: generator, optimizer, pool and student") {
  struct Variant {
    const char* name;
    std::vector<std::string> overrides;
    int64_t interrupt_at;
  };
  const std::vector<Variant> variants = {
      // student_first, fresh samples; interrupted between the two student steps of an iteration
      {"dfad", {}, 3},
      // re-initialised before every round of updates, latent optimized, a pool of synthesised
      // batches; adaptive balance (its running magnitudes are state too); interrupted in epoch 2
      {"bn_stats",
       {"generator.plugin=\"bn_stats\"", "generator.synthesis_steps=3",
        "generator.reinitialize=\"round\"", "generator.generator_steps=2", "generator.iterations=2",
        "generator.student_steps=2", "generator.balance=\"adaptive\""},
       5},
      // the last update's latent regenerated, attention transfer added to the student's loss
      {"zskt",
       {"generator.plugin=\"zskt\"", "generator.student_steps=2", "generator.iterations=3",
        "generator.student_taps=[\"block1\"]"},
       3},
  };
  for (const auto& v : variants) {
    CAPTURE(v.name);
    auto overrides = v.overrides;
    if (std::string(v.name) != "dfad")
      overrides.push_back("generator.latent_dim=16");
    Run whole(overrides);
    REQUIRE(whole.train() == ardkit::TrainOutcome::completed);
    Run split(overrides, "\n[[hook]]\nplugin = \"interrupt_after\"\nstep = " +
                             std::to_string(v.interrupt_at) + "\n");
    ardkit::install_interrupt_handlers();
    REQUIRE(split.train() == ardkit::TrainOutcome::interrupted);
    ardkit::clear_interrupt();
    CHECK_FALSE(fs::exists(split.run->results_path()));
    // The generator's state is in the checkpoint: network, optimizer, pool, last batch.
    const auto state = checkpoint(split.run->checkpoint_path("last"), "generator");
    CHECK(state.count("synthesis_epoch"));
    CHECK(std::any_of(state.begin(), state.end(),
                      [](const auto& kv) { return kv.first.rfind("network.", 0) == 0; }));
    CHECK(std::any_of(state.begin(), state.end(),
                      [](const auto& kv) { return kv.first.rfind("optimizer.", 0) == 0; }));
    REQUIRE(split.train() == ardkit::TrainOutcome::completed);
    const auto a = whole.run->checkpoint_path("last"), b = split.run->checkpoint_path("last");
    check_same(checkpoint(a, "student"), checkpoint(b, "student"));
    check_same(checkpoint(a, "generator"), checkpoint(b, "generator"));
    // The budget counts survive the interrupt: the abandoned step is not counted twice.
    CHECK(whole.results()["budget"] == split.results()["budget"]);
    CHECK(whole.results()["budget"]["teacher_queries"].get<int64_t>() > 0);
    if (std::string(v.name) == "bn_stats") {
      // Each round (an epoch's synthesis, each iteration's updates) left a batch in the pool.
      CHECK(checkpoint(a, "generator").at("pool").size(0) == 2 * (1 + 2));
      const auto step = whole.lines("step").back();
      CHECK(step.contains("gen.w.bn"));
      CHECK(step.contains("gen.bn"));
    }
    if (std::string(v.name) == "zskt")
      CHECK(whole.lines("step").back().contains("gen_attention"));
  }
}

TEST_CASE("FERD's schedule: warmup epochs, the round's best batch, augmented student batches") {
  // One synthesis round of the BN-statistics generator per epoch feeds a one-batch pool.
  const std::vector<std::string> base = {"generator.plugin=\"bn_stats\"", "generator.latent_dim=16",
                                         "generator.iterations=2", "generator.generator_steps=0",
                                         "generator.student_steps=2"};
  const auto with = [&](std::vector<std::string> extra) {
    extra.insert(extra.begin(), base.begin(), base.end());
    return extra;
  };
  // Warmup: the first epoch synthesises and trains no student; the budget says so.
  Run warm(with({"generator.synthesis_steps=2", "generator.warmup_epochs=1"}));
  REQUIRE(warm.train() == ardkit::TrainOutcome::completed);
  const auto steps = warm.lines("step");
  REQUIRE_FALSE(steps.empty());
  for (const auto& line : steps)
    CHECK(line["epoch"] == 2);
  const auto budget = warm.results()["budget"];
  CHECK(budget["student_steps"] == 4);      // epoch 2 only
  CHECK(budget["generator_updates"] == 4);  // both epochs' syntheses
  CHECK(warm.lines("epoch").size() == 2);

  // keep = "best": the pool gets the round's images of the lowest total loss. A run whose
  // synthesis stops after k updates pools update k's images and logs its loss (the first step's
  // gen.loss), so four such runs give every candidate of a four-update round. A generator step
  // of lr 5 makes the losses jump, so the best is not simply the last.
  const std::vector<std::string> jumpy = {"generator.lr=5", "generator.latent_lr=5",
                                          "train.epochs=1"};
  const auto pool_of = [](const Run& r) {
    return checkpoint(r.run->checkpoint_path("last"), "generator").at("pool")[0];
  };
  double lowest = 0;
  int best_k = 0;
  torch::Tensor expected, last_images;
  for (int k = 1; k <= 4; ++k) {
    auto overrides = with({"generator.synthesis_steps=" + std::to_string(k)});
    overrides.insert(overrides.end(), jumpy.begin(), jumpy.end());
    Run prefix(overrides);
    REQUIRE(prefix.train() == ardkit::TrainOutcome::completed);
    const double loss = prefix.lines("step").front()["gen.loss"].get<double>();
    last_images = pool_of(prefix);
    if (k == 1 || loss < lowest) {
      lowest = loss;
      best_k = k;
      expected = pool_of(prefix);
    }
  }
  CAPTURE(best_k);
  REQUIRE_FALSE(torch::equal(expected, last_images));  // else keep = "last" would pass too
  auto best = with({"generator.synthesis_steps=4", "generator.keep=\"best\""});
  best.insert(best.end(), jumpy.begin(), jumpy.end());
  Run kept(best);
  REQUIRE(kept.train() == ardkit::TrainOutcome::completed);
  CHECK(torch::equal(pool_of(kept), expected));

  // Flipped student batches: every row the student saw is a pool row or its mirror image.
  Run flipped(
      with({"generator.synthesis_steps=2", "generator.student_flip=true", "train.epochs=1"}));
  REQUIRE(flipped.train() == ardkit::TrainOutcome::completed);
  const auto state = checkpoint(flipped.run->checkpoint_path("last"), "generator");
  const auto pool = state.at("pool")[0], seen = state.at("student_x");
  int64_t mirrored = 0;
  for (int64_t i = 0; i < seen.size(0); ++i) {
    bool found = false;
    for (int64_t j = 0; j < pool.size(0) && !found; ++j) {
      found = torch::equal(seen[i], pool[j]);
      if (!found && torch::equal(seen[i], pool[j].flip({2}))) {
        found = true;
        ++mirrored;
      }
    }
    CHECK(found);
  }
  CHECK(mirrored > 0);
}

TEST_CASE("an interrupt during an epoch's synthesis resumes it where it stopped") {
  const std::vector<std::string> synthesis = {
      "generator.plugin=\"bn_stats\"", "generator.latent_dim=16",   "generator.synthesis_steps=4",
      "generator.iterations=2",        "generator.student_steps=2", "train.epochs=1"};
  Run whole(synthesis);
  REQUIRE(whole.train() == ardkit::TrainOutcome::completed);
  Run split(synthesis);
  ardkit::install_interrupt_handlers();
  std::raise(SIGINT);  // pending before the first synthesis update: it stops after that one
  REQUIRE(split.train() == ardkit::TrainOutcome::interrupted);
  ardkit::clear_interrupt();
  const auto state = checkpoint(split.run->checkpoint_path("last"), "generator");
  CHECK(state.at("synthesis_done").item<int64_t>() == 1);
  CHECK(state.at("pool").numel() == 0);
  REQUIRE(split.train() == ardkit::TrainOutcome::completed);
  const auto a = whole.run->checkpoint_path("last"), b = split.run->checkpoint_path("last");
  check_same(checkpoint(a, "student"), checkpoint(b, "student"));
  check_same(checkpoint(a, "generator"), checkpoint(b, "generator"));
}

TEST_CASE("ita moves the temperature knob by the documented rule, in a run and on crafted input") {
  // In a data-free run: measured on synthetic samples after every epoch, logged, checkpointed.
  Run r({}, "\n[[hook]]\nplugin = \"ita\"\nsignal = \"clean_agreement\"\nsamples = 32\n");
  REQUIRE(r.train() == ardkit::TrainOutcome::completed);
  const auto epochs = r.lines("epoch");
  REQUIRE(epochs.size() == 2);
  double tau = 4.0;  // the objective's starting temperature
  for (const auto& e : epochs) {
    const double s = e["hook.ita.signal"].get<double>();
    CHECK(s >= 0);
    CHECK(s <= 1);
    // tau <- tau + 0.5 * (1 + 7 s - tau), clamped to [1, 8]
    tau = std::clamp(tau + 0.5 * (1.0 + 7.0 * s - tau), 1.0, 8.0);
    CHECK(e["hook.ita.temperature"].get<double>() == doctest::Approx(tau));
  }
  // The adjusted value is what the next epoch's steps ran with.
  CHECK(r.lines("step").back()["knob.temperature"].get<double>() ==
        doctest::Approx(epochs[0]["hook.ita.temperature"].get<double>()));

  // On crafted input: a student that is the teacher agrees everywhere (s = 1).
  auto hook = test::make<ardkit::Hook>(ardkit::PluginKind::hook, "ita",
                                       {{"signal", std::string("clean_agreement")},
                                        {"tau_min", 2.0},
                                        {"tau_max", 6.0},
                                        {"rate", 0.25}});
  ardkit::DataSpec spec;
  spec.channels = 1;
  spec.height = spec.width = 16;
  ardkit::BuildContext context;
  context.data = spec;
  auto teacher = test::builtin().create<ardkit::Model>(
      ardkit::PluginKind::model, "small_cnn",
      test::params_for(ardkit::PluginKind::model, "small_cnn"), context);
  ardkit::Knobs knobs;
  knobs.declare("temperature", 3.0);
  std::map<std::string, double> metrics, report;
  ardkit::HookEvent event{0, 10, 2, 5, metrics};
  event.student = teacher.get();
  event.teacher = teacher.get();
  event.draw = [](int64_t n) {
    return ardkit::Batch{torch::rand({n, 1, 16, 16}), torch::zeros({n}, torch::kLong), {}};
  };
  event.report = &report;
  hook->on_train_start(event, knobs);
  hook->on_epoch_end(event, knobs);
  CHECK(report.at("ita.signal") == 1.0);
  CHECK(knobs.get("temperature") == doctest::Approx(3.0 + 0.25 * (6.0 - 3.0)));
  // The reversed mapping (a control): full agreement now targets tau_min.
  auto falling = test::make<ardkit::Hook>(ardkit::PluginKind::hook, "ita",
                                          {{"signal", std::string("clean_agreement")},
                                           {"direction", std::string("falling")},
                                           {"tau_min", 2.0},
                                           {"tau_max", 6.0},
                                           {"rate", 0.25}});
  knobs.set("temperature", 3.0);
  falling->on_train_start(event, knobs);
  falling->on_epoch_end(event, knobs);
  CHECK(knobs.get("temperature") == doctest::Approx(3.0 + 0.25 * (2.0 - 3.0)));
  // A knob the objective does not declare is refused before training, as are bounds outside
  // the knob's range.
  ardkit::Knobs none;
  CHECK_THROWS_WITH(hook->check_knobs(none), doctest::Contains("does not declare"));
  ardkit::Knobs narrow;
  narrow.declare("temperature", 3.0, ardkit::KnobRange::between(1, 5));
  CHECK_THROWS_WITH(hook->check_knobs(narrow), doctest::Contains("outside its range [1, 5]"));
}

TEST_CASE("the adaptive balance gives each term its base share of the mean magnitude") {
  ardkit::LossBalance fixed(false, 0.9, 0.1, 10.0);
  CHECK(fixed.weights({"a", "b"}, {2.0, 1.0}, {10.0, 1.0}) == std::vector<double>{2.0, 1.0});
  ardkit::LossBalance balance(true, 0.9, 0.1, 10.0);
  // First call: m = (10, 1); M = (1*10 + 1*1) / 2 = 5.5; w = (0.55, 5.5).
  auto w = balance.weights({"a", "b"}, {1.0, 1.0}, {-10.0, 1.0});
  CHECK(w[0] == doctest::Approx(0.55));
  CHECK(w[1] == doctest::Approx(5.5));
  // Second: m_a = 0.9 * 10 + 0.1 * 20 = 11, m_b = 1; M = 6; w = (6/11, 6).
  w = balance.weights({"a", "b"}, {1.0, 1.0}, {20.0, 1.0});
  CHECK(w[0] == doctest::Approx(6.0 / 11.0));
  CHECK(w[1] == doctest::Approx(6.0));
  // Base weights set the shares; factors are clamped (a vanished term does not explode).
  ardkit::LossBalance clamped(true, 0.0, 0.1, 10.0);
  w = clamped.weights({"a", "b"}, {3.0, 1.0}, {1.0, 0.0});
  CHECK(w[0] == doctest::Approx(3.0 * 0.75));
  CHECK(w[1] == doctest::Approx(10.0));
}

TEST_CASE("image grids are PNGs of the grid's size, written whole") {
  test::TempDir dir;
  ardkit::write_image_grid(torch::rand({10, 3, 5, 7}), dir / "grid.png", 4);
  const auto size = png_size(dir / "grid.png");
  CHECK(size.first == 4 * 8 + 1);   // 4 columns of 7 + gap
  CHECK(size.second == 3 * 6 + 1);  // 3 rows of 5 + gap
  CHECK_FALSE(fs::exists(dir / "grid.png.tmp"));
  CHECK_THROWS_WITH(ardkit::write_image_grid(torch::rand({2, 2, 5, 5}), dir / "bad.png"),
                    doctest::Contains("1 or 3"));
}

TEST_CASE("to_pixels: straight-through keeps the gradient at clamped pixels, clamp does not") {
  const auto out = torch::tensor({-4.0f, -0.5f, 0.0f, 0.5f, 4.0f}).view({1, 1, 1, 5});
  const auto gradient = [&](const std::string& mode, torch::Tensor* value) {
    auto o = out.clone().requires_grad_();
    const auto x = ardkit::to_pixels(o, {0.5}, {0.25}, mode);
    *value = x.detach().flatten();
    x.sum().backward();
    return o.grad().flatten();
  };
  torch::Tensor value;
  // out * 0.25 + 0.5: -0.5, 0.375, 0.5, 0.625, 1.5
  const auto ste = gradient("straight_through", &value);
  CHECK(torch::allclose(value, torch::tensor({0.0f, 0.375f, 0.5f, 0.625f, 1.0f})));
  CHECK(torch::allclose(ste, torch::full({5}, 0.25f)));
  const auto clamped = gradient("clamp", &value);
  CHECK(torch::allclose(value, torch::tensor({0.0f, 0.375f, 0.5f, 0.625f, 1.0f})));
  CHECK(torch::allclose(clamped, torch::tensor({0.0f, 0.25f, 0.25f, 0.25f, 0.0f})));
  const auto none = gradient("none", &value);
  CHECK(torch::allclose(value, torch::tensor({-0.5f, 0.375f, 0.5f, 0.625f, 1.5f})));
  CHECK(torch::allclose(none, torch::full({5}, 0.25f)));
}

TEST_CASE("gacd's CRD memory banks refuse a data-free run, its in-batch estimator trains") {
  const std::vector<std::string> gacd = {"objective.plugin=\"gacd\"", "objective.negatives=8"};
  auto crd = gacd;
  Run banks(crd);
  CHECK_THROWS_WITH(banks.train(), doctest::Contains("estimator = \"crd\" keeps a memory bank"));
  auto infonce = gacd;
  infonce.push_back("objective.estimator=\"infonce\"");
  Run in_batch(infonce);
  CHECK(in_batch.train() == ardkit::TrainOutcome::completed);
}

TEST_CASE(
    "student_mode = \"eval\" keeps a generator update off the student's BatchNorm statistics") {
  for (const std::string mode : {"train", "eval"}) {
    CAPTURE(mode);
    // dfad's loss runs the student; one synthesis update before any student step.
    Run r({"generator.synthesis_steps=1", "generator.student_mode=\"" + mode + "\"",
           "generator.student_batch=\"pool\"", "generator.generator_steps=0"});
    ardkit::TrainSetup setup = ardkit::build_components(r.experiment);
    setup.student->train();
    const auto before = setup.student->named_buffers()["bn1.running_mean"].clone();
    ardkit::Knobs knobs;
    ardkit::DataFree driver(*setup.generator, setup.generator_options, *setup.teacher,
                            *setup.student, knobs, setup.data->spec(), 16, torch::kCPU);
    REQUIRE(driver.prepare_epoch(0));
    const auto after = setup.student->named_buffers()["bn1.running_mean"];
    CHECK(torch::equal(before, after) == (mode == "eval"));
    CHECK(setup.student->is_training());
  }
}

TEST_CASE("[generator] engine keys are the host's, each plugin giving only its defaults") {
  const auto& dfad = test::builtin().find(ardkit::PluginKind::generator, "dfad").info;
  const auto& dafl = test::builtin().find(ardkit::PluginKind::generator, "dafl").info;
  const auto default_of = [](const ardkit::ParamSchema& schema, const std::string& key) {
    for (const auto& spec : schema)
      if (spec.key == key)
        return ardkit::format_value(*spec.default_value);
    return std::string("(absent)");
  };
  // No generator declares the engine's keys itself: they are one schema, the host's.
  for (const auto* info : {&dfad, &dafl})
    for (const char* key : {"iterations", "student_steps", "balance", "pool_size"})
      CHECK(default_of(info->schema, key) == "(absent)");
  // Each plugin's defaults are its official code's; the rest are the engine's.
  const auto dfad_engine = ardkit::generator_engine_schema(dfad);
  CHECK(default_of(dfad_engine, "student_steps") == "5");
  CHECK(default_of(dfad_engine, "order") == "\"student_first\"");
  CHECK(default_of(dfad_engine, "balance") == "\"fixed\"");
  const auto dafl_engine = ardkit::generator_engine_schema(dafl);
  CHECK(default_of(dafl_engine, "lr") == "0.2");
  CHECK(default_of(dafl_engine, "iterations") == "120");
  CHECK(default_of(dafl_engine, "student_steps") == "1");
  // A default for a key the host does not have, or of the wrong type, names the plugin and key.
  ardkit::PluginInfo bad;
  bad.kind = ardkit::PluginKind::generator;
  bad.name = "mine";
  bad.engine({{"iteration", int64_t{3}}});
  CHECK_THROWS_WITH_AS(ardkit::generator_engine_schema(bad),
                       doctest::Contains("'mine' gives an engine default for 'iteration'"),
                       ardkit::Error);
  bad.engine_defaults = {{"iterations", 1.5}};
  CHECK_THROWS_WITH_AS(ardkit::generator_engine_schema(bad),
                       doctest::Contains("the engine default iterations = 1.5 is not integer"),
                       ardkit::Error);
  // An experiment sets both sides in the one [generator] table; the engine reads its own keys.
  Run r({"generator.student_steps=3", "generator.latent_dim=24"});
  const ardkit::TrainSetup setup = ardkit::build_components(r.experiment);
  CHECK(setup.generator_options.student_steps == 3);
  CHECK(r.experiment.config.generator->params.get_int("latent_dim") == 24);
  CHECK_FALSE(r.experiment.config.generator->params.values().count("student_steps"));
}

TEST_CASE("real_fraction mixes real training images into every student batch, resumably") {
  // Real data of the run's shape (train_forbidden refuses its training split, as it should).
  const std::vector<std::string> mixed = {"data.plugin=\"synthetic\"", "data.height=16",
                                          "data.width=16", "generator.real_fraction=0.25"};
  Run whole(mixed);
  REQUIRE(whole.train() == ardkit::TrainOutcome::completed);
  const auto results = whole.results();
  // 12 student steps of 16 images, 4 of each real; the synthetic side's budget is unchanged.
  CHECK(results["budget"]["real_images"] == 12 * 4);
  CHECK(results["budget"]["generator_updates"] == 6);
  CHECK(results["data_free"]["training_images_read"] == true);
  CHECK(results["data_free"]["real_fraction"] == 0.25);
  // The same run without the mixture trains on other batches: the student ends elsewhere.
  Run pure({"data.plugin=\"synthetic\"", "data.height=16", "data.width=16"});
  REQUIRE(pure.train() == ardkit::TrainOutcome::completed);
  CHECK_FALSE(pure.results()["budget"].contains("real_images"));
  const auto a = whole.run->checkpoint_path("last");
  CHECK_FALSE(
      torch::equal(checkpoint(a, "student").begin()->second,
                   checkpoint(pure.run->checkpoint_path("last"), "student").begin()->second));
  // Interrupted mid-epoch and resumed: the same real images, the same student, the same count.
  Run split(mixed, "\n[[hook]]\nplugin = \"interrupt_after\"\nstep = 5\n");
  ardkit::install_interrupt_handlers();
  REQUIRE(split.train() == ardkit::TrainOutcome::interrupted);
  ardkit::clear_interrupt();
  REQUIRE(split.train() == ardkit::TrainOutcome::completed);
  check_same(checkpoint(a, "student"), checkpoint(split.run->checkpoint_path("last"), "student"));
  CHECK(split.results()["budget"] == results["budget"]);
  // All real is no longer data-free: refused with the key's place.
  Run all({"data.plugin=\"synthetic\"", "data.height=16", "data.width=16",
           "generator.real_fraction=1"});
  CHECK_THROWS_WITH(all.train(), doctest::Contains("real_fraction must be below 1"));
}
