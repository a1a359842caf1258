// Objective plugin `natural`: cross-entropy on clean inputs (the non-robust baseline).
#include <ardkit/ardkit.hpp>

namespace {

class Natural : public ardkit::Objective {
 public:
  ardkit::LossTerms compute(ardkit::StepContext& c) override {
    auto loss = torch::nn::functional::cross_entropy(c.student.logits(c.batch.x), c.batch.y);
    return {loss, {{"ce", loss}}};
  }
};

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest.add(ardkit::PluginKind::objective, "natural", "1.0.0", "cross-entropy on clean inputs",
               {}, [](const ardkit::Params&, const ardkit::BuildContext&) {
                 return std::make_shared<Natural>();
               });
}
