#pragma once
#include <string>
#include <utility>
#include <vector>

#include "ardkit/attack.hpp"
#include "ardkit/data.hpp"
#include "ardkit/model.hpp"

namespace ardkit {

struct NamedAttack {
  std::string name;  // the label in tables and results ("pgd20")
  AttackPtr attack;
};

struct AttackResult {
  std::string name;
  double accuracy = 0.0;  // robust accuracy in [0,1]
  double seconds = 0.0;
};

struct EvalReport {
  int64_t points = 0;
  double clean_accuracy = 0.0;
  std::vector<AttackResult> attacks;
  double worst_case = 0.0;  // per-sample: correct under every attack (and clean)
  double seconds = 0.0;
  // AutoAttack's sanity checks: signs that the numbers overstate robustness.
  std::vector<std::string> warnings;
};

struct EvalOptions {
  Split split = Split::test;
  int64_t points = 0;  // 0: the whole split
  int64_t batch_size = 500;
  std::string label = "eval";
};

// Clean and robust accuracy of `model` (run in eval mode, no parameter gradients) on the first
// `points` samples of the split. Each attack maximizes cross-entropy. Before attacking, checks the
// model as AutoAttack does (random outputs, probabilities instead of logits, zero input
// gradients) and afterwards whether a gradient-free attack beat all gradient attacks; findings
// go to `warnings` and the log.
ARDKIT_API EvalReport evaluate(Model& model, DataSource& data,
                               const std::vector<NamedAttack>& attacks, const EvalOptions& options);

ARDKIT_API std::string format_report_table(
    const std::vector<std::pair<std::string, EvalReport>>& rows);

}  // namespace ardkit
