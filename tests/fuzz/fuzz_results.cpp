// The JSON a report reads back from a run folder, hand-edited, cut short by a crash or written by
// something else: results.json, an evaluation's evals/NAME.json, metrics.jsonl, config.toml and
// an evaluation's resume state, through `ardkit report` (the results index, grouping, every
// output format) and the evaluation-state check `ardkit eval` resumes with.
#include <ardkit/host/evaluator.hpp>

#include "../../tools/ardkit/commands.hpp"
#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // The report goes to stdout; a fuzzer's terminal has no use for thousands of them.
  if (!std::freopen("/dev/null", "w", stdout))
    std::abort();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto p = fuzz::parts(std::string_view(reinterpret_cast<const char*>(data), size), 5);
  const auto store = fuzz::scratch() / "store";
  std::error_code ec;
  std::filesystem::remove_all(store, ec);
  const auto run = store / "tiny-0123456789ab";
  // A completed run as far as status.json goes, so the report reads everything else.
  fuzz::write(run / "status.json", R"({"state": "completed", "run_id": "0123456789ab"})");
  fuzz::write(run / "results.json", p[0]);
  fuzz::write(run / "evals" / "best-test.json", p[1]);
  fuzz::write(run / "metrics.jsonl", p[2]);
  fuzz::write(run / "config.toml", p[3]);
  const std::string html = (fuzz::scratch() / "report.html").string();
  for (std::vector<std::string> args :
       {std::vector<std::string>{"--format", "json", "--html", html},
        {"--format", "latex"},
        {"--format", "robustbench"}}) {
    args.insert(args.begin(), store.string());
    fuzz::expect_clean([&] { ardkit::cli::report_command(args); });
  }
  const auto state = fuzz::write(fuzz::scratch() / "eval-state.json", p[4]);
  ardkit::EvalOptions options;
  options.state_file = state;
  options.fingerprint = "fingerprint";
  options.batch_size = 4;
  fuzz::expect_clean([&] { ardkit::evaluation_state_usable(options, 8); });
  return 0;
}
