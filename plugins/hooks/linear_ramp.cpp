// Hook plugin `linear_ramp`: moves a knob linearly from one value to another over the first
// epochs of training, step by step. The usual use is epsilon warm-up for adversarial training
// (knob "attack.eps"), which keeps small models from collapsing early on MNIST-like data; any
// knob an objective declares (a temperature, a loss weight) can be ramped the same way.
#include <fmt/format.h>

#include <ardkit/ardkit.hpp>

namespace {

using ardkit::Params;

class LinearRamp : public ardkit::Hook {
 public:
  explicit LinearRamp(const Params& p)
      : knob_(p.get_string("knob")),
        from_(p.get_real("from")),
        to_(p.get_real("to")),
        epochs_(p.get_real("epochs")) {}

  std::vector<std::string> knobs() const override {
    return {knob_};
  }
  // Every value of a linear ramp lies between its ends: both in range, all in range.
  void check_knobs(const ardkit::Knobs& declared) const override {
    Hook::check_knobs(declared);
    const ardkit::KnobRange& range = declared.range(knob_);
    for (const double end : {from_, to_})
      if (!range.contains(end))
        ardkit::throw_config_error(fmt::format(
            "linear_ramp would move the knob '{}' to {}, outside its range {}; change from/to",
            knob_, end, range.text()));
  }

  void on_train_start(const ardkit::HookEvent& event, ardkit::Knobs& knobs) override {
    apply(event, knobs);
  }
  void on_step_end(const ardkit::HookEvent& event, ardkit::Knobs& knobs) override {
    apply(event, knobs);
  }

 private:
  // The value depends only on the step count, so a resumed run continues the same ramp.
  void apply(const ardkit::HookEvent& event, ardkit::Knobs& knobs) const {
    const double total = epochs_ * static_cast<double>(event.steps_per_epoch);
    const double t = total > 0 ? std::min(1.0, static_cast<double>(event.step) / total) : 1.0;
    knobs.set(knob_, from_ + (to_ - from_) * t);
  }
  std::string knob_;
  double from_, to_, epochs_;
};

ardkit::ParamSchema schema() {
  using namespace ardkit::param;
  return {
      string("knob", "attack.eps")
          .help("the knob to move (\"attack.eps\" exists whenever there is an [attack])"),
      real("from", 0.0).help("value at the first step"),
      required(ardkit::ParamType::real, "to")
          .help("value reached at the end of the ramp and kept after"),
      real("epochs", 1.0).greater_than(0).help("length of the ramp in epochs (fractions allowed)"),
  };
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest.add(
      ardkit::PluginKind::hook, "linear_ramp", "1.0.0",
      "moves a knob (e.g. attack.eps) linearly over the first epochs", schema(),
      [](const Params& p, const ardkit::BuildContext&) { return std::make_shared<LinearRamp>(p); });
}
