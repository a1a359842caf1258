#pragma once
#include <limits>
#include <map>
#include <string>

#include "ardkit/export.hpp"

namespace ardkit {

// The values a knob may take. A hook that drives a knob outside them (an epsilon below zero, a
// temperature of zero) is stopped with an error naming the knob, instead of reaching LibTorch.
struct ARDKIT_API KnobRange {
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  bool min_exclusive = false;

  static KnobRange at_least(double low) {
    return {low, std::numeric_limits<double>::infinity(), false};
  }
  static KnobRange above(double low) {
    return {low, std::numeric_limits<double>::infinity(), true};
  }
  static KnobRange between(double low, double high) {
    return {low, high, false};
  }
  bool contains(double value) const;  // false for nan
  std::string text() const;           // "[0, 1]", "> 0"
};

// Named scalars that may change during training: a temperature, an epsilon, a loss weight.
// Objectives and attacks declare the knobs they read (with their starting value and range); hooks
// adjust them at step or epoch boundaries. Changes are logged with the metrics and saved in
// checkpoints.
class ARDKIT_API Knobs {
 public:
  // A knob declared twice keeps its first (possibly adjusted) value and range.
  void declare(const std::string& name, double initial, KnobRange range = {});
  bool has(const std::string& name) const;
  double get(const std::string& name) const;  // undeclared name: ardkit::Error listing the known
  const KnobRange& range(const std::string& name) const;
  // An undeclared name, or a value outside the knob's range (nan included), is an
  // ardkit::Error(config) naming the knob, the value and the range.
  void set(const std::string& name, double value);
  const std::map<std::string, double>& all() const {
    return values_;
  }

 private:
  std::map<std::string, double> values_;
  std::map<std::string, KnobRange> ranges_;
};

}  // namespace ardkit
