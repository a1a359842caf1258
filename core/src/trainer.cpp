#include "ardkit/host/trainer.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "ardkit/error.hpp"
#include "ardkit/host/autocast.hpp"
#include "ardkit/host/data_free.hpp"
#include "ardkit/host/lr_schedule.hpp"
#include "ardkit/host/prefetcher.hpp"
#include "ardkit/interrupt.hpp"
#include "ardkit/progress.hpp"
#include "ardkit/weights.hpp"

namespace fs = std::filesystem;

namespace ardkit {

namespace {

using Clock = std::chrono::steady_clock;

// Counters that, with the weights, optimizer and RNG state, make a checkpoint resumable.
struct Position {
  int64_t epoch = 0;          // the epoch in progress (== epochs when training is done)
  int64_t step_in_epoch = 0;  // batches of that epoch already trained on
  int64_t global_step = 0;
  double best_metric = -1.0;  // validation accuracy of the best checkpoint so far
  // Running totals of the epoch in progress: a run resumed mid-epoch reports the same epoch
  // averages as one that was never stopped.
  std::map<std::string, double> epoch_sums;
  int64_t epoch_counted = 0, epoch_images = 0;
};

// A handle sharing the default CPU generator (the accessor returns it const).
at::Generator default_generator() {
  return at::detail::getDefaultCPUGenerator();
}

torch::Tensor read_tensor(torch::serialize::InputArchive& archive, const std::string& key) {
  torch::Tensor t;
  archive.read(key, t);
  return t;
}

// An optimizer whose step first clips the gradient norm of every parameter it updates
// ([optimizer] grad_clip; ZSKT's solver.py clips the student's at 5). In step() rather than in
// each objective's step, so a custom step that calls optimizer->step() clips too.
template <class Base>
class Clipped : public Base {
 public:
  template <class... Args>
  Clipped(double max_norm, Args&&... args)
      : Base(std::forward<Args>(args)...), max_norm_(max_norm) {}
  torch::Tensor step(torch::optim::Optimizer::LossClosure closure = nullptr) override {
    std::vector<torch::Tensor> params;
    for (const auto& group : this->param_groups())
      for (const auto& p : group.params())
        params.push_back(p);
    torch::nn::utils::clip_grad_norm_(params, max_norm_);
    return Base::step(std::move(closure));
  }

 private:
  double max_norm_;
};

template <class Base, class... Args>
std::unique_ptr<torch::optim::Optimizer> optimizer_of(double grad_clip, Args&&... args) {
  if (grad_clip > 0)
    return std::make_unique<Clipped<Base>>(grad_clip, std::forward<Args>(args)...);
  return std::make_unique<Base>(std::forward<Args>(args)...);
}

// The run's optimizer: group 0 holds the student's parameters, group 1 (when the objective has
// a trainable() module) the objective's, with its own weight decay; lr factors per group are
// applied by set_lr.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const Params& p,
                                                        std::vector<torch::Tensor> student,
                                                        std::vector<torch::Tensor> extra) {
  const double extra_decay = p.get_real("extra_weight_decay") < 0
                                 ? p.get_real("weight_decay")
                                 : p.get_real("extra_weight_decay");
  const auto groups = [&](const auto& options) {
    using Options = std::decay_t<decltype(options)>;
    std::vector<torch::optim::OptimizerParamGroup> out;
    out.emplace_back(std::move(student), std::make_unique<Options>(options));
    if (!extra.empty()) {
      auto extra_options = std::make_unique<Options>(options);
      extra_options->weight_decay(extra_decay);
      out.emplace_back(std::move(extra), std::move(extra_options));
    }
    return out;
  };
  if (p.get_string("type") == "adam") {
    torch::optim::AdamOptions options(p.get_real("lr"));
    options.betas({p.get_real("beta1"), p.get_real("beta2")})
        .weight_decay(p.get_real("weight_decay"));
    return optimizer_of<torch::optim::Adam>(p.get_real("grad_clip"), groups(options), options);
  }
  torch::optim::SGDOptions options(p.get_real("lr"));
  options.momentum(p.get_real("momentum"))
      .weight_decay(p.get_real("weight_decay"))
      .nesterov(p.get_bool("nesterov"));
  if (options.nesterov() && options.momentum() <= 0)
    throw_config_error(p.origin("nesterov") + ": [optimizer] nesterov needs momentum > 0");
  return optimizer_of<torch::optim::SGD>(p.get_real("grad_clip"), groups(options), options);
}

void set_lr(torch::optim::Optimizer& optimizer, double lr, double extra_factor) {
  auto& groups = optimizer.param_groups();
  for (size_t i = 0; i < groups.size(); ++i)
    groups[i].options().set_lr(i == 0 ? lr : lr * extra_factor);
}

// What the objective learns before training: sizes from one eval-mode, no-grad forward of each
// model on a zero batch (eval mode: BatchNorm statistics stay as they are).
ObjectiveSetup objective_setup(Model& student, Model* teacher, const DataSpec& teacher_data,
                               DataSource& data, int64_t train_size, torch::Device device) {
  ObjectiveSetup out;
  const DataSpec spec = data.spec();
  out.data = spec;
  out.label_space = label_space_of(spec);
  out.teacher_label_space = teacher ? label_space_of(teacher_data) : "";
  out.student = &student;
  out.teacher = teacher;
  out.train_size = train_size;
  out.num_classes = spec.num_classes;
  out.device = device;
  const auto x = torch::zeros({1, spec.channels, spec.height, spec.width}, device);
  torch::NoGradGuard no_grad;
  const auto probe = [&](Model& model, int64_t& features, int64_t& classes) {
    BnModeGuard eval_mode(model, BnMode::eval);
    const ModelOutput o = model.forward(x);
    classes = o.logits.size(1);
    features = o.features.defined() ? o.features.size(1) : model.feature_dim();
  };
  probe(student, out.student_features, out.student_classes);
  if (teacher)
    probe(*teacher, out.teacher_features, out.teacher_classes);
  return out;
}

// The order of an epoch depends only on (seed, epoch): a resumed run sees the same batches.
torch::Tensor epoch_order(int64_t seed, int64_t epoch, int64_t n) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(
      static_cast<uint64_t>(seed) * 1000003ull + static_cast<uint64_t>(epoch) + 17ull);
  return torch::randperm(n, generator, torch::TensorOptions().dtype(torch::kLong));
}

