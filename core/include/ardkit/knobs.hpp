#pragma once
#include <map>
#include <string>

#include "ardkit/export.hpp"

namespace ardkit {

// Named scalars that may change during training: a temperature, an epsilon, a loss weight.
// Objectives and attacks declare the knobs they read (with their starting value); hooks adjust
// them at step or epoch boundaries. Changes are logged with the metrics and saved in checkpoints.
class ARDKIT_API Knobs {
 public:
  void declare(const std::string& name, double initial);
  bool has(const std::string& name) const;
  double get(const std::string& name) const;  // undeclared name: ardkit::Error listing the known
  void set(const std::string& name, double value);
  const std::map<std::string, double>& all() const {
    return values_;
  }

 private:
  std::map<std::string, double> values_;
};

}  // namespace ardkit
