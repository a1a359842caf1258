#pragma once
// Everything a plugin author needs: the plugin contract. The headers of ardkit/ are that contract
// (with ardkit/distill.hpp, the objectives' helpers, and ardkit/nn/layers.hpp); ardkit/host/
// holds the host's internals (engine, evaluator, run folders, configuration, registry), which
// plugins never include and which may change without an ABI bump.
#include "ardkit/attack.hpp"
#include "ardkit/attack_util.hpp"
#include "ardkit/component.hpp"
#include "ardkit/data.hpp"
#include "ardkit/error.hpp"
#include "ardkit/generator.hpp"
#include "ardkit/hook.hpp"
#include "ardkit/in_memory_data.hpp"
#include "ardkit/interrupt.hpp"
#include "ardkit/knobs.hpp"
#include "ardkit/losses.hpp"
#include "ardkit/model.hpp"
#include "ardkit/nn/batch_norm.hpp"
#include "ardkit/nn/input_normalization.hpp"
#include "ardkit/objective.hpp"
#include "ardkit/params.hpp"
#include "ardkit/plugin.hpp"
#include "ardkit/pytorch_file.hpp"
#include "ardkit/weights.hpp"
