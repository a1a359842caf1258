// The training loop: preparation, then per epoch begin / steps / end (validation, hooks,
// checkpoint), then the final evaluation. Each stage is one member function of TrainingLoop, in
// the order run() calls them; where the batches come from is the BatchSource's business.
#include "ardkit/host/trainer.hpp"

#include <fmt/format.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>

#include "ardkit/error.hpp"
#include "ardkit/host/autocast.hpp"
#include "ardkit/host/batch_source.hpp"
#include "ardkit/host/checkpointer.hpp"
#include "ardkit/host/data_free.hpp"
#include "ardkit/host/event_file.hpp"
#include "ardkit/host/final_evaluation.hpp"
#include "ardkit/host/lr_schedule.hpp"
#include "ardkit/host/optimizer.hpp"
#include "ardkit/interrupt.hpp"
#include "ardkit/progress.hpp"
#include "ardkit/weights.hpp"

namespace fs = std::filesystem;

namespace ardkit {

namespace {

using Clock = std::chrono::steady_clock;

// What the objective learns before training: sizes from one eval-mode, no-grad forward of each
// model on a zero batch (eval mode: BatchNorm statistics stay as they are).
ObjectiveSetup objective_setup(Model& student, Model* teacher, const DataSpec& teacher_data,
                               const DataSpec& spec, const BatchSource& source,
                               torch::Device device) {
  ObjectiveSetup out;
  out.data = spec;
  out.label_space = label_space_of(spec);
  out.teacher_label_space = teacher ? label_space_of(teacher_data) : "";
  out.student = &student;
  out.teacher = teacher;
  out.train_size = source.samples_per_epoch();
  out.synthetic = source.synthetic();
  out.train_labels = source.train_labels();
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

// A model trained beside the student: its optimizer and schedule, and the mode it keeps.
struct Companion {
  Companion(std::string name_, Model& model_, const CompanionConfig& config, int64_t epochs)
      : name(std::move(name_)),
        model(model_),
        mode(config.model.host.get_string("mode")),
        options(config.optimizer),
        schedule(config.optimizer, config.schedule, epochs) {}
  std::string name;
  Model& model;
  std::string mode;  // "follow", "train" or "eval"
  const Params& options;
  LrSchedule schedule;
  std::unique_ptr<torch::optim::Optimizer> optimizer;
};

class TrainingLoop {
 public:
  TrainingLoop(TrainSetup& setup, RunDir& run);
  TrainOutcome run();

 private:
  // Preparation, in this order: it fixes the order of the run's random draws.
  void prepare_models();
  void prepare_objective();
  void prepare_checkpoints();
  void resume();
  void start_hooks();
  // One epoch. Each returns false when the run stops for an interrupt (state saved as needed).
  bool begin_epoch();
  bool train_steps();
  void train_step(int64_t step);
  void record_step(int64_t step, int64_t images, const NamedValues& values);
  bool end_epoch();
  bool validate(nlohmann::json& line, bool& improved);
  void epoch_hooks(nlohmann::json& line);
  // The end: the budget, the test evaluation, results.json.
  void finish();

  void set_mode(bool training);
  void set_learning_rates(int64_t step, bool per_batch_only);
  NamedValues finite_values(const LossTerms& loss, int64_t step) const;
  HookEvent hook_event(std::map<std::string, double>* report, bool can_draw);
  template <class Call>
  void for_each_hook(const Call& call);

  TrainSetup& setup_;
  RunDir& run_;
  const ExperimentConfig& config_;
  const Params& options_;  // [train]
  Model& student_;
  const int64_t epochs_, batch_size_, seed_;
  const torch::Device device_;
  const std::optional<at::ScalarType> precision_;
  const LrSchedule schedule_;
  const fs::path last_;
  Knobs knobs_;
  std::unique_ptr<BatchSource> source_;
  std::shared_ptr<torch::nn::Module> extra_;  // the objective's trainable() module
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::vector<Companion> companions_;  // [companions.NAME], by name
  std::map<std::string, Model*> teachers_, companion_models_;
  std::map<std::string, torch::optim::Optimizer*> companion_optimizers_;
  std::unique_ptr<Checkpointer> checkpointer_;
  WeightAverage average_;  // [train] average_from
  TrainPosition position_;
  std::map<std::string, double> latest_;  // latest metric values, read by hooks
  Clock::time_point last_checkpoint_;
  double lr_ = 0;
  // The epoch in progress.
  std::optional<Progress> progress_;
  Clock::time_point epoch_start_, window_start_;
  int64_t window_images_ = 0, steps_this_epoch_ = 0;
};

TrainingLoop::TrainingLoop(TrainSetup& setup, RunDir& run)
    : setup_(setup),
      run_(run),
      config_(*setup.config),
      options_(config_.train),
      student_(*setup.student),
      epochs_(options_.get_int("epochs")),
      batch_size_(options_.get_int("batch_size")),
      seed_(config_.run.get_int("seed")),
      device_(config_.run.get_string("device") == "cuda" ? torch::kCUDA : torch::kCPU),
      precision_(autocast_type(config_.run, device_)),
      schedule_(config_.optimizer, config_.schedule, epochs_),
      last_(run.checkpoint_path("last")),
      average_(student_, options_.get_int("average_from")) {}

TrainOutcome TrainingLoop::run() {
  prepare_models();
  prepare_objective();
  prepare_checkpoints();
  resume();
  start_hooks();
  while (position_.epoch < epochs_) {
    if (!begin_epoch() || !train_steps() || !end_epoch())
      return TrainOutcome::interrupted;
  }
  finish();
  return TrainOutcome::completed;
}

// The models on the run's device, the teacher frozen; the knobs; the batch source (built, not
// started: nothing random is drawn yet).
void TrainingLoop::prepare_models() {
  student_.to(device_);
  if (setup_.teacher) {
    setup_.teacher->to(device_);
    setup_.teacher->eval();
    for (auto& p : setup_.teacher->parameters())
      p.set_requires_grad(false);
  }
  for (auto& [name, teacher] : setup_.teachers) {
    teacher->to(device_);
    teacher->eval();
    for (auto& p : teacher->parameters())
      p.set_requires_grad(false);
    teachers_[name] = teacher.get();
  }
  for (auto& [name, model] : setup_.companions) {
    model->to(device_);
    companion_models_[name] = model.get();
    companions_.emplace_back(name, *model, config_.companions.at(name), epochs_);
  }
  knobs_ = declared_knobs(setup_);
  DataSource& data = *setup_.data;
  source_ = setup_.generator
                ? generated_batches(*setup_.generator, setup_.generator_options, *setup_.teacher,
                                    student_, knobs_, data.spec(), batch_size_, device_)
                : real_batches(data, batch_size_, seed_, device_);
  if (setup_.generator && setup_.generator_options.real_fraction > 0)
    source_ = mixed_batches(std::move(source_), data, setup_.generator_options.real_fraction,
                            batch_size_, seed_, device_);
  if (source_->samples_per_epoch() == 0)
    throw_config_error(config_.file.string() + ": [data] the training split is empty");
}

// The objective's setup (heads and banks initialized from the seed), then the optimizer over the
// student and the objective's module.
void TrainingLoop::prepare_objective() {
  ObjectiveSetup sizes = objective_setup(student_, setup_.teacher.get(), setup_.teacher_data,
                                         setup_.data->spec(), *source_, device_);
  sizes.teachers = teachers_;
  sizes.companions = companion_models_;
  sizes.epochs = config_.train.get_int("epochs");
  if (setup_.teacher)  // the probed class counts: a head that differs from the task is caught here
    check_label_spaces(config_, sizes.teacher_classes, sizes.teacher_label_space, sizes.num_classes,
                       sizes.label_space);
  torch::manual_seed(static_cast<uint64_t>(seed_));
  setup_.objective->setup(sizes);
  extra_ = setup_.objective->trainable();
  std::vector<torch::Tensor> extra_parameters;
  if (extra_) {
    extra_->to(device_);
    extra_parameters = extra_->parameters();
  }
  optimizer_ = make_optimizer(config_.optimizer, student_.parameters(), extra_parameters);
  for (auto& companion : companions_) {
    companion.optimizer = make_optimizer(companion.options, companion.model.parameters(), {});
    companion_optimizers_[companion.name] = companion.optimizer.get();
  }
}

void TrainingLoop::prepare_checkpoints() {
  source_->start();
  CheckpointParts parts;
  parts.student = &student_;
  parts.teacher = setup_.teacher.get();
  parts.objective = setup_.objective.get();
  parts.optimizer = optimizer_.get();
  parts.knobs = &knobs_;
  parts.source = source_.get();
  parts.hooks = &setup_.hooks;
  parts.average = &average_;
  parts.teachers = teachers_;
  for (auto& companion : companions_)
    parts.companions.push_back({companion.name, &companion.model, companion.optimizer.get()});
  checkpointer_ = std::make_unique<Checkpointer>(parts);
  // Teacher queries count from here (the probes above are not training), and a resume restores
  // the count of its checkpoint.
  if (setup_.teacher)
    setup_.teacher->set_queries(0);
  for (auto& [name, teacher] : teachers_)
    teacher->set_queries(0);
}

void TrainingLoop::resume() {
  torch::manual_seed(static_cast<uint64_t>(seed_));
  if (fs::exists(last_)) {
    position_ = checkpointer_->load(last_);
    log_line(fmt::format("resuming {} from epoch {} step {} (global step {})", run_.run_id(),
                         position_.epoch + 1, position_.step_in_epoch, position_.global_step));
  }
  last_checkpoint_ = Clock::now();
  if (config_.run.get_bool("tensorboard"))
    run_.start_tensorboard(position_.global_step, config_.run.get_string("label"));
}

void TrainingLoop::start_hooks() {
  std::map<std::string, double> report;
  const HookEvent event = hook_event(&report, true);
  for_each_hook([&](Hook& hook) { hook.on_train_start(event, knobs_); });
}

// The epoch's learning rate and the source's preparation (a data-free synthesis, which an
// interrupt may cut short: the checkpoint then resumes it).
bool TrainingLoop::begin_epoch() {
  const int64_t epoch = position_.epoch;
  set_learning_rates(position_.step_in_epoch, false);
  if (position_.step_in_epoch == 0) {
    set_mode(true);
    const HookEvent event = hook_event(nullptr, false);
    for_each_hook([&](Hook& hook) { hook.on_epoch_begin(event, knobs_); });
  }
  if (!source_->begin_epoch(epoch, position_.step_in_epoch)) {
    checkpointer_->save(last_, position_);
    return false;
  }
  steps_this_epoch_ = source_->steps_in(epoch);
  progress_.emplace(fmt::format("epoch {}/{}", epoch + 1, epochs_), steps_this_epoch_);
  if (position_.step_in_epoch == 0) {
    position_.epoch_sums.clear();
    position_.epoch_counted = position_.epoch_images = 0;
  }
  epoch_start_ = window_start_ = Clock::now();
  window_images_ = 0;
  return true;
}

// An attack or generator that runs long inside one step gives up within seconds of an interrupt
// (check_interrupt); the half-done step is dropped and the run resumes from its last checkpoint,
// which the abandoned step never touched.
bool TrainingLoop::train_steps() {
  const auto checkpoint_interval =
      std::chrono::duration<double>(60.0 * options_.get_real("checkpoint_minutes"));
  try {
    for (int64_t s = position_.step_in_epoch; s < steps_this_epoch_; ++s) {
      train_step(s);
      if (interrupt_requested()) {
        checkpointer_->save(last_, position_);
        progress_->finish("interrupted");
        return false;
      }
      if (Clock::now() - last_checkpoint_ > checkpoint_interval) {
        checkpointer_->save(last_, position_);
        last_checkpoint_ = Clock::now();
      }
    }
  } catch (const Interrupted&) {
    progress_->finish("interrupted");
    log_line(
        fmt::format("interrupted inside step {} of epoch {}; the step was abandoned and the "
                    "run resumes from its last checkpoint{}",
                    position_.step_in_epoch + 1, position_.epoch + 1,
                    fs::exists(last_) ? "" : " (none yet: from the start)"));
    return false;
  }
  const int64_t counted = position_.epoch_counted;
  progress_->finish(
      fmt::format("loss {:.4f}", counted ? position_.epoch_sums["loss"] / counted : 0.0));
  return true;
}

void TrainingLoop::train_step(int64_t s) {
  const int64_t epoch = position_.epoch;
  set_mode(true);
  set_learning_rates(s, true);
  {
    const HookEvent event = hook_event(nullptr, false);
    for_each_hook([&](Hook& hook) { hook.on_step_begin(event, knobs_); });
  }
  Batch batch = source_->next(epoch, s);
  // Pinned on a GPU run: the copy overlaps what the GPU still has queued.
  batch.x = batch.x.to(device_, /*non_blocking=*/true);
  batch.y = batch.y.to(device_, /*non_blocking=*/true);
  if (setup_.attack)
    setup_.attack->set_eps(knobs_.get("attack.eps"));
  StepContext context{
      student_, setup_.teacher.get(), setup_.attack.get(), batch, epoch, position_.global_step,
      knobs_};
  context.optimizer = optimizer_.get();
  context.extra_terms = source_->student_terms(batch, epoch);
  context.teachers = teachers_;
  context.companions = companion_models_;
  context.companion_optimizers = companion_optimizers_;
  context.check_finite = [&](const LossTerms& loss) { finite_values(loss, s); };
  const LossTerms loss = [&] {
    const AutocastGuard autocast(device_, precision_);
    return setup_.objective->step(context);
  }();
  bool teacher_training = setup_.teacher && setup_.teacher->is_training();
  for (const auto& [name, teacher] : teachers_)
    teacher_training = teacher_training || teacher->is_training();
  if (teacher_training)
    throw_runtime_error(fmt::format(
        "objective '{}' left a teacher in train mode; a teacher is frozen: use BnModeGuard "
        "only on the student and its companions",
        config_.objective->plugin));
  // What the step returns is logged (a custom step may add terms after its updates), and checked
  // again: a custom step that did not call check_finite is caught after the fact.
  NamedValues values = finite_values(loss, s);
  source_->after_step(epoch, s, values);
  record_step(s, batch.x.size(0), values);
  const HookEvent event = hook_event(nullptr, false);
  for_each_hook([&](Hook& hook) { hook.on_step_end(event, knobs_); });
  const auto& sums = position_.epoch_sums;
  progress_->update(s + 1, fmt::format("loss {:.4f}", sums.at("loss") / position_.epoch_counted) +
                               source_->progress_note());
}

// The step's values into the epoch's totals and the hooks' latest values; every log_every steps
// (and at the epoch's last) a metrics line.
void TrainingLoop::record_step(int64_t s, int64_t images, const NamedValues& values) {
  ++position_.global_step;
  position_.step_in_epoch = s + 1;
  ++position_.epoch_counted;
  position_.epoch_images += images;
  window_images_ += images;
  for (const auto& [name, value] : values) {
    position_.epoch_sums[name] += value;
    latest_[name] = value;
  }
  if (position_.global_step % options_.get_int("log_every") != 0 && s + 1 != steps_this_epoch_)
    return;
  const double window_seconds = std::chrono::duration<double>(Clock::now() - window_start_).count();
  nlohmann::json line = {{"type", "step"},
                         {"epoch", position_.epoch + 1},
                         {"step", position_.global_step},
                         {"time", unix_seconds()},
                         {"lr", lr_},
                         {"images_per_s", window_images_ / std::max(window_seconds, 1e-9)}};
  for (const auto& [name, value] : values)
    line[name] = value;
  for (const auto& [name, value] : knobs_.all())
    line["knob." + name] = value;
  run_.append_metrics(line.dump());
  window_start_ = Clock::now();
  window_images_ = 0;
}

// The epoch's metrics line (with validation and what hooks report), the source's end of epoch,
// then the checkpoints: best when validation improved, and last.
bool TrainingLoop::end_epoch() {
  const int64_t epoch = position_.epoch;
  const double epoch_seconds = std::chrono::duration<double>(Clock::now() - epoch_start_).count();
  const int64_t counted = position_.epoch_counted;
  nlohmann::json line = {{"type", "epoch"},
                         {"epoch", epoch + 1},
                         {"step", position_.global_step},
                         {"time", unix_seconds()},
                         {"lr", lr_},
                         {"seconds", epoch_seconds},
                         {"images_per_s", position_.epoch_images / std::max(epoch_seconds, 1e-9)}};
  for (const auto& [name, sum] : position_.epoch_sums)
    line["train_" + name] = counted ? sum / counted : 0.0;
  for (const auto& [name, value] : knobs_.all())
    line["knob." + name] = value;
  bool improved = false;
  if (!validate(line, improved)) {
    // The epoch's steps are done: saved here, a resumed run only validates again.
    checkpointer_->save(last_, position_);
    return false;
  }
  epoch_hooks(line);
  average_.end_epoch(epoch);
  if (average_.active())
    line["averaged_epochs"] = average_.count();
  // The epoch's files (a data-free run's sample grid) before its line: whoever reads the line
  // (TensorBoard's images) finds them.
  source_->end_epoch(epoch, run_.root());
  run_.append_metrics(line.dump());
  progress_.reset();

  position_.epoch = epoch + 1;
  position_.step_in_epoch = 0;
  if (improved)
    checkpointer_->save(run_.checkpoint_path("best"), position_);
  checkpointer_->save(last_, position_);
  last_checkpoint_ = Clock::now();
  return !interrupt_requested();
}

// Every validate_every epochs, when the source allows the data's validation split and it is not
// empty: clean and [attack] accuracy on it, into the line and the hooks' latest values. The
// selection metric (robust accuracy when there is an attack, else clean) picks the best
// checkpoint on held-out data, never the test set. False when interrupted.
bool TrainingLoop::validate(nlohmann::json& line, bool& improved) {
  const int64_t epoch = position_.epoch;
  const int64_t every = options_.get_int("validate_every");
  if (every <= 0 || (epoch + 1) % every != 0 || !source_->validates() ||
      setup_.data->size(Split::validation) == 0)
    return true;
  set_mode(false);
  std::vector<NamedAttack> attacks;
  if (setup_.attack)
    attacks.push_back({"attack", setup_.attack});
  EvalOptions options;
  options.split = Split::validation;
  options.points = options_.get_int("validation_points");
  options.batch_size = options_.get_int("eval_batch_size");
  options.label = "validate";
  options.seed = seed_;
  EvalReport report;
  try {
    report = evaluate(student_, *setup_.data, attacks, options);
  } catch (const Interrupted&) {
    return false;
  }
  line["val_clean_acc"] = latest_["val_clean_acc"] = 100 * report.clean_accuracy;
  double metric = report.clean_accuracy;
  std::string robust;
  if (!report.attacks.empty()) {
    metric = report.attacks[0].accuracy;
    line["val_robust_acc"] = latest_["val_robust_acc"] = 100 * metric;
    robust = fmt::format(", robust {:.2f}%", 100 * metric);
  }
  log_line(fmt::format("epoch {}/{}: validation clean {:.2f}%{}", epoch + 1, epochs_,
                       100 * report.clean_accuracy, robust));
  if (metric > position_.best_metric) {
    position_.best_metric = metric;
    improved = true;
  }
  const HookEvent event = hook_event(nullptr, false);
  for_each_hook([&](Hook& hook) { hook.on_validation_end(event, knobs_); });
  return true;
}

void TrainingLoop::epoch_hooks(nlohmann::json& line) {
  set_mode(false);
  std::map<std::string, double> report;
  const HookEvent event = hook_event(&report, true);
  for_each_hook([&](Hook& hook) { hook.on_epoch_end(event, knobs_); });
  for (const auto& [name, value] : report) {
    line["hook." + name] = value;
    latest_["hook." + name] = value;
  }
}

// What the run spent, so methods can be compared at equal budgets: student steps and the images
// they trained on, what the source spent (generator updates and images), and images through the
// teacher (every forward: labelling, losses, attacks on it, hooks).
void TrainingLoop::finish() {
  set_mode(false);
  if (average_.count() > 0) {
    // The mean, its BatchNorm statistics from one epoch's worth of training batches, saved as
    // the "averaged" checkpoint; the student goes back to its last weights for the evaluation.
    int64_t drawn = 0;
    average_.apply([&] { return source_->draw(batch_size_, position_.global_step + drawn++); },
                   source_->steps_per_epoch());
    checkpointer_->save(run_.checkpoint_path("averaged"), position_);
    log_line(
        fmt::format("averaged the weights of {} epochs (checkpoint averaged)", average_.count()));
    load_weights(student_, last_);
    set_mode(false);
  }
  RunBudget budget = {{"student_steps", position_.global_step},
                      {"student_images", position_.global_step * batch_size_}};
  for (const auto& entry : source_->budget(batch_size_))
    budget.push_back(entry);
  if (setup_.teacher)
    budget.emplace_back("teacher_queries", setup_.teacher->queries());
  for (const auto& [name, teacher] : teachers_)
    budget.emplace_back("teacher_queries." + name, teacher->queries());
  write_final_results(setup_, run_, budget, position_.global_step);
}

// The objective's module and the companions follow the student (train mode for steps, eval mode
// otherwise), except a companion whose table fixes its mode.
void TrainingLoop::set_mode(bool training) {
  student_.train(training);
  if (extra_)
    extra_->train(training);
  for (auto& companion : companions_)
    companion.model.train(companion.mode == "follow" ? training : companion.mode == "train");
}

// At step `step` of the epoch (per_batch_only: only the schedules that change per batch): the
// student's groups, the source's rates when they follow the student's, each companion's own.
void TrainingLoop::set_learning_rates(int64_t step, bool per_batch_only) {
  const int64_t epoch = position_.epoch, steps = source_->steps_per_epoch();
  if (!per_batch_only || schedule_.per_batch()) {
    lr_ = schedule_.at(epoch, step, steps);
    set_lr(*optimizer_, lr_, config_.optimizer.get_real("extra_lr_factor"));
    source_->set_lr_scale(lr_ / config_.optimizer.get_real("lr"));
  }
  for (auto& companion : companions_)
    if (!per_batch_only || companion.schedule.per_batch())
      set_lr(*companion.optimizer, companion.schedule.at(epoch, step, steps), 1.0);
}

// The loss and its terms as numbers for the logs; a NaN or infinite one stops the run before
// backward, naming it.
NamedValues TrainingLoop::finite_values(const LossTerms& loss, int64_t step) const {
  NamedValues values = {{"loss", loss.total.item<double>()}};
  for (const auto& [name, term] : loss.terms)
    values.emplace_back(name, term.detach().item<double>());
  for (const auto& [name, value] : values)
    if (!std::isfinite(value))
      throw_runtime_error(
          fmt::format("epoch {} step {}: loss term '{}' became {} — lower the learning rate or "
                      "check the objective's parameters; the last good checkpoint is kept in {}",
                      position_.epoch + 1, step, name, value, last_.string()));
  return values;
}

// What hooks may see: the models, the attack, and (where drawing is allowed) a batch of training
// inputs from the source, drawn so that nothing the run depends on moves.
HookEvent TrainingLoop::hook_event(std::map<std::string, double>* report, bool can_draw) {
  HookEvent event{position_.epoch, position_.global_step, epochs_, source_->steps_per_epoch(),
                  latest_};
  event.student = &student_;
  event.teacher = setup_.teacher.get();
  event.attack = setup_.attack.get();
  if (can_draw)
    event.draw = [this](int64_t n) { return source_->draw(n, position_.global_step); };
  event.report = report;
  return event;
}

// A hook's error names the hook: several may drive knobs.
template <class Call>
void TrainingLoop::for_each_hook(const Call& call) {
  for (size_t i = 0; i < setup_.hooks.size(); ++i) {
    try {
      call(*setup_.hooks[i]);
    } catch (const Interrupted&) {
      throw;  // a hook's attack gave way to Ctrl-C: not the hook's error
    } catch (const Error& e) {
      throw Error(e.kind(),
                  fmt::format("[hook[{}]] (plugin '{}'): {}", i,
                              i < config_.hooks.size() ? config_.hooks[i].plugin : "?", e.what()));
    }
  }
}

}  // namespace

TrainOutcome train(TrainSetup& setup, RunDir& run) {
  TrainingLoop loop(setup, run);
  return loop.run();
}

}  // namespace ardkit
