#pragma once
// The plugin contract: what every plugin author needs to declare and register a component. It is
// the SDK (libardkit_sdk and the headers installed as include/ardkit/); the host's engine,
// evaluator, run folders and registry are another library that plugins never see.
//
// Helpers a plugin includes when it uses them, on top of this:
//   ardkit/attack_util.hpp   projections, random starts, loss functions of the attacks
//   ardkit/losses.hpp        KL, soft cross-entropy and the other losses of the objectives
//   ardkit/distill.hpp       the distillation objectives' shared pieces (teacher soft labels...)
//   ardkit/nn/*.hpp          layers, BatchNorm taps, input normalisation for models
//   ardkit/weights.hpp       loading and checking a model's weights
//   ardkit/pytorch_file.hpp  reading PyTorch checkpoints (torch.save files) without Python
//   ardkit/in_memory_data.hpp, ardkit/interrupt.hpp, ardkit/progress.hpp, ardkit/file.hpp,
//   ardkit/text.hpp, ardkit/hash.hpp
#include "ardkit/attack.hpp"
#include "ardkit/component.hpp"
#include "ardkit/data.hpp"
#include "ardkit/error.hpp"
#include "ardkit/generator.hpp"
#include "ardkit/hook.hpp"
#include "ardkit/knobs.hpp"
#include "ardkit/model.hpp"
#include "ardkit/objective.hpp"
#include "ardkit/params.hpp"
#include "ardkit/plugin.hpp"
