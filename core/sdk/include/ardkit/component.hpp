#pragma once
#include <cstdint>
#include <memory>

#include "ardkit/export.hpp"

namespace ardkit {

enum class PluginKind { model, data, attack, objective, hook, generator };

ARDKIT_API const char* kind_name(PluginKind kind);

// What an objective needs from the experiment, declared where it registers so that
// `ardkit validate` and `ardkit plugins show` know it without building anything.
enum class Need : uint32_t {
  teacher = 1,           // a [teacher] table: the objective distills from it
  attack = 2,            // an [attack] table: it trains on adversarial examples
  same_label_space = 4,  // it compares class probabilities: the teacher's task must be the
                         // student's (cross-task distillation needs a feature objective)
};

// Base of everything a plugin factory returns. Its virtual destructor is defined in core, so the
// type information that dynamic_pointer_cast relies on is unique across all plugin libraries.
class ARDKIT_API Component {
 public:
  virtual ~Component();
};

}  // namespace ardkit
