// TensorBoard event-file cost benchmark (not a test): microseconds per metrics record that a
// run's event file ([run] tensorboard = true) adds to metrics.jsonl's, for a step line the size
// of a data-free run's (16 numbers), and per epoch line with a sample grid image, against the
// time of one training step given on the command line, so the share of a step is printed.
//   build/bin/bench_tensorboard [records, default 20000] [step milliseconds, default 75]
// 75 ms is the quickstart's PGD-AT step (batch 128 at ~1,700 img/s on 2 cores of the Xeon).
#include <fmt/format.h>
#include <torch/torch.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include <ardkit/host/image_grid.hpp>
#include <ardkit/host/run_dir.hpp>

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  const int64_t records = argc > 1 ? std::stoll(argv[1]) : 20000;
  const double step_ms = argc > 2 ? std::stod(argv[2]) : 75.0;
  const fs::path root = fs::temp_directory_path() / fmt::format("ardkit-bench-tb-{}", getpid());
  fs::remove_all(root);
  const auto seconds = [](auto start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  // Step lines as the trainer writes them (loss terms, generator terms, sample statistics,
  // knobs) into a run folder, without and with its event file: microseconds per line.
  const auto write_steps = [&](const fs::path& folder, bool tensorboard) {
    ardkit::RunDir run(folder, "bench", "bench.toml");
    ardkit::write_file_atomic(folder / "config.toml", "[run]\nname = \"bench\"\n");
    if (tensorboard)
      run.start_tensorboard(0);
    const auto start = std::chrono::steady_clock::now();
    for (int64_t s = 1; s <= records; ++s) {
      nlohmann::json line = {{"type", "step"}, {"epoch", 1},
                             {"step", s},      {"time", 1.7e9 + static_cast<double>(s)},
                             {"lr", 0.05},     {"images_per_s", 1700.0}};
      for (const char* k : {"loss", "kl_adv", "kl_nat", "gen.loss", "gen.bn", "gen.oh", "gen.adv",
                            "syn.class_entropy", "syn.mean", "syn.std", "syn.teacher_confidence",
                            "knob.attack.eps", "knob.temperature", "knob.alpha"})
        line[k] = 0.001 * static_cast<double>(s);
      run.append_metrics(line.dump());
    }
    return 1e6 * seconds(start) / static_cast<double>(records);
  };
  const double plain_us = write_steps(root / "plain", false);
  const double step_us = write_steps(root / "events", true);
  ardkit::RunDir run(root / "images", "bench", "bench.toml");
  run.start_tensorboard(0);
  fs::create_directories(root / "images" / "samples");
  // An epoch line with its 64-image sample grid.
  const int64_t epochs = std::max<int64_t>(records / 100, 1);
  const auto start = std::chrono::steady_clock::now();
  for (int64_t e = 1; e <= epochs; ++e) {
    ardkit::write_image_grid(torch::rand({64, 1, 28, 28}),
                             root / "images" / "samples" / fmt::format("epoch_{:03d}.png", e), 8);
    run.append_metrics(
        nlohmann::json(
            {{"type", "epoch"}, {"epoch", e}, {"step", records + e}, {"train_loss", 1.0}})
            .dump());
  }
  const double epoch_us = 1e6 * seconds(start) / static_cast<double>(epochs);
  std::cout << fmt::format(
      "step line (16 numbers): metrics.jsonl alone {:.1f} us, with the event file {:.1f} us; "
      "the event file adds {:.1f} us, {:.3f}% of a {:.0f} ms step at log_every = 1\n"
      "epoch line with a 64-image sample grid (PNG written too): {:.0f} us per epoch\n",
      plain_us, step_us, step_us - plain_us, 100 * (step_us - plain_us) / (1000 * step_ms), step_ms,
      epoch_us);
  fs::remove_all(root);
  return 0;
}