class Checkpointer {
 public:
  Checkpointer(Model& student, Model* teacher, Objective& objective,
               torch::optim::Optimizer& optimizer, Knobs& knobs, DataFree* data_free,
               std::vector<std::shared_ptr<Hook>>& hooks)
      : student_(student),
        teacher_(teacher),
        objective_(objective),
        optimizer_(optimizer),
        knobs_(knobs),
        data_free_(data_free),
        hooks_(hooks) {}

  void save(const fs::path& path, const Position& position) const {
    torch::serialize::OutputArchive archive;
    torch::serialize::OutputArchive student_archive, extra_archive, optimizer_archive, knob_archive;
    student_.save(student_archive);
    archive.write("student", student_archive);
    if (objective_.has_state()) {
      objective_.save_state(extra_archive);
      archive.write("objective", extra_archive);
    }
    optimizer_.save(optimizer_archive);
    archive.write("optimizer", optimizer_archive);
    if (data_free_) {
      torch::serialize::OutputArchive generator_archive;
      data_free_->save(generator_archive);
      archive.write("generator", generator_archive);
    }
    for (size_t i = 0; i < hooks_.size(); ++i)
      if (hooks_[i]->has_state()) {
        torch::serialize::OutputArchive hook_archive;
        hooks_[i]->save_state(hook_archive);
        archive.write(fmt::format("hook{}", i), hook_archive);
      }
    for (const auto& [name, value] : knobs_.all())
      knob_archive.write(name, torch::tensor(value, torch::kDouble));
    archive.write("knobs", knob_archive);
    archive.write("epoch", torch::tensor(position.epoch));
    archive.write("step_in_epoch", torch::tensor(position.step_in_epoch));
    archive.write("global_step", torch::tensor(position.global_step));
    archive.write("best_metric", torch::tensor(position.best_metric, torch::kDouble));
    torch::serialize::OutputArchive sums_archive;
    for (const auto& [name, sum] : position.epoch_sums)
      sums_archive.write(name, torch::tensor(sum, torch::kDouble));
    archive.write("epoch_sums", sums_archive);
    archive.write("epoch_counted", torch::tensor(position.epoch_counted));
    archive.write("epoch_images", torch::tensor(position.epoch_images));
    if (teacher_)
      archive.write("teacher_queries", torch::tensor(teacher_->queries()));
    archive.write("rng", default_generator().get_state());
    // Attacks' random starts on a GPU draw from its generator: saved too, so a resumed CUDA run
    // draws what the uninterrupted one would have.
    if (const auto device = device_of(student_); device.is_cuda())
      archive.write("cuda_rng", at::globalContext().defaultGenerator(device).get_state());
    // Serialized in memory, then written atomically: a crash or a full disk mid-write never
    // replaces a good checkpoint, and the error is one line naming the file.
    std::ostringstream bytes;
    archive.save_to(bytes);
    write_file_atomic(path, bytes.str());
  }

