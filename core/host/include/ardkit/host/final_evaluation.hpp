#pragma once
// The end of a training run: the test-split evaluation of its last (and best) weights and
// results.json.
#include <string>
#include <utility>
#include <vector>

#include "ardkit/host/run_dir.hpp"
#include "ardkit/host/trainer.hpp"

namespace ardkit {

// What the run spent, by name (student_steps, teacher_queries, ...), for results.json's budget.
using RunBudget = std::vector<std::pair<std::string, int64_t>>;

// Evaluates the student's last weights, then the best checkpoint's when validation chose one
// (loading it into the student), each resumable batch by batch; writes results.json atomically
// once every number is in. Each checkpoint's numbers also go to metrics.jsonl as a "test" line
// at global step `step` (the curves' last point).
ARDKIT_API void write_final_results(TrainSetup& setup, RunDir& run, const RunBudget& budget,
                                    int64_t step);

}  // namespace ardkit
