#include "ardkit/host/checkpointer.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <torch/torch.h>

#include <sstream>

#include "ardkit/error.hpp"
#include "ardkit/host/run_dir.hpp"
#include "ardkit/weights.hpp"

namespace fs = std::filesystem;

namespace ardkit {

namespace {

// A handle sharing the default CPU generator (the accessor returns it const).
at::Generator default_cpu_generator() {
  return at::detail::getDefaultCPUGenerator();
}

torch::Tensor read_entry(torch::serialize::InputArchive& archive, const std::string& key) {
  torch::Tensor t;
  archive.read(key, t);
  return t;
}

void write_position(torch::serialize::OutputArchive& archive, const TrainPosition& position) {
  archive.write("epoch", torch::tensor(position.epoch));
  archive.write("step_in_epoch", torch::tensor(position.step_in_epoch));
  archive.write("global_step", torch::tensor(position.global_step));
  archive.write("best_metric", torch::tensor(position.best_metric, torch::kDouble));
  torch::serialize::OutputArchive sums_archive;
  for (const auto& [name, sum] : position.epoch_sums)
    sums_archive.write(name, torch::tensor(sum, torch::kDouble));
  archive.write("epoch_sums", sums_archive);
  archive.write("epoch_counted", torch::tensor(position.epoch_counted));
  archive.write("epoch_images", torch::tensor(position.epoch_images));
}

TrainPosition read_position(torch::serialize::InputArchive& archive) {
  TrainPosition position;
  position.epoch = read_entry(archive, "epoch").item<int64_t>();
  position.step_in_epoch = read_entry(archive, "step_in_epoch").item<int64_t>();
  position.global_step = read_entry(archive, "global_step").item<int64_t>();
  position.best_metric = read_entry(archive, "best_metric").item<double>();
  // Checkpoints from before the epoch totals were kept lack them: the epoch's averages then
  // cover the steps after the resume, as they used to.
  torch::serialize::InputArchive sums_archive;
  torch::Tensor count;
  if (archive.try_read("epoch_sums", sums_archive) && archive.try_read("epoch_counted", count)) {
    position.epoch_counted = count.item<int64_t>();
    position.epoch_images = read_entry(archive, "epoch_images").item<int64_t>();
    for (const auto& name : sums_archive.keys())
      position.epoch_sums[name] = read_entry(sums_archive, name).item<double>();
  }
  return position;
}

}  // namespace

void Checkpointer::save(const fs::path& path, const TrainPosition& position) const {
  torch::serialize::OutputArchive archive;
  torch::serialize::OutputArchive student_archive, optimizer_archive, knob_archive;
  parts_.student->save(student_archive);
  archive.write("student", student_archive);
  if (parts_.objective->has_state()) {
    torch::serialize::OutputArchive objective_archive;
    parts_.objective->save_state(objective_archive);
    archive.write("objective", objective_archive);
  }
  parts_.optimizer->save(optimizer_archive);
  archive.write("optimizer", optimizer_archive);
  if (const std::string key = parts_.source->state_key(); !key.empty()) {
    torch::serialize::OutputArchive source_archive;
    parts_.source->save(source_archive);
    archive.write(key, source_archive);
  }
  const auto& hooks = *parts_.hooks;
  for (size_t i = 0; i < hooks.size(); ++i)
    if (hooks[i]->has_state()) {
      torch::serialize::OutputArchive hook_archive;
      hooks[i]->save_state(hook_archive);
      archive.write(fmt::format("hook{}", i), hook_archive);
    }
  for (const auto& [name, value] : parts_.knobs->all())
    knob_archive.write(name, torch::tensor(value, torch::kDouble));
  archive.write("knobs", knob_archive);
  write_position(archive, position);
  if (parts_.teacher)
    archive.write("teacher_queries", torch::tensor(parts_.teacher->queries()));
  for (const auto& [name, teacher] : parts_.teachers)
    archive.write("teacher_queries_" + name, torch::tensor(teacher->queries()));
  for (const auto& companion : parts_.companions) {
    torch::serialize::OutputArchive entry, model, optimizer;
    companion.model->save(model);
    companion.optimizer->save(optimizer);
    entry.write("model", model);
    entry.write("optimizer", optimizer);
    archive.write("companion_" + companion.name, entry);
  }
  if (parts_.average && parts_.average->active()) {
    torch::serialize::OutputArchive average_archive;
    parts_.average->save(average_archive);
    archive.write("weight_average", average_archive);
  }
  archive.write("rng", default_cpu_generator().get_state());
  // Attacks' random starts on a GPU draw from its generator: saved too, so a resumed CUDA run
  // draws what the uninterrupted one would have.
  if (const auto device = device_of(*parts_.student); device.is_cuda())
    archive.write("cuda_rng", at::globalContext().defaultGenerator(device).get_state());
  std::ostringstream bytes;
  archive.save_to(bytes);
  write_file_atomic(path, bytes.str());
}

TrainPosition Checkpointer::load(const fs::path& path) const {
  torch::serialize::InputArchive archive;
  try {
    // Mapped onto the run's device: a checkpoint written on a GPU resumes on the CPU and the
    // other way round (parameters and optimizer state land where the student is).
    const torch::Device device = device_of(*parts_.student);
    archive.load_from(path.string(), device);
    torch::serialize::InputArchive student_archive, optimizer_archive, knob_archive;
    archive.read("student", student_archive);
    parts_.student->load(student_archive);
    if (parts_.objective->has_state()) {
      torch::serialize::InputArchive objective_archive;
      archive.read("objective", objective_archive);
      parts_.objective->load_state(objective_archive);
    }
    archive.read("optimizer", optimizer_archive);
    parts_.optimizer->load(optimizer_archive);
    if (const std::string key = parts_.source->state_key(); !key.empty()) {
      torch::serialize::InputArchive source_archive;
      archive.read(key, source_archive);
      parts_.source->load(source_archive);
    }
    const auto& hooks = *parts_.hooks;
    for (size_t i = 0; i < hooks.size(); ++i)
      if (hooks[i]->has_state()) {
        torch::serialize::InputArchive hook_archive;
        archive.read(fmt::format("hook{}", i), hook_archive);
        hooks[i]->load_state(hook_archive);
      }
    archive.read("knobs", knob_archive);
    for (const auto& [name, value] : parts_.knobs->all())
      parts_.knobs->set(name, read_entry(knob_archive, name).item<double>());
    const TrainPosition position = read_position(archive);
    torch::Tensor queries;  // absent from checkpoints older than the budget counts
    if (parts_.teacher && archive.try_read("teacher_queries", queries))
      parts_.teacher->set_queries(queries.item<int64_t>());
    for (const auto& [name, teacher] : parts_.teachers)
      teacher->set_queries(read_entry(archive, "teacher_queries_" + name).item<int64_t>());
    for (const auto& companion : parts_.companions) {
      torch::serialize::InputArchive entry, model, optimizer;
      archive.read("companion_" + companion.name, entry);
      entry.read("model", model);
      entry.read("optimizer", optimizer);
      companion.model->load(model);
      companion.optimizer->load(optimizer);
    }
    if (parts_.average && parts_.average->active()) {
      torch::serialize::InputArchive average_archive;
      archive.read("weight_average", average_archive);
      parts_.average->load(average_archive);
    }
    default_cpu_generator().set_state(read_entry(archive, "rng").cpu());
    torch::Tensor cuda_rng;
    if (device.is_cuda() && archive.try_read("cuda_rng", cuda_rng))
      at::Generator(at::globalContext().defaultGenerator(device)).set_state(cuda_rng.cpu());
    return position;
  } catch (const c10::Error& e) {
    throw_runtime_error(
        fmt::format("{}: checkpoint is unreadable or does not match this experiment ({}); "
                    "delete it to start the run over",
                    path.string(), e.what_without_backtrace()));
  }
}

}  // namespace ardkit
