#pragma once
// The engine's side of a data-free run's [generator] table: the keys that say how the generator
// is driven (updates per iteration, the pool, loss balancing, the student's mode...), which every
// generator plugin shares and which the host reads, so a new generator plugin declares only its
// own network and losses and, through PluginInfo::engine_defaults, what its official code does.
#include <string>

#include "ardkit/export.hpp"
#include "ardkit/params.hpp"
#include "ardkit/plugin.hpp"

namespace ardkit {

// How the engine drives a generator: the host's keys of [generator] (generator_engine_schema),
// with the plugin's own defaults (its official code's, PluginInfo::engine_defaults).
struct GeneratorOptions {
  // Adam on the network (group 0) and on an optimized latent (group 1, latent_lr).
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, latent_lr = 0.0, grad_clip = 0.0;
  std::string lr_schedule = "constant";  // "constant" | "follow" (the student's [schedule] shape)
  // Per epoch: `iterations` x (generator_steps updates, student_steps student steps).
  int64_t iterations = 50, generator_steps = 1, student_steps = 1;
  std::string order = "generator_first";  // | "student_first"
  // Per epoch, before the first student step: re-initialise ("epoch") or not ("never"), then
  // synthesis_steps generator updates whose last batch joins the pool. "round" re-initialises
  // before every round of updates (the synthesis and each iteration's generator_steps): each
  // pooled batch then comes from its own fresh generator and latent.
  std::string reinitialize = "never";
  int64_t synthesis_steps = 0;
  // What a student step trains on: "fresh" (a new latent each step), "update_batch" (the images
  // of the last generator update, detached), "update_latent" (the last update's latent through
  // the updated generator), "pool" (a random batch of the pool of synthesised batches).
  std::string student_batch = "fresh";
  int64_t pool_size = 0;  // batches kept in the pool (oldest dropped first)
  // Which batch of a round joins the pool: "last" (the last update's) or "best" (the lowest
  // total generator loss of the round, FERD's best_mem).
  std::string keep = "last";
  // First epochs of generator updates only: no student step (FERD's warmup, 20 epochs).
  int64_t warmup_epochs = 0;
  // Augmentation of every student batch before the teacher labels it (FERD's std_aug: crop with
  // zero padding 4, horizontal flip); drawn from the global generator, so resume stays exact.
  int64_t student_crop_padding = 0;
  bool student_flip = false;
  // "fixed": each term's own weight; "adaptive" (AGB, see loss_balance.hpp).
  std::string balance = "fixed";
  double balance_momentum = 0.9, balance_min = 0.1, balance_max = 10.0;
  bool sample_grid = true;  // a PNG grid of synthetic samples per epoch in the run folder
  int64_t grid_images = 64;
  // Best-checkpoint selection on the real validation split; off by default, because a data-free
  // run reads no training-set image (results.json records the choice).
  bool real_validation = false;
  // The student's mode while a generator update runs it: "train" lets its BatchNorm running
  // statistics absorb every synthesis batch (DFAD's and ZSKT's code, where the student stays in
  // train()); "eval" leaves them to the student's own steps (FERD keeps the student in eval()).
  std::string student_mode = "train";
  // The share of each student batch taken from the real training split (with its labels) instead
  // of the generator: 0, a data-free run; in (0, 1), a mixture (mixed_batches).
  double real_fraction = 0.0;
};

// The host's keys of a [generator] table, with `info`'s engine defaults in place of the
// engine's own. A default for a key the host does not have, or of the wrong type, is a plugin
// error naming the plugin and the key (the registry refuses such a library when it loads it).
ARDKIT_API ParamSchema generator_engine_schema(const PluginInfo& info);
// The options a [generator] table's host keys give; combinations that cannot run are config
// errors naming the key.
ARDKIT_API GeneratorOptions generator_options_from(const Params& params);

}  // namespace ardkit
