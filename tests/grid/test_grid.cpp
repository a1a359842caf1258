// Grid files: expansion into cells (product, zip groups, exclusions, the experiment axis), the
// command line's axes, and the errors a user meets writing one.
#include "grid_file.hpp"

#include "test_util.hpp"

using ardkit::ErrorKind;
using test::contains;
using test::error_of;

namespace {

const char* kBase = R"(
[run]
seed = 0
[data]
plugin = "synthetic"
[student]
plugin = "small_cnn"
[objective]
plugin = "rslad"
[attack]
plugin = "pgd"
eps = 0.1
[[eval]]
plugin = "fgsm"
eps = 0.1
)";

const char* kNatural = R"(
[data]
plugin = "synthetic"
[student]
plugin = "small_cnn"
[objective]
plugin = "natural"
[[eval]]
plugin = "fgsm"
eps = 0.1
)";

std::vector<std::string> labels(const std::vector<ardkit::GridCell>& cells) {
  std::vector<std::string> out;
  for (const auto& c : cells)
    out.push_back(c.label());
  return out;
}

}  // namespace

TEST_CASE("grid: product of axes, zip groups, [set] and exclusions") {
  test::TempDir dir;
  test::write_text(dir / "rslad.toml", kBase);
  test::write_text(dir / "natural.toml", kNatural);
  test::write_text(dir / "grid.toml", R"(
[grid]
name = "methods"
experiments = ["rslad.toml", "natural.toml"]
[set]
train.epochs = 3
[axes]
run.seed = [0, 1]
[[zip]]
attack.eps = [0.05, 0.1]
eval.0.eps = [0.05, 0.1]
[[exclude]]
experiment = "natural"
run.seed = 1
)");
  const auto spec = ardkit::read_grid(dir / "grid.toml");
  CHECK(spec.name == "methods");
  CHECK(spec.axis_keys() ==
        std::vector<std::string>{"experiment", "run.seed", "attack.eps", "eval.0.eps"});
  const auto cells = spec.cells();
  CHECK(labels(cells) == std::vector<std::string>{
                             "rslad run.seed=0 attack.eps=0.05 eval.0.eps=0.05",
                             "rslad run.seed=0 attack.eps=0.1 eval.0.eps=0.1",
                             "rslad run.seed=1 attack.eps=0.05 eval.0.eps=0.05",
                             "rslad run.seed=1 attack.eps=0.1 eval.0.eps=0.1",
                             "natural run.seed=0 attack.eps=0.05 eval.0.eps=0.05",
                             "natural run.seed=0 attack.eps=0.1 eval.0.eps=0.1",
                         });
  CHECK(cells[3].index == 3);
  CHECK(cells[3].overrides == std::vector<std::string>{"train.epochs=3", "run.seed=1",
                                                       "attack.eps=0.1", "eval.0.eps=0.1"});
  // natural has no [attack]: the coordinate is recorded, the key is not set.
  CHECK(cells[4].overrides ==
        std::vector<std::string>{"train.epochs=3", "run.seed=0", "eval.0.eps=0.05"});
  // The overrides are what `ardkit run --set` applies.
  const auto root = ardkit::read_experiment(cells[3].experiment, cells[3].overrides);
  CHECK(root["attack"]["eps"].value<double>() == 0.1);
  CHECK(root["eval"][0]["eps"].value<double>() == 0.1);
  CHECK(root["train"]["epochs"].value<int64_t>() == 3);
}

