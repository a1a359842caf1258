// run_experiment(), what `ardkit run` is, called as a function: the teacher first, the run
// folder's state, a completed run reported again, and a failure recorded in status.json.
#include <doctest/doctest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include <ardkit/host/run_dir.hpp>

#include "run_experiment.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;

namespace {

const char* kTeacher = R"(
[run]
name = "teacher"
seed = 1
[data]
plugin = "synthetic"
train_size = 128
validation = 32
test_size = 32
[student]
plugin = "small_cnn"
conv1 = 8
conv2 = 8
hidden = 16
[objective]
plugin = "natural"
[train]
epochs = 1
batch_size = 32
)";

std::string student_of(const std::string& teacher_file) {
  std::string text = kTeacher;
  text.replace(text.find("name = \"teacher\""), 16, "name = \"student\"");
  text.replace(text.find("plugin = \"natural\""), 18, "plugin = \"ard\"");
  return text + "[teacher]\nexperiment = \"" + teacher_file + "\"\n[attack]\nplugin = \"fgsm\"\n" +
         "eps = 0.1\n";
}

std::vector<fs::path> runs_in(const fs::path& store) {
  std::vector<fs::path> out;
  if (fs::is_directory(store))
    for (const auto& e : fs::directory_iterator(store))
      if (e.is_directory())
        out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

std::string state_of(const fs::path& run) {
  std::ifstream in(run / "status.json");
  return nlohmann::json::parse(in).value("state", "");
}

}  // namespace

TEST_CASE("run_experiment trains the teacher first, then the student, and reuses both") {
  test::TempDir dir;
  test::write_text(dir / "teacher.toml", kTeacher);
  test::write_text(dir / "student.toml", student_of("teacher.toml"));
  ardkit::cli::RunRequest request;
  request.file = (dir / "student.toml").string();
  request.overrides = {"run.output=" + nlohmann::json((dir / "runs").string()).dump(),
                       "run.threads=1"};
  REQUIRE(ardkit::cli::run_experiment(request) == 0);
  const auto runs = runs_in(dir / "runs");
  REQUIRE(runs.size() == 2);
  for (const auto& run : runs) {
    CAPTURE(run.string());
    CHECK(ardkit::run_completed(run));
    CHECK(state_of(run) == "completed");
  }
  CHECK(runs[0].filename().string().rfind("student-", 0) == 0);
  CHECK(runs[1].filename().string().rfind("teacher-", 0) == 0);
  // Again: nothing is trained (the folders' results stay as they were) and it succeeds.
  const auto written = fs::last_write_time(runs[0] / "results.json");
  REQUIRE(ardkit::cli::run_experiment(request) == 0);
  CHECK(fs::last_write_time(runs[0] / "results.json") == written);
  CHECK(runs_in(dir / "runs").size() == 2);
}

TEST_CASE("run_experiment records a failure in status.json and throws one line") {
  test::TempDir dir;
  // A learning rate so large that the loss is not finite within the first steps.
  test::write_text(dir / "teacher.toml", std::string(kTeacher) + "[optimizer]\nlr = 1e30\n");
  ardkit::cli::RunRequest request;
  request.file = (dir / "teacher.toml").string();
  request.overrides = {"run.output=" + nlohmann::json((dir / "runs").string()).dump()};
  CHECK_THROWS_AS(ardkit::cli::run_experiment(request), ardkit::Error);
  const auto runs = runs_in(dir / "runs");
  REQUIRE(runs.size() == 1);
  CHECK(state_of(runs[0]) == "failed");
  CHECK_FALSE(ardkit::run_completed(runs[0]));
}
