#pragma once
#include <cstdint>
#include <memory>

#include "ardkit/export.hpp"

namespace ardkit {

enum class PluginKind { model, data, attack, objective, hook, generator };

ARDKIT_API const char* kind_name(PluginKind kind);

// Base of everything a plugin factory returns. Its virtual destructor is defined in core, so the
// type information that dynamic_pointer_cast relies on is unique across all plugin libraries.
class ARDKIT_API Component {
 public:
  virtual ~Component();
};

}  // namespace ardkit
