#include "ardkit/host/data_free.hpp"

#include <fmt/format.h>
#include <torch/torch.h>

#include <cmath>
#include <set>

#include "ardkit/error.hpp"
#include "ardkit/host/image_grid.hpp"
#include "ardkit/in_memory_data.hpp"
#include "ardkit/interrupt.hpp"

namespace ardkit {

namespace {

torch::Tensor read_archived(torch::serialize::InputArchive& archive, const std::string& key) {
  torch::Tensor t;
  archive.read(key, t);
  return t;
}

// Undefined tensors are stored as empty ones (archives cannot hold undefined tensors).
torch::Tensor or_empty(const torch::Tensor& t) {
  return t.defined() ? t : torch::empty({0});
}
torch::Tensor or_undefined(torch::Tensor t, torch::Device device) {
  return t.numel() == 0 ? torch::Tensor() : t.to(device);
}

}  // namespace

DataFree::DataFree(Generator& generator, GeneratorOptions options, Model& teacher, Model& student,
                   Knobs& knobs, DataSpec spec, int64_t batch_size, torch::Device device)
    : generator_(generator),
      options_(std::move(options)),
      teacher_(teacher),
      student_(student),
      knobs_(knobs),
      spec_(std::move(spec)),
      batch_size_(batch_size),
      device_(device),
      balance_(options_.balance == "adaptive", options_.balance_momentum, options_.balance_min,
               options_.balance_max) {
  GeneratorSetup setup;
  setup.data = spec_;
  setup.device = device_;
  setup.batch_size = batch_size_;
  setup.teacher = &teacher_;
  setup.student = &student_;
  generator_.setup(setup);
  generator_.network().to(device_);
  if (!generator_.latent_parameters().empty() && options_.student_batch == "fresh")
    throw_config_error(
        "[generator] this generator optimizes its latent, so it has no fresh samples: set "
        "student_batch = \"pool\" (or \"update_batch\")");
  reset_optimizer();
}

void DataFree::reset_optimizer() {
  std::set<const void*> latent;
  std::vector<torch::Tensor> latent_parameters;
  for (const auto& t : generator_.latent_parameters()) {
    latent.insert(t.unsafeGetTensorImpl());
    latent_parameters.push_back(t);
  }
  std::vector<torch::Tensor> weights;
  for (const auto& t : generator_.network().parameters())
    if (!latent.count(t.unsafeGetTensorImpl()))
      weights.push_back(t);
  torch::optim::AdamOptions base(options_.lr);
  base.betas({options_.beta1, options_.beta2});
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(weights, std::make_unique<torch::optim::AdamOptions>(base));
  if (!latent_parameters.empty()) {
    auto latent_options = std::make_unique<torch::optim::AdamOptions>(base);
    latent_options->lr(options_.latent_lr);
    groups.emplace_back(latent_parameters, std::move(latent_options));
  }
  optimizer_ = std::make_unique<torch::optim::Adam>(std::move(groups), base);
  set_lr_scale(lr_scale_);
}

void DataFree::reinitialize() {
  generator_.reinitialize();
  generator_.network().to(device_);
  reset_optimizer();
}

void DataFree::set_lr_scale(double scale) {
  lr_scale_ = options_.lr_schedule == "follow" ? scale : 1.0;
  auto& groups = optimizer_->param_groups();
  for (size_t i = 0; i < groups.size(); ++i)
    groups[i].options().set_lr((i == 0 ? options_.lr : options_.latent_lr) * lr_scale_);
}

void DataFree::update(int64_t epoch) {
  generator_.network().train();
  // The generator's loss runs through the student, but only the generator learns from it: the
  // student's parameters stop asking for gradients for the update (its activations still pass
  // them on to the images), so backward computes no weight gradients nobody uses.
  std::vector<torch::Tensor> frozen;
  for (auto& p : student_.parameters())
    if (p.requires_grad()) {
      p.set_requires_grad(false);
      frozen.push_back(p);
    }
  struct Restore {
    std::vector<torch::Tensor>& parameters;
    Model& student;
    bool training;
    ~Restore() {
      for (auto& p : parameters)
        p.set_requires_grad(true);
      student.train(training);
    }
  } restore{frozen, student_, student_.is_training()};
  if (options_.student_mode == "eval")
    student_.eval();
  const torch::Tensor z = generator_.latent(batch_size_);
  const torch::Tensor x = generator_.synthesize(z);
  GeneratorContext context{teacher_, student_, knobs_, epoch};
  const std::vector<GeneratorTerm> terms = generator_.losses(x, context);
  std::vector<std::string> names;
  std::vector<double> base, values;
  for (const auto& term : terms) {
    names.push_back(term.name);
    base.push_back(term.weight);
    values.push_back(term.value.detach().item<double>());
    if (!std::isfinite(values.back()))
      throw_runtime_error(fmt::format(
          "epoch {}: generator loss term '{}' became {} — lower [generator] lr or check its "
          "parameters; the last good checkpoint is kept",
          epoch + 1, term.name, values.back()));
  }
  const std::vector<double> weights = balance_.weights(names, base, values);
  torch::Tensor total = torch::zeros({}, x.options());
  for (size_t k = 0; k < terms.size(); ++k)
    total = total + weights[k] * terms[k].value;
  // FERD's best_mem: the images of the lowest loss, judged before the update that follows them.
  if (options_.keep == "best" && (!best_x_.defined() || total.item<double>() < best_loss_)) {
    best_x_ = x.detach();
    best_loss_ = total.item<double>();
  }
  optimizer_->zero_grad();
  total.backward();
  if (options_.grad_clip > 0) {
    std::vector<torch::Tensor> params;
    for (const auto& group : optimizer_->param_groups())
      for (const auto& p : group.params())
        params.push_back(p);
    torch::nn::utils::clip_grad_norm_(params, options_.grad_clip);
  }
  optimizer_->step();
  ++generator_updates_;
  last_x_ = x.detach();
  last_z_ = z.detach();
  latest_["gen.loss"] = total.item<double>();
  for (size_t k = 0; k < terms.size(); ++k) {
    latest_["gen." + names[k]] = values[k];
    if (options_.balance == "adaptive")
      latest_["gen.w." + names[k]] = weights[k];
  }
}

// A round of updates (an iteration's, or the epoch's synthesis) starts with no best batch.
void DataFree::start_round() {
  best_x_ = torch::Tensor();
  best_loss_ = 0;
}

// A round leaves its last images (keep = "best": its lowest-loss ones) in the pool, the oldest
// batch leaving when the pool is full.
void DataFree::add_to_pool() {
  if (options_.student_batch != "pool")
    return;
  pool_.push_back(options_.keep == "best" && best_x_.defined() ? best_x_ : last_x_);
  if (options_.pool_size > 0 && static_cast<int64_t>(pool_.size()) > options_.pool_size)
    pool_.erase(pool_.begin());
}

void DataFree::end_round(int64_t epoch) {
  add_to_pool();
  GeneratorContext context{teacher_, student_, knobs_, epoch};
  generator_.end_round(context);
}

void DataFree::updates(int64_t epoch, int64_t count) {
  if (count > 0 && options_.reinitialize == "round")
    reinitialize();
  if (count > 0)
    start_round();
  for (int64_t i = 0; i < count; ++i)
    update(epoch);
  if (count > 0)
    end_round(epoch);
  if (count > 0 && options_.student_batch == "update_latent") {
    torch::NoGradGuard no_grad;
    iteration_x_ = generator_.synthesize(last_z_).detach();
  }
}

bool DataFree::prepare_epoch(int64_t epoch) {
  if (synthesis_epoch_ != epoch) {
    synthesis_epoch_ = epoch;
    synthesis_done_ = 0;
    start_round();
    if (options_.reinitialize == "epoch" ||
        (options_.reinitialize == "round" && options_.synthesis_steps > 0))
      reinitialize();
  }
  while (synthesis_done_ < options_.synthesis_steps) {
    update(epoch);
    ++synthesis_done_;
    if (synthesis_done_ == options_.synthesis_steps) {
      end_round(epoch);
      break;
    }
    if (interrupt_requested())
      return false;
  }
  return true;
}

torch::Tensor DataFree::from_pool(int64_t n) {
  if (pool_.empty())
    throw_runtime_error("[generator] the pool of synthetic batches is empty");
  // Every pooled batch has batch_size_ images: pick k is row k % B of batch k / B. Gathered row
  // by row rather than by concatenating the pool, which on CIFAR's budget grows to gigabytes.
  const int64_t total = static_cast<int64_t>(pool_.size()) * batch_size_;
  const auto pick = torch::randint(total, {n}, torch::TensorOptions().dtype(torch::kLong));
  const auto* p = pick.data_ptr<int64_t>();
  std::vector<torch::Tensor> rows;
  rows.reserve(n);
  for (int64_t k = 0; k < n; ++k)
    rows.push_back(pool_[p[k] / batch_size_][p[k] % batch_size_]);
  return torch::stack(rows);
}

Batch DataFree::label(torch::Tensor x, int64_t first_index) {
  torch::NoGradGuard no_grad;
  const auto probabilities = torch::softmax(teacher_.forward(x).logits, 1);
  Batch batch;
  batch.y = probabilities.argmax(1);
  batch.x = std::move(x);
  const int64_t n = batch.x.size(0);
  batch.index =
      torch::arange(first_index, first_index + n, torch::TensorOptions().dtype(torch::kLong))
          .remainder(std::max<int64_t>(samples_per_epoch(), n));
  // Statistics of what the student sees: a collapsed generator shows as a near-zero class
  // entropy (one class) or a pixel std near zero long before the accuracy says so.
  latest_["syn.mean"] = batch.x.mean().item<double>();
  latest_["syn.std"] = batch.x.std().item<double>();
  latest_["syn.teacher_confidence"] = std::get<0>(probabilities.max(1)).mean().item<double>();
  const auto histogram =
      torch::bincount(batch.y.cpu(), {}, spec_.num_classes).to(torch::kDouble) / n;
  latest_["syn.class_entropy"] =
      -(histogram * torch::log(histogram.clamp_min(1e-12))).sum().item<double>();
  return batch;
}

Batch DataFree::next_batch(int64_t epoch, int64_t s) {
  const int64_t k = options_.student_steps;
  if (options_.order == "generator_first" && s % k == 0)
    updates(epoch, options_.generator_steps);
  torch::Tensor x;
  const std::string& policy = options_.student_batch;
  if (policy == "pool") {
    x = from_pool(batch_size_);
  } else if (policy == "update_batch" && last_x_.defined()) {
    x = last_x_;
  } else if (policy == "update_latent" && iteration_x_.defined()) {
    x = iteration_x_;
  } else {
    // "fresh", or a policy whose batch does not exist yet (student_first's first iteration).
    torch::NoGradGuard no_grad;
    generator_.network().train();
    x = generator_.synthesize(generator_.latent(batch_size_)).detach();
  }
  if (options_.student_crop_padding > 0 || options_.student_flip) {
    // The shared augmentation draws its crops and flips on the CPU, from the global generator
    // the checkpoint restores.
    const AugmentOptions augment_options{options_.student_crop_padding, options_.student_flip};
    x = augment(x.cpu(), augment_options, at::detail::getDefaultCPUGenerator()).to(device_);
  }
  student_x_ = x;
  return label(x, s * batch_size_);
}

void DataFree::after_step(int64_t epoch, int64_t s) {
  if (options_.order == "student_first" && (s + 1) % options_.student_steps == 0)
    updates(epoch, options_.generator_steps);
}

void DataFree::add_student_terms(LossTerms& loss, const Batch& batch, int64_t epoch) {
  GeneratorContext context{teacher_, student_, knobs_, epoch};
  for (auto& term : generator_.student_terms(batch.x, context)) {
    loss.total = loss.total + term.weight * term.value;
    loss.terms.emplace_back("gen_" + term.name, term.value.detach());
  }
}

Batch DataFree::draw(int64_t n) {
  torch::Tensor x;
  if (options_.student_batch == "pool" || !generator_.latent_parameters().empty()) {
    x = from_pool(n);
  } else {
    torch::NoGradGuard no_grad;
    generator_.network().train();
    x = generator_.synthesize(generator_.latent(n)).detach();
  }
  const auto saved = latest_;
  Batch batch = label(x, 0);
  latest_ = saved;  // a measurement is not what the student saw
  return batch;
}

void DataFree::write_grid(const std::filesystem::path& path) const {
  if (!student_x_.defined())
    return;
  std::filesystem::create_directories(path.parent_path());
  write_image_grid(student_x_.narrow(0, 0, std::min(options_.grid_images, student_x_.size(0))),
                   path,
                   static_cast<int64_t>(
                       std::ceil(std::sqrt(std::min(options_.grid_images, student_x_.size(0))))));
}

void DataFree::save(torch::serialize::OutputArchive& archive) const {
  torch::serialize::OutputArchive network, optimizer, balance;
  generator_.network().save(network);
  archive.write("network", network);
  optimizer_->save(optimizer);
  archive.write("optimizer", optimizer);
  balance_.save(balance);
  archive.write("balance", balance);
  archive.write("pool", pool_.empty() ? torch::empty({0}) : torch::stack(pool_));
  archive.write("last_x", or_empty(last_x_));
  archive.write("last_z", or_empty(last_z_));
  archive.write("iteration_x", or_empty(iteration_x_));
  archive.write("student_x", or_empty(student_x_));
  archive.write("synthesis_epoch", torch::tensor(synthesis_epoch_));
  archive.write("synthesis_done", torch::tensor(synthesis_done_));
  archive.write("generator_updates", torch::tensor(generator_updates_));
  archive.write("best_x", or_empty(best_x_));
  archive.write("best_loss", torch::tensor(best_loss_, torch::kDouble));
}

void DataFree::load(torch::serialize::InputArchive& archive) {
  synthesis_epoch_ = read_archived(archive, "synthesis_epoch").item<int64_t>();
  synthesis_done_ = read_archived(archive, "synthesis_done").item<int64_t>();
  torch::Tensor updates;  // absent from checkpoints older than the budget counts
  generator_updates_ = archive.try_read("generator_updates", updates) ? updates.item<int64_t>() : 0;
  // A checkpoint written after a re-initialisation holds the new weights: load them into a
  // network of the same shape, then rebuild the optimizer over it before loading its state.
  torch::serialize::InputArchive network, optimizer, balance;
  archive.read("network", network);
  generator_.network().load(network);
  generator_.network().to(device_);
  reset_optimizer();
  archive.read("optimizer", optimizer);
  optimizer_->load(optimizer);
  archive.read("balance", balance);
  balance_.load(balance);
  pool_.clear();
  const auto pool = read_archived(archive, "pool");
  for (int64_t i = 0; i < pool.size(0) && pool.numel() > 0; ++i)
    pool_.push_back(pool[i].to(device_));
  last_x_ = or_undefined(read_archived(archive, "last_x"), device_);
  last_z_ = or_undefined(read_archived(archive, "last_z"), device_);
  iteration_x_ = or_undefined(read_archived(archive, "iteration_x"), device_);
  student_x_ = or_undefined(read_archived(archive, "student_x"), device_);
  torch::Tensor best_x, best_loss;  // absent from checkpoints older than keep = "best"
  best_x_ = archive.try_read("best_x", best_x) ? or_undefined(best_x, device_) : torch::Tensor();
  best_loss_ = archive.try_read("best_loss", best_loss) ? best_loss.item<double>() : 0.0;
}

}  // namespace ardkit
