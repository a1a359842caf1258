// Plugins that exist to exercise the host: a factory that throws, a hook that requests an
// interrupt after a given number of steps (as Ctrl-C would), and an attack made of another
// plugin (any attack, with any `steps`), for the registry's part builder.
#include <csignal>

#include <ardkit/ardkit.hpp>

namespace {

class InterruptAfter : public ardkit::Hook {
 public:
  explicit InterruptAfter(int64_t steps) : steps_(steps) {}
  void on_step_end(const ardkit::HookEvent& event, ardkit::Knobs&) override {
    if (event.step == steps_)
      std::raise(SIGINT);
  }

 private:
  int64_t steps_;
};

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest.add(
      ardkit::PluginKind::model, "failing", "0", "a model whose factory throws", {},
      [](const ardkit::Params&, const ardkit::BuildContext&) -> std::shared_ptr<ardkit::Component> {
        throw std::runtime_error("deliberate failure");
      });
  manifest.add(ardkit::PluginKind::attack, "composite", "0", "builds the attack `part`",
               {ardkit::param::string("part", "pgd"), ardkit::param::integer("steps", 1)},
               [](const ardkit::Params& p, const ardkit::BuildContext& context) {
                 ardkit::Params values(p.where());
                 values.set("steps", p.get_int("steps"));
                 return context.build_as<ardkit::Attack>(ardkit::PluginKind::attack,
                                                         p.get_string("part"), values);
               });
  manifest.add(ardkit::PluginKind::hook, "interrupt_after", "0", "raises SIGINT after `step` steps",
               {ardkit::param::integer("step", 1).at_least(1)},
               [](const ardkit::Params& p, const ardkit::BuildContext&) {
                 return std::make_shared<InterruptAfter>(p.get_int("step"));
               });
}