  Position load(const fs::path& path) const {
    torch::serialize::InputArchive archive;
    try {
      // Mapped onto the run's device: a checkpoint written on a GPU resumes on the CPU and the
      // other way round (parameters and optimizer state land where the student is).
      const torch::Device device = device_of(student_);
      archive.load_from(path.string(), device);
      torch::serialize::InputArchive student_archive, optimizer_archive, knob_archive;
      archive.read("student", student_archive);
      student_.load(student_archive);
      if (objective_.has_state()) {
        torch::serialize::InputArchive extra_archive;
        archive.read("objective", extra_archive);
        objective_.load_state(extra_archive);
      }
      archive.read("optimizer", optimizer_archive);
      optimizer_.load(optimizer_archive);
      if (data_free_) {
        torch::serialize::InputArchive generator_archive;
        archive.read("generator", generator_archive);
        data_free_->load(generator_archive);
      }
      for (size_t i = 0; i < hooks_.size(); ++i)
        if (hooks_[i]->has_state()) {
          torch::serialize::InputArchive hook_archive;
          archive.read(fmt::format("hook{}", i), hook_archive);
          hooks_[i]->load_state(hook_archive);
        }
      archive.read("knobs", knob_archive);
      for (const auto& [name, value] : knobs_.all())
        knobs_.set(name, read_tensor(knob_archive, name).item<double>());
      Position position;
      position.epoch = read_tensor(archive, "epoch").item<int64_t>();
      position.step_in_epoch = read_tensor(archive, "step_in_epoch").item<int64_t>();
      position.global_step = read_tensor(archive, "global_step").item<int64_t>();
      position.best_metric = read_tensor(archive, "best_metric").item<double>();
      // Checkpoints from before the epoch totals were kept lack them: the epoch's averages
      // then cover the steps after the resume, as they used to.
      torch::serialize::InputArchive sums_archive;
      torch::Tensor count;
      if (archive.try_read("epoch_sums", sums_archive) &&
          archive.try_read("epoch_counted", count)) {
        position.epoch_counted = count.item<int64_t>();
        position.epoch_images = read_tensor(archive, "epoch_images").item<int64_t>();
        for (const auto& name : sums_archive.keys())
          position.epoch_sums[name] = read_tensor(sums_archive, name).item<double>();
      }
      torch::Tensor queries;  // absent from checkpoints older than the budget counts
      if (teacher_ && archive.try_read("teacher_queries", queries))
        teacher_->set_queries(queries.item<int64_t>());
      default_generator().set_state(read_tensor(archive, "rng").cpu());
      torch::Tensor cuda_rng;
      if (device.is_cuda() && archive.try_read("cuda_rng", cuda_rng))
        at::Generator(at::globalContext().defaultGenerator(device)).set_state(cuda_rng.cpu());
      return position;
    } catch (const c10::Error& e) {
      throw_runtime_error(
          fmt::format("{}: checkpoint is unreadable or does not match this experiment ({}); "
                      "delete it to start the run over",
                      path.string(), e.what_without_backtrace()));
    }
  }

 private:
  Model& student_;
  Model* teacher_;
  Objective& objective_;
  torch::optim::Optimizer& optimizer_;
  Knobs& knobs_;
  DataFree* data_free_;
  std::vector<std::shared_ptr<Hook>>& hooks_;
};

// Ordered: attacks appear in results.json in the order of the experiment's [[eval]] tables.
nlohmann::ordered_json report_json(const EvalReport& report) {
  nlohmann::ordered_json j;
  j["points"] = report.points;
  j["clean_acc"] = 100 * report.clean_accuracy;
  nlohmann::ordered_json attacks = nlohmann::ordered_json::object();
  for (const auto& a : report.attacks)
    attacks[a.name] = {{"robust_acc", 100 * a.accuracy}, {"seconds", a.seconds}};
  j["attacks"] = attacks;
  if (!report.attacks.empty())
    j["worst_case_acc"] = 100 * report.worst_case;
  j["seconds"] = report.seconds;
  if (!report.warnings.empty())
    j["warnings"] = report.warnings;
  return j;
}

[[noreturn]] void refuse_label_spaces(const ExperimentConfig& config, int64_t teacher_classes,
                                      const std::string& teacher_space, int64_t classes,
                                      const std::string& space) {
  throw_config_error(fmt::format(
      "{}: objective '{}' distills the teacher's class probabilities, but the teacher has {} "
      "classes of '{}' and the student {} of '{}': soft labels need one label space; for a "
      "teacher from another task use an objective that distills features, or train the student "
      "without a teacher",
      config.file.string(), config.objective->plugin, teacher_classes, teacher_space, classes,
      space));
}

}  // namespace

