#pragma once
#include <filesystem>
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

// A composite attack's stage: robust accuracy after it (and all stages before it).
struct StageResult {
  std::string name;
  double accuracy = 0.0;
  double seconds = 0.0;
};

struct AttackResult {
  std::string name;
  double accuracy = 0.0;  // robust accuracy in [0,1]
  double seconds = 0.0;
  std::vector<StageResult> stages;  // composite attacks (autoattack) only
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
  // Each attack batch draws its random starts from a generator seeded by (seed, attack, batch):
  // the numbers do not depend on what ran before, and a resumed evaluation gives the same ones.
  int64_t seed = 0;
  // Set: progress is saved there after every batch, and an evaluation interrupted at any point
  // resumes from it when it is called again with the same `fingerprint` (a different one starts
  // over). The caller removes the file once the results are safely written.
  std::filesystem::path state_file;
  std::string fingerprint;
};

// Clean and robust accuracy of `model` (run in eval mode, no parameter gradients) on the first
// `points` samples of the split. Each attack maximizes cross-entropy. Before attacking, checks the
// model as AutoAttack does (random outputs, probabilities instead of logits, zero input
// gradients) and afterwards whether a gradient-free attack beat all gradient attacks; findings
// go to `warnings` and the log. The caller's default random generator is left as it was.
ARDKIT_API EvalReport evaluate(Model& model, DataSource& data,
                               const std::vector<NamedAttack>& attacks, const EvalOptions& options);

// Whether `options.state_file` holds progress that an evaluation of `points` points with these
// options would resume from (what `evaluate` checks first). An unreadable, foreign or
// inconsistent file is not usable: the evaluation starts over, with a log line.
ARDKIT_API bool evaluation_state_usable(const EvalOptions& options, int64_t points);

ARDKIT_API std::string format_report_table(
    const std::vector<std::pair<std::string, EvalReport>>& rows);

}  // namespace ardkit
