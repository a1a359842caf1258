#include "ardkit/host/generator_options.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <variant>

#include "ardkit/error.hpp"

namespace ardkit {

namespace {

// The generator's optimizer and the schedule of its updates between the student's steps.
void add_update_params(ParamSchema& s, const GeneratorOptions& d) {
  using namespace param;
  s.push_back(real("lr", d.lr).greater_than(0).help("generator Adam learning rate"));
  s.push_back(real("beta1", d.beta1).at_least(0).at_most(1).help("generator Adam beta1"));
  s.push_back(real("beta2", d.beta2).at_least(0).at_most(1).help("generator Adam beta2"));
  s.push_back(real("latent_lr", d.latent_lr)
                  .at_least(0)
                  .help("learning rate of an optimized latent (generators that optimize one)"));
  s.push_back(real("grad_clip", d.grad_clip)
                  .at_least(0)
                  .help("clip the generator's gradient norm to this (0 = off)"));
  s.push_back(string("lr_schedule", d.lr_schedule)
                  .one_of({"constant", "follow"})
                  .help("constant, or follow the shape of the student's [schedule]"));
  s.push_back(integer("iterations", d.iterations)
                  .at_least(1)
                  .help("iterations per epoch; each makes generator_steps generator updates and "
                        "student_steps student steps"));
  s.push_back(integer("generator_steps", d.generator_steps)
                  .at_least(0)
                  .help("generator updates per iteration"));
  s.push_back(
      integer("student_steps", d.student_steps).at_least(1).help("student steps per iteration"));
  s.push_back(string("order", d.order)
                  .one_of({"generator_first", "student_first"})
                  .help("within an iteration, which updates come first"));
  s.push_back(string("reinitialize", d.reinitialize)
                  .one_of({"never", "epoch", "round"})
                  .help("draw fresh generator weights (and latent) at the start of every epoch, "
                        "or of every round of updates (the synthesis, each iteration's)"));
  s.push_back(integer("synthesis_steps", d.synthesis_steps)
                  .at_least(0)
                  .help("generator updates at the start of each epoch, before any student step "
                        "(their last batch joins the pool)"));
  s.push_back(string("student_batch", d.student_batch)
                  .one_of({"fresh", "update_batch", "update_latent", "pool"})
                  .help("what a student step trains on: fresh samples, the last update's images, "
                        "the last update's latent through the updated generator, or the pool"));
}

// What the student trains on besides the generator's batches, the balance, the run's records.
void add_student_side_params(ParamSchema& s, const GeneratorOptions& d) {
  using namespace param;
  s.push_back(integer("pool_size", d.pool_size)
                  .at_least(0)
                  .help("synthetic batches kept in the pool (0 = all of the run's)"));
  s.push_back(string("keep", d.keep)
                  .one_of({"last", "best"})
                  .help("which batch of a round of updates joins the pool: the last update's, or "
                        "the one of the lowest total generator loss (FERD)"));
  s.push_back(integer("warmup_epochs", d.warmup_epochs)
                  .at_least(0)
                  .help("first epochs with generator updates only, no student step (FERD: 20); "
                        "the student's schedule counts them"));
  s.push_back(integer("student_crop_padding", d.student_crop_padding)
                  .at_least(0)
                  .help("augment each student batch: random crop after zero padding by N pixels "
                        "(FERD: 4); 0 = off"));
  s.push_back(boolean("student_flip", d.student_flip)
                  .help("augment each student batch with a random horizontal flip (FERD)"));
  s.push_back(string("balance", d.balance)
                  .one_of({"fixed", "adaptive"})
                  .help("loss-term weights: fixed, or adaptive (AGB: each term's weight is its "
                        "share of the loss, rescaled by its running magnitude)"));
  s.push_back(real("balance_momentum", d.balance_momentum)
                  .at_least(0)
                  .at_most(1)
                  .help("adaptive balance: momentum of the running term magnitudes"));
  s.push_back(real("balance_min", d.balance_min)
                  .greater_than(0)
                  .help("adaptive balance: smallest factor on a base weight"));
  s.push_back(real("balance_max", d.balance_max)
                  .greater_than(0)
                  .help("adaptive balance: largest factor on a base weight"));
  s.push_back(boolean("sample_grid", d.sample_grid)
                  .help("write samples/epoch_NNN.png in the run folder after every epoch"));
  s.push_back(integer("grid_images", d.grid_images).at_least(1).help("images per sample grid"));
  s.push_back(string("student_mode", d.student_mode)
                  .one_of({"train", "eval"})
                  .help("the student's mode inside generator updates: train (its BatchNorm "
                        "statistics absorb synthesis batches) or eval (they do not)"));
  s.push_back(real("real_fraction", d.real_fraction)
                  .at_least(0)
                  .at_most(1)
                  .help("share of each student batch taken from the real training split with its "
                        "labels (0: data-free; reads training images otherwise)"));
  s.push_back(boolean("real_validation", d.real_validation)
                  .help("select the best checkpoint on the real validation split (reads "
                        "training-set images; results.json records it)"));
}

// Whether `value` can stand for a parameter of `type` (an integer stands for a real).
bool fits(const Value& value, ParamType type) {
  switch (type) {
    case ParamType::boolean:
      return std::holds_alternative<bool>(value);
    case ParamType::integer:
      return std::holds_alternative<int64_t>(value);
    case ParamType::real:
      return std::holds_alternative<double>(value) || std::holds_alternative<int64_t>(value);
    case ParamType::string:
      return std::holds_alternative<std::string>(value);
    default:
      return false;
  }
}

}  // namespace

ParamSchema generator_engine_schema(const PluginInfo& info) {
  ParamSchema schema;
  add_update_params(schema, GeneratorOptions{});
  add_student_side_params(schema, GeneratorOptions{});
  for (const auto& [key, value] : info.engine_defaults) {
    const auto spec = std::find_if(schema.begin(), schema.end(),
                                   [&, k = key](const ParamSpec& s) { return s.key == k; });
    if (spec == schema.end())
      throw_plugin_error(fmt::format(
          "generator plugin '{}' gives an engine default for '{}', which [generator] does not "
          "have; its keys: see `ardkit plugins show {}`",
          info.name, key, info.name));
    if (!fits(value, spec->type))
      throw_plugin_error(fmt::format("generator plugin '{}': the engine default {} = {} is not {}",
                                     info.name, key, format_value(value), type_name(spec->type)));
    spec->default_value = spec->type == ParamType::real && std::holds_alternative<int64_t>(value)
                              ? Value(static_cast<double>(std::get<int64_t>(value)))
                              : value;
  }
  return schema;
}

GeneratorOptions generator_options_from(const Params& p) {
  GeneratorOptions o;
  o.lr = p.get_real("lr");
  o.beta1 = p.get_real("beta1");
  o.beta2 = p.get_real("beta2");
  o.latent_lr = p.get_real("latent_lr");
  o.grad_clip = p.get_real("grad_clip");
  o.lr_schedule = p.get_string("lr_schedule");
  o.iterations = p.get_int("iterations");
  o.generator_steps = p.get_int("generator_steps");
  o.student_steps = p.get_int("student_steps");
  o.order = p.get_string("order");
  o.reinitialize = p.get_string("reinitialize");
  o.synthesis_steps = p.get_int("synthesis_steps");
  o.student_batch = p.get_string("student_batch");
  o.pool_size = p.get_int("pool_size");
  o.keep = p.get_string("keep");
  o.warmup_epochs = p.get_int("warmup_epochs");
  o.student_crop_padding = p.get_int("student_crop_padding");
  o.student_flip = p.get_bool("student_flip");
  o.balance = p.get_string("balance");
  o.balance_momentum = p.get_real("balance_momentum");
  o.balance_min = p.get_real("balance_min");
  o.balance_max = p.get_real("balance_max");
  o.sample_grid = p.get_bool("sample_grid");
  o.grid_images = p.get_int("grid_images");
  o.real_validation = p.get_bool("real_validation");
  o.student_mode = p.get_string("student_mode");
  o.real_fraction = p.get_real("real_fraction");
  if (o.real_fraction >= 1)
    throw_config_error(p.origin("real_fraction") +
                       ": [generator] real_fraction must be below 1 (1 would train on real "
                       "images only: drop [generator] for that)");
  if (o.balance_min > o.balance_max)
    throw_config_error(p.origin("balance_min") +
                       ": [generator] balance_min must not exceed "
                       "balance_max");
  const bool pool = o.student_batch == "pool";
  if (pool && o.synthesis_steps == 0 && o.generator_steps == 0)
    throw_config_error(p.origin("student_batch") +
                       ": [generator] student_batch = \"pool\" needs synthesis_steps or "
                       "generator_steps > 0 to fill the pool");
  if ((o.student_batch == "update_batch" || o.student_batch == "update_latent") &&
      o.generator_steps == 0)
    throw_config_error(p.origin("student_batch") + ": [generator] student_batch = \"" +
                       o.student_batch + "\" needs generator_steps > 0");
  return o;
}

}  // namespace ardkit