Knobs declared_knobs(const TrainSetup& setup) {
  Knobs knobs;
  setup.objective->declare_knobs(knobs);
  if (setup.attack) {
    const ThreatModel threat = setup.attack->threat();
    knobs.declare("attack.eps", threat.eps,
                  threat.norm == "linf" ? KnobRange::between(0, 1) : KnobRange::at_least(0));
  }
  return knobs;
}

void check_requirements(const TrainSetup& setup) {
  const ExperimentConfig& config = *setup.config;
  // Hooks name knobs by string: a typo or a knob this objective lacks is caught here, before a
  // run folder exists, rather than at the first step.
  if (!setup.hooks.empty()) {
    const Knobs knobs = declared_knobs(setup);
    for (size_t i = 0; i < setup.hooks.size(); ++i) {
      try {
        setup.hooks[i]->check_knobs(knobs);
      } catch (const Error& e) {
        const PluginTable& table = config.hooks.at(i);
        const std::string where =
            table.params.has("knob") ? table.params.origin("knob") : config.file.string();
        throw Error(e.kind(), fmt::format("{}: [hook[{}]] (plugin '{}'): {}", where, i,
                                          table.plugin, e.what()));
      }
    }
  }
  if (setup.generator && !setup.teacher)
    throw_config_error(
        fmt::format("{}: [generator] synthesises training data from a teacher, but the "
                    "experiment has no [teacher] table: add one with plugin and checkpoint "
                    "(or experiment)",
                    config.file.string()));
  // A teacher from another experiment's task: refused before any run folder exists. (A class
  // count that differs for other reasons is caught by train()'s probe.)
  if (setup.teacher && setup.data && config.objective->needs(Need::same_label_space)) {
    const DataSpec data = setup.data->spec();
    if (label_space_of(setup.teacher_data) != label_space_of(data) ||
        setup.teacher_data.num_classes != data.num_classes)
      refuse_label_spaces(config, setup.teacher_data.num_classes,
                          label_space_of(setup.teacher_data), data.num_classes,
                          label_space_of(data));
  }
}