TEST_CASE("grid: an experiment file is a grid of itself along --axis") {
  test::TempDir dir;
  test::write_text(dir / "rslad.toml", kBase);
  const auto spec = ardkit::read_grid(
      dir / "rslad.toml", {"objective.plugin=ard,rslad", "schedule.milestones=[2],[1, 2]"},
      {"train.epochs=1"});
  const auto cells = spec.cells();
  REQUIRE(cells.size() == 4);
  CHECK(cells[0].label() == "objective.plugin=ard schedule.milestones=[2]");
  CHECK(cells[3].overrides == std::vector<std::string>{"train.epochs=1",
                                                       "objective.plugin=\"rslad\"",
                                                       "schedule.milestones=[1, 2]"});
  const auto root = ardkit::read_experiment(cells[3].experiment, cells[3].overrides);
  CHECK(root["schedule"]["milestones"].as_array()->size() == 2);
  CHECK(ardkit::split_axis_values("a,[1, 2],\"x,y\",{b = 1}") ==
        std::vector<std::string>{"a", "[1, 2]", "\"x,y\"", "{b = 1}"});
}

TEST_CASE("grid: --axis replaces the file's axis of the same key") {
  test::TempDir dir;
  test::write_text(dir / "rslad.toml", kBase);
  test::write_text(dir / "g.toml",
                   "[grid]\nexperiment = 'rslad.toml'\n[axes]\nrun.seed = [0, 1, 2]\n");
  CHECK(ardkit::read_grid(dir / "g.toml").cells().size() == 3);
  CHECK(ardkit::read_grid(dir / "g.toml", {"run.seed=5"}).cells().size() == 1);
}

TEST_CASE("grid: mistakes are one-line errors naming the place and the fix") {
  test::TempDir dir;
  test::write_text(dir / "rslad.toml", kBase);
  const auto grid = dir / "g.toml";
  const auto error = [&](const std::string& text, std::vector<std::string> axes = {}) {
    test::write_text(grid, text);
    return error_of([&] { ardkit::read_grid(grid, axes).cells(); }, ErrorKind::config);
  };
  CHECK(contains(error("[grid]\nexperiment = 'rslad.toml'\n[axes]\nrun.seed = 1\n"),
                 "g.toml:4:12: [axes] run.seed must be a list of values"));
  CHECK(
      contains(error("[grid]\nexperiment = 'rslad.toml'\n[axes]\nrun.seed = []\n"), "empty list"));
  CHECK(contains(error("[grid]\nexperiment = 'nope.toml'\n"), "experiment 'nope.toml' not found"));
  CHECK(contains(error("[grid]\n"), "[grid] names no experiment"));
  CHECK(contains(error("[grid]\nexperiment = 'rslad.toml'\n[axis]\n"),
                 "unknown table 'axis' (did you mean 'axes'?)"));
  CHECK(contains(error("[grid]\nexperiment = 'rslad.toml'\nexperimnts = []\n"),
                 "did you mean 'experiments'?"));
  CHECK(contains(error("[grid]\nexperiment = 'rslad.toml'\n[[zip]]\nattack.eps = [0.1, 0.2]\n"
                       "attack.steps = [1]\n"),
                 "lists of the same length"));
  CHECK(contains(error("[grid]\nexperiment = 'rslad.toml'\n[axes]\natack.eps = [0.1]\n"),
                 "axis 'atack.eps' sets a table that none of the grid's experiments has"));
  CHECK(contains(error("[grid]\nexperiment = 'rslad.toml'\n[axes]\nrun.seed = [0]\n"
                       "[[exclude]]\nrun.sed = 0\n"),
                 "[[exclude]] names 'run.sed', which is not an axis (did you mean 'run.seed'?)"));
  CHECK(contains(error("[grid]\nexperiment = 'rslad.toml'\n[axes]\nrun.seed = [0]\n"
                       "[[exclude]]\nrun.seed = 0\n"),
                 "every cell of the grid is excluded"));
  CHECK(contains(error("[grid]\nexperiment = 'rslad.toml'\n", {"run.seed"}),
                 "--axis 'run.seed': expected KEY=V1,V2"));
  CHECK(contains(error("[grid]\nexperiment = 'rslad.toml'\n[slurm]\ncpus = 0\n"), "cpus"));
  CHECK(contains(error("[grid\n"), "g.toml:1:"));
}
