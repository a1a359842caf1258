#include "ardkit/host/tensorboard_log.hpp"

#include <fmt/format.h>

#include <cctype>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "ardkit/host/event_file.hpp"
#include "ardkit/progress.hpp"

namespace fs = std::filesystem;

namespace ardkit {

namespace {

using Scalars = std::vector<std::pair<std::string, double>>;

// The tag of one number of a metrics line (see the header for the scheme).
std::string tag_of(const std::string& type, const std::string& key, const nlohmann::json& line) {
  if (type == "test")
    return fmt::format("test/{}/{}", line.value("checkpoint", std::string("last")), key);
  if (type == "epoch")
    return key.rfind("val_", 0) == 0 ? "val/" + key.substr(4) : "epoch/" + key;
  if (const auto dot = key.find('.'); dot != std::string::npos)
    return key.substr(0, dot) + "/" + key.substr(dot + 1);
  return "train/" + key;
}

// The numbers of a line, tagged; the bookkeeping keys are the x-axis, not curves.
Scalars scalars_of(const nlohmann::json& line) {
  Scalars out;
  const std::string type = line.value("type", std::string());
  for (const auto& [key, value] : line.items()) {
    if (!value.is_number() || key == "step" || key == "epoch" || key == "time")
      continue;
    out.emplace_back(tag_of(type, key, line), value.get<double>());
  }
  return out;
}

std::string read_bytes(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

// A label as one folder name: letters, digits and . , = - + kept, anything else (a path's slash,
// spaces) an underscore.
std::string folder_name(const std::string& label) {
  std::string out = label;
  for (char& c : out)
    if (!std::isalnum(static_cast<unsigned char>(c)) &&
        std::string(".,=-+").find(c) == std::string::npos)
      c = '_';
  return out;
}

fs::path samples_of(const fs::path& root, int64_t epoch) {
  return root / "samples" / fmt::format("epoch_{:03d}.png", epoch);
}

}  // namespace

TensorBoardLog::TensorBoardLog(const fs::path& run_root, int64_t resume_step,
                               const std::string& label)
    : root_(run_root) {
  rebuild(resume_step, label);
}

TensorBoardLog::~TensorBoardLog() = default;

const fs::path& TensorBoardLog::file() const {
  return writer_->path();
}

// A new file from the run folder, then the old files go: a TensorBoard reading the folder
// meanwhile sees the curves twice for a moment, never a gap.
void TensorBoardLog::rebuild(int64_t resume_step, const std::string& label) {
  const fs::path folder = root_ / "tensorboard";
  std::vector<fs::path> old;  // under any label the run had before
  if (fs::is_directory(folder))
    for (const auto& entry : fs::recursive_directory_iterator(folder))
      if (entry.path().filename().string().rfind("events.out.tfevents.", 0) == 0)
        old.push_back(entry.path());
  writer_ = std::make_unique<EventFileWriter>(label.empty() ? folder : folder / folder_name(label));
  if (const fs::path config = root_ / "config.toml"; fs::exists(config))
    writer_->text("config", 0, "```toml\n" + read_bytes(config) + "```\n", unix_seconds());
  // The records up to the checkpoint, in the file's order; a repeated (type, step) keeps its
  // latest line, which is what the resumed run went on from.
  std::vector<nlohmann::json> lines;
  std::map<std::pair<std::string, int64_t>, size_t> latest;
  std::ifstream in(root_ / "metrics.jsonl");
  std::string text;
  while (std::getline(in, text)) {
    nlohmann::json line = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (!line.is_object() || !line.contains("step") || !line["step"].is_number_integer())
      continue;  // a line cut by a crash, or one from before steps were recorded
    const int64_t step = line["step"].get<int64_t>();
    const std::string type = line.value("type", std::string());
    if (step > resume_step || type.empty())
      continue;
    const auto key = std::pair{type + "/" + line.value("checkpoint", std::string()), step};
    if (auto it = latest.find(key); it != latest.end()) {
      lines[it->second] = std::move(line);
    } else {
      latest[key] = lines.size();
      lines.push_back(std::move(line));
    }
  }
  for (const auto& line : lines)
    write(line, line.value("time", unix_seconds()));
  last_step_ = std::max(last_step_, resume_step);
  std::error_code ignored;
  for (const auto& file : old)
    fs::remove(file, ignored);
}

void TensorBoardLog::record(const nlohmann::json& line) {
  try {
    write(line, line.value("time", unix_seconds()));
  } catch (const std::exception& e) {
    // Curves are for watching: a full disk or a bad record must not stop a training run.
    log_line(fmt::format("tensorboard: {} (the run goes on; its curves may miss this record)",
                         e.what()));
  }
}

void TensorBoardLog::write(const nlohmann::json& line, double wall_time) {
  const std::string type = line.value("type", std::string());
  const int64_t step = line.contains("step") && line["step"].is_number_integer()
                           ? line["step"].get<int64_t>()
                           : last_step_;
  last_step_ = std::max(last_step_, step);
  Scalars fresh;
  for (auto& [tag, value] : scalars_of(line))
    if (written_.insert({tag, step}).second)
      fresh.emplace_back(std::move(tag), value);
  writer_->scalars(step, fresh, wall_time);
  if (type == "epoch" && line.contains("epoch") && line["epoch"].is_number_integer()) {
    const fs::path grid = samples_of(root_, line["epoch"].get<int64_t>());
    if (fs::exists(grid) && written_.insert({"samples", step}).second)
      writer_->image("samples", step, read_bytes(grid), wall_time);
  }
}

}  // namespace ardkit