namespace {

// Validation at the end of an epoch: clean and [attack] accuracy on held-out training data,
// into the epoch's metrics line and the hooks' latest values. Returns the selection metric (robust
// accuracy when there is an attack, else clean): best is chosen on held-out data, never the test
// set.
double validate_epoch(TrainSetup& setup, int64_t epoch, nlohmann::json& line,
                      std::map<std::string, double>& latest) {
  const ExperimentConfig& config = *setup.config;
  const Params& tp = config.train;
  std::vector<NamedAttack> attacks;
  if (setup.attack)
    attacks.push_back({"attack", setup.attack});
  EvalOptions options;
  options.split = Split::validation;
  options.points = tp.get_int("validation_points");
  options.batch_size = tp.get_int("eval_batch_size");
  options.label = "validate";
  options.seed = config.run.get_int("seed");
  const EvalReport report = evaluate(*setup.student, *setup.data, attacks, options);
  line["val_clean_acc"] = 100 * report.clean_accuracy;
  latest["val_clean_acc"] = 100 * report.clean_accuracy;
  double metric = report.clean_accuracy;
  if (!report.attacks.empty()) {
    line["val_robust_acc"] = 100 * report.attacks[0].accuracy;
    latest["val_robust_acc"] = 100 * report.attacks[0].accuracy;
    metric = report.attacks[0].accuracy;
  }
  log_line(fmt::format("epoch {}/{}: validation clean {:.2f}%{}", epoch + 1, tp.get_int("epochs"),
                       100 * report.clean_accuracy,
                       report.attacks.empty()
                           ? ""
                           : fmt::format(", robust {:.2f}%", 100 * report.attacks[0].accuracy)));
  return metric;
}

// The final evaluation on the test split (last weights, then best when validation chose one)
// and results.json, written atomically once every number is in.
void evaluate_and_write_results(TrainSetup& setup, RunDir& run,
                                const nlohmann::ordered_json& budget) {
  const ExperimentConfig& config = *setup.config;
  const Params& tp = config.train;
  Model& student = *setup.student;
  DataSource& data = *setup.data;
  const int64_t seed = config.run.get_int("seed");
  EvalOptions options;
  options.split = Split::test;
  options.points = tp.get_int("eval_points");
  options.batch_size = tp.get_int("eval_batch_size");
  // Random starts are seeded per batch from the run's seed: the same weights always get the same
  // numbers, whichever checkpoint they came from and whether the run resumed.
  options.seed = seed;
  // Each checkpoint's evaluation saves its progress after every batch: a run killed during a long
  // AutoAttack resumes mid-attack. The run id pins the settings; the digest pins the weights.
  const auto evaluate_checkpoint = [&](const std::string& which, uint64_t digest) {
    options.label = "test " + which;
    options.state_file = run.eval_state_path(which);
    options.fingerprint = fmt::format("{} {} {:016x}", run.run_id(), which, digest);
    return evaluate(student, data, setup.evals, options);
  };
  std::vector<std::pair<std::string, EvalReport>> rows;
  const uint64_t last_digest = weights_digest(student);
  rows.emplace_back("last", evaluate_checkpoint("last", last_digest));
  const fs::path best = run.checkpoint_path("best");
  if (fs::exists(best)) {
    load_weights(student, best);
    const uint64_t best_digest = weights_digest(student);
    // Best is often the last epoch: the same weights get the same numbers (evaluation is seeded
    // per batch), so an AutoAttack evaluation is not paid twice.
    if (best_digest == last_digest) {
      log_line("best checkpoint is the last one: its test evaluation is the same");
      rows.emplace_back("best", rows.front().second);
    } else {
      rows.emplace_back("best", evaluate_checkpoint("best", best_digest));
    }
  }

  nlohmann::ordered_json results;
  results["run_id"] = run.run_id();
  results["name"] = config.name();
  results["dataset"] = data.spec().name;
  results["architecture"] = config.student->plugin;
  results["objective"] = config.objective->plugin;
  if (setup.attack) {
    results["threat_model"] = setup.attack->threat().norm == "linf" ? "Linf" : "L2";
    results["train_eps"] = setup.attack->threat().eps;
  }
  // Each attack's threat model beside the numbers: reports plot robustness against eps from it.
  for (const auto& e : setup.evals) {
    results["eps"][e.name] = e.attack->threat().eps;
    results["norm"][e.name] = e.attack->threat().norm;
  }
  if (setup.generator) {
    // What a reader of a data-free result must know: which generator made the training data,
    // and whether any real training-set image was read (only for checkpoint selection).
    const bool real = setup.generator->options().real_validation;
    results["data_free"] = {{"generator", config.generator->plugin},
                            {"training_images_read", real},
                            {"selection", real ? "real validation split" : "none"}};
  }
  results["budget"] = budget;
  for (const auto& [label, report] : rows)
    results[label] = report_json(report);
  // RobustBench's model_info keys, filled from the last checkpoint's evaluation.
  results["clean_acc"] = results["last"]["clean_acc"];
  if (!setup.evals.empty())
    results["robust_acc"] = results["last"]["worst_case_acc"];
  write_file_atomic(run.results_path(), results.dump(2) + "\n");
  std::error_code ignored;
  for (const char* which : {"last", "best"})
    fs::remove(run.eval_state_path(which), ignored);  // results.json now holds their numbers
}

}  // namespace

