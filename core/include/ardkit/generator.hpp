#pragma once
#include <map>
#include <string>

#include "ardkit/data.hpp"
#include "ardkit/knobs.hpp"
#include "ardkit/model.hpp"

namespace ardkit {

// A learned data source for data-free distillation (DFARD, DFAD, ZSKT): it synthesizes batches
// and updates itself, with its own optimizer, from the teacher and student it is given each step.
// This is the interface such data plugins implement. The engine does not drive generators yet:
// that arrives with the data-free distillation work, which will train the student on `sample`
// batches after each `update` and checkpoint `state`.
class ARDKIT_API Generator : public DataSource {
 public:
  virtual Batch sample(int64_t batch_size) = 0;
  // One generator update; returns named loss terms for the logs.
  virtual std::map<std::string, double> update(Model& teacher, Model& student, Knobs& knobs) = 0;
  // Generator weights and optimizer state to checkpoint.
  virtual std::shared_ptr<torch::nn::Module> state() = 0;
};

}  // namespace ardkit