TrainOutcome train(TrainSetup& setup, RunDir& run) {
  const ExperimentConfig& config = *setup.config;
  const Params& tp = config.train;
  Model& student = *setup.student;
  DataSource& data = *setup.data;
  const int64_t epochs = tp.get_int("epochs");
  const int64_t batch_size = tp.get_int("batch_size");
  const int64_t seed = config.run.get_int("seed");
  const torch::Device device(config.run.get_string("device") == "cuda" ? torch::kCUDA
                                                                       : torch::kCPU);
  const auto step_precision = autocast_type(config.run, device);

  check_requirements(setup);

  student.to(device);
  if (setup.teacher) {
    setup.teacher->to(device);
    setup.teacher->eval();
    for (auto& p : setup.teacher->parameters())
      p.set_requires_grad(false);
  }
  Knobs knobs = declared_knobs(setup);

  // A data-free epoch's samples take the place of the training set: per-sample objectives
  // (memory banks) get one slot per synthetic sample of an epoch.
  const int64_t train_size = setup.generator
                                 ? setup.generator->options().iterations *
                                       setup.generator->options().student_steps * batch_size
                                 : data.size(Split::train);
  if (train_size == 0)
    throw_config_error(config.file.string() + ": [data] the training split is empty");
  ObjectiveSetup sizes = objective_setup(student, setup.teacher.get(), setup.teacher_data,
                                         *setup.data, train_size, device);
  sizes.synthetic = setup.generator != nullptr;
  if (!sizes.synthetic) {
    // Gathered on the first call only (most objectives never ask), in chunks so that no more
    // than a chunk of images is held at once; the prefetcher has not started yet.
    auto labels = std::make_shared<torch::Tensor>();
    DataSource* source = setup.data.get();
    sizes.train_labels = [labels, source, train_size]() {
      if (!labels->defined()) {
        std::vector<torch::Tensor> parts;
        constexpr int64_t chunk = 4096;
        for (int64_t start = 0; start < train_size; start += chunk) {
          const auto idx = torch::arange(start, std::min(start + chunk, train_size), torch::kLong);
          parts.push_back(source->get(Split::train, idx, Augmentation::none()).y.to(torch::kCPU));
        }
        *labels = torch::cat(parts).to(torch::kLong);
      }
      return *labels;
    };
  }
  if (setup.teacher && config.objective->needs(Need::same_label_space) && !sizes.same_label_space())
    refuse_label_spaces(config, sizes.teacher_classes, sizes.teacher_label_space, sizes.num_classes,
                        sizes.label_space);
  torch::manual_seed(static_cast<uint64_t>(seed));  // heads and banks: initialized from the seed
  setup.objective->setup(sizes);
  auto extra = setup.objective->trainable();
  std::vector<torch::Tensor> extra_parameters;
  if (extra) {
    extra->to(device);
    extra_parameters = extra->parameters();
  }
  const double extra_lr_factor = config.optimizer.get_real("extra_lr_factor");
  auto optimizer = make_optimizer(config.optimizer, student.parameters(), extra_parameters);
  std::unique_ptr<DataFree> data_free;
  if (setup.generator)
    data_free = std::make_unique<DataFree>(*setup.generator, *setup.teacher, student, knobs,
                                           data.spec(), batch_size, device);
  Checkpointer checkpointer(student, setup.teacher.get(), *setup.objective, *optimizer, knobs,
                            data_free.get(), setup.hooks);
  // Teacher queries count from here (the probes above are not training), and a resume restores
  // the count of its checkpoint.
  if (setup.teacher)
    setup.teacher->set_queries(0);
  // The objective's module follows the student: train mode for steps, eval mode otherwise.
  const auto set_mode = [&](bool training) {
    student.train(training);
    if (extra)
      extra->train(training);
  };

  Position position;
  torch::manual_seed(static_cast<uint64_t>(seed));
  const fs::path last = run.checkpoint_path("last");
  if (fs::exists(last)) {
    position = checkpointer.load(last);
    log_line(fmt::format("resuming {} from epoch {} step {} (global step {})", run.run_id(),
                         position.epoch + 1, position.step_in_epoch, position.global_step));
  }

  const int64_t steps_per_epoch =
      data_free ? data_free->steps_per_epoch() : (train_size + batch_size - 1) / batch_size;
  const LrSchedule schedule(config.optimizer, config.schedule, epochs);
  const int64_t validate_every = tp.get_int("validate_every");
  const int64_t log_every = tp.get_int("log_every");
  const auto checkpoint_interval =
      std::chrono::duration<double>(60.0 * tp.get_real("checkpoint_minutes"));
  auto last_checkpoint = Clock::now();

  std::map<std::string, double> latest;  // latest metric values, read by hooks
  // What hooks may measure: the models and a batch of training inputs (synthetic in a data-free
  // run; real ones otherwise, in an order seeded by the step, so drawing moves nothing else).
  const auto draw = [&](int64_t n) {
    if (data_free)
      return data_free->draw(n);
    const auto order = epoch_order(seed + 7919, position.global_step, train_size);
    Batch batch =
        data.get(Split::train, order.narrow(0, 0, std::min(n, train_size)), Augmentation::none());
    batch.x = batch.x.to(device);
    batch.y = batch.y.to(device);
    return batch;
  };
  const auto hook_event = [&](int64_t epoch, std::map<std::string, double>* report, bool can_draw) {
    HookEvent event{epoch, position.global_step, epochs, steps_per_epoch, latest};
    event.student = &student;
    event.teacher = setup.teacher.get();
    event.attack = setup.attack.get();
    if (can_draw)
      event.draw = draw;
    event.report = report;
    return event;
  };
  // A hook's error names the hook: several may drive knobs.
  const auto for_each_hook = [&](const auto& call) {
    for (size_t i = 0; i < setup.hooks.size(); ++i) {
      try {
        call(*setup.hooks[i]);
      } catch (const Interrupted&) {
        throw;  // a hook's attack gave way to Ctrl-C: not the hook's error
      } catch (const Error& e) {
        throw Error(e.kind(),
                    fmt::format("[hook[{}]] (plugin '{}'): {}", i,
                                i < config.hooks.size() ? config.hooks[i].plugin : "?", e.what()));
      }
    }
  };
  {
    std::map<std::string, double> report;
    const HookEvent event = hook_event(position.epoch, &report, true);
    for_each_hook([&](Hook& hook) { hook.on_train_start(event, knobs); });
  }
  while (position.epoch < epochs) {
    const int64_t epoch = position.epoch;
    double lr = schedule.at(epoch, position.step_in_epoch, steps_per_epoch);
    set_lr(*optimizer, lr, extra_lr_factor);
    const double base_lr = config.optimizer.get_real("lr");
    if (data_free) {
      data_free->set_lr_scale(lr / base_lr);
      if (position.step_in_epoch == 0) {
        set_mode(true);
        if (!data_free->prepare_epoch(epoch)) {
          checkpointer.save(last, position);
          return TrainOutcome::interrupted;
        }
      }
    }
    // A data-free warmup epoch has no student step (the schedule still counts it).
    const int64_t steps_this_epoch = data_free ? data_free->steps_in(epoch) : steps_per_epoch;
    Progress progress(fmt::format("epoch {}/{}", epoch + 1, epochs), steps_this_epoch);
    if (position.step_in_epoch == 0) {
      position.epoch_sums.clear();
      position.epoch_counted = position.epoch_images = 0;
    }
    std::map<std::string, double>& sums = position.epoch_sums;
    int64_t& counted = position.epoch_counted;
    int64_t& images = position.epoch_images;
    const auto epoch_start = Clock::now();
    auto window_start = Clock::now();
    int64_t window_images = 0;

    // A data-free run never opens the training split: its batches come from the generator.
    std::optional<BatchPrefetcher> batches;
    if (!data_free)
      batches.emplace(data, epoch_order(seed, epoch, train_size), batch_size,
                      position.step_in_epoch, static_cast<uint64_t>(seed), epoch, device.is_cuda());
    // An attack or generator that runs long inside one step gives up within seconds of an
    // interrupt (check_interrupt); the half-done step is dropped and the run resumes from its
    // last checkpoint, which the abandoned step never touched.
    try {
      for (int64_t s = position.step_in_epoch; s < steps_this_epoch; ++s) {
        set_mode(true);
        if (schedule.per_batch()) {
          lr = schedule.at(epoch, s, steps_per_epoch);
          set_lr(*optimizer, lr, extra_lr_factor);
          if (data_free)
            data_free->set_lr_scale(lr / base_lr);
        }
        Batch batch = data_free ? data_free->next_batch(epoch, s) : batches->next();
        // Pinned on a GPU run (above): the copy overlaps what the GPU still has queued.
        batch.x = batch.x.to(device, /*non_blocking=*/true);
        batch.y = batch.y.to(device, /*non_blocking=*/true);
        if (setup.attack)
          setup.attack->set_eps(knobs.get("attack.eps"));
        StepContext context{
            student, setup.teacher.get(), setup.attack.get(), batch, epoch, position.global_step,
            knobs};
        context.optimizer = optimizer.get();
        if (data_free)
          context.extra_terms = [&](LossTerms& loss) {
            data_free->add_student_terms(loss, batch, epoch);
          };
        std::vector<std::pair<std::string, double>> values;
        context.check_finite = [&](const LossTerms& loss) {
          values = {{"loss", loss.total.item<double>()}};
          for (const auto& [name, term] : loss.terms)
            values.emplace_back(name, term.detach().item<double>());
          for (const auto& [name, value] : values)
            if (!std::isfinite(value))
              throw_runtime_error(fmt::format(
                  "epoch {} step {}: loss term '{}' became {} — lower the learning rate or check "
                  "the objective's parameters; the last good checkpoint is kept in {}",
                  epoch + 1, s, name, value, last.string()));
        };
        const LossTerms loss = [&] {
          const AutocastGuard autocast(device, step_precision);
          return setup.objective->step(context);
        }();
        if (setup.teacher && setup.teacher->is_training())
          throw_runtime_error(fmt::format(
              "objective '{}' left the teacher in train mode; a teacher is frozen: use BnModeGuard "
              "only on the student",
              config.objective->plugin));
        if (values.empty())  // a custom step that did not call check_finite: check after the fact
          context.check_finite(loss);
        if (data_free) {
          data_free->after_step(epoch, s);
          for (const auto& [name, value] : data_free->latest())
            values.emplace_back(name, value);
        }

        ++position.global_step;
        position.step_in_epoch = s + 1;
        ++counted;
        images += batch.x.size(0);
        window_images += batch.x.size(0);
        for (const auto& [name, value] : values) {
          sums[name] += value;
          latest[name] = value;
        }
        if (position.global_step % log_every == 0 || s + 1 == steps_this_epoch) {
          const double window_seconds =
              std::chrono::duration<double>(Clock::now() - window_start).count();
          nlohmann::json line = {{"type", "step"},
                                 {"epoch", epoch + 1},
                                 {"step", position.global_step},
                                 {"lr", lr},
                                 {"images_per_s", window_images / std::max(window_seconds, 1e-9)}};
          for (const auto& [name, value] : values)
            line[name] = value;
          for (const auto& [name, value] : knobs.all())
            line["knob." + name] = value;
          run.append_metrics(line.dump());
          window_start = Clock::now();
          window_images = 0;
        }
        const HookEvent event = hook_event(epoch, nullptr, false);
        for_each_hook([&](Hook& hook) { hook.on_step_end(event, knobs); });
        // A data-free run also shows its generator's loss and the diversity of what it makes.
        progress.update(
            s + 1, fmt::format("loss {:.4f}", sums["loss"] / counted) +
                       (data_free && latest.count("gen.loss")
                            ? fmt::format(" gen {:.4f} class entropy {:.2f}", latest["gen.loss"],
                                          latest["syn.class_entropy"])
                            : ""));

        if (interrupt_requested()) {
          checkpointer.save(last, position);
          progress.finish("interrupted");
          return TrainOutcome::interrupted;
        }
        if (Clock::now() - last_checkpoint > checkpoint_interval) {
          checkpointer.save(last, position);
          last_checkpoint = Clock::now();
        }
      }
    } catch (const Interrupted&) {
      progress.finish("interrupted");
      log_line(
          fmt::format("interrupted inside step {} of epoch {}; the step was abandoned and the "
                      "run resumes from its last checkpoint{}",
                      position.step_in_epoch + 1, epoch + 1,
                      fs::exists(last) ? "" : " (none yet: from the start)"));
      return TrainOutcome::interrupted;
    }
    const double epoch_seconds = std::chrono::duration<double>(Clock::now() - epoch_start).count();
    progress.finish(fmt::format("loss {:.4f}", counted ? sums["loss"] / counted : 0.0));

    nlohmann::json line = {{"type", "epoch"},
                           {"epoch", epoch + 1},
                           {"lr", lr},
                           {"seconds", epoch_seconds},
                           {"images_per_s", images / std::max(epoch_seconds, 1e-9)}};
    for (const auto& [name, sum] : sums)
      line["train_" + name] = counted ? sum / counted : 0.0;
    for (const auto& [name, value] : knobs.all())
      line["knob." + name] = value;
    // A data-free run selects no best checkpoint unless told to use the real validation split.
    const bool validate = validate_every > 0 && (epoch + 1) % validate_every == 0 &&
                          (!data_free || data_free->options().real_validation) &&
                          data.size(Split::validation) > 0;
    bool improved = false;
    if (validate) {
      set_mode(false);
      double metric = 0;
      try {
        metric = validate_epoch(setup, epoch, line, latest);
      } catch (const Interrupted&) {
        // The epoch's steps are done: saved here, a resumed run only validates again.
        checkpointer.save(last, position);
        return TrainOutcome::interrupted;
      }
      if (metric > position.best_metric) {
        position.best_metric = metric;
        improved = true;
      }
    }
    {
      set_mode(false);
      std::map<std::string, double> report;
      const HookEvent event = hook_event(epoch, &report, true);
      for_each_hook([&](Hook& hook) { hook.on_epoch_end(event, knobs); });
      for (const auto& [name, value] : report) {
        line["hook." + name] = value;
        latest["hook." + name] = value;
      }
    }
    run.append_metrics(line.dump());
    if (data_free && data_free->options().sample_grid)
      data_free->write_grid(run.root() / "samples" / fmt::format("epoch_{:03d}.png", epoch + 1));

    position.epoch = epoch + 1;
    position.step_in_epoch = 0;
    if (improved)
      checkpointer.save(run.checkpoint_path("best"), position);
    checkpointer.save(last, position);
    last_checkpoint = Clock::now();
    if (interrupt_requested())
      return TrainOutcome::interrupted;
  }

  set_mode(false);
  // What the run spent, so methods can be compared at equal budgets: student steps and the
  // images they trained on, generator updates and images, and images through the teacher
  // (every forward: labelling, losses, attacks on it, hooks).
  nlohmann::ordered_json budget = {{"student_steps", position.global_step},
                                   {"student_images", position.global_step * batch_size}};
  if (data_free) {
    budget["generator_updates"] = data_free->generator_updates();
    budget["generator_images"] = data_free->generator_updates() * batch_size;
  }
  if (setup.teacher)
    budget["teacher_queries"] = setup.teacher->queries();
  evaluate_and_write_results(setup, run, budget);
  return TrainOutcome::completed;
}

}  // namespace ardkit
