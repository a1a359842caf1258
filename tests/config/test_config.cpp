// Parameter schemas, TOML validation and experiment resolution: every bad input gets one line
// naming file:line:column, the table, and the fix.
#include <ardkit/host/config.hpp>
#include <ardkit/text.hpp>

#include "test_util.hpp"

using ardkit::ErrorKind;
using test::contains;
using test::error_of;

namespace {

ardkit::ParamSchema sample_schema() {
  using namespace ardkit::param;
  return {real("eps", 0.1).at_least(0).at_most(1), integer("steps", 10).at_least(1),
          string("random_start", "uniform").one_of({"none", "uniform"}),
          required(ardkit::ParamType::string, "root"), real_list("mean", {})};
}

ardkit::Params validate(const std::string& text) {
  const auto table = toml::parse(std::string_view(text), std::string_view("exp.toml"));
  return ardkit::validate_table(sample_schema(), table, "exp.toml", "attack");
}

}  // namespace

TEST_CASE("nearest suggests close names only") {
  CHECK(ardkit::edit_distance("kitten", "sitting") == 3);
  CHECK(ardkit::nearest("epss", {"eps", "steps"}) == "eps");
  CHECK(ardkit::nearest("zzzzzz", {"eps", "steps"}).empty());
}

TEST_CASE("valid table fills defaults and widens integers to floats") {
  const auto p = validate("root = 'r'\neps = 1\nmean = [0, 0.5]\n");
  CHECK(p.get_real("eps") == doctest::Approx(1.0));
  CHECK(p.get_int("steps") == 10);
  CHECK(p.get_string("random_start") == "uniform");
  CHECK(p.get_real_list("mean") == std::vector<double>{0.0, 0.5});
  CHECK(p.origin("eps") == "exp.toml:2:7");
}

TEST_CASE("unknown key names the position and the nearest valid key") {
  const auto m = error_of([] { validate("root = 'r'\nepss = 0.1\n"); }, ErrorKind::config);
  CHECK(contains(m, "exp.toml:2:1"));
  CHECK(contains(m, "unknown key 'epss'"));
  CHECK(contains(m, "did you mean 'eps'?"));
}

TEST_CASE("wrong type, out of range, bad choice and missing key are config errors") {
  CHECK(contains(error_of([] { validate("root = 'r'\nsteps = 'ten'\n"); }, ErrorKind::config),
                 "exp.toml:2:9: [attack] 'steps' must be an integer, got string \"ten\""));
  CHECK(contains(error_of([] { validate("root = 'r'\nsteps = 2.5\n"); }, ErrorKind::config),
                 "must be an integer"));
  CHECK(contains(error_of([] { validate("root = 'r'\neps = -0.1\n"); }, ErrorKind::config),
                 "'eps' = -0.1 is out of range: it must be in [0, 1]"));
  CHECK(contains(error_of([] { validate("root = 'r'\nsteps = 0\n"); }, ErrorKind::config),
                 "must be >= 1"));
  CHECK(contains(
      error_of([] { validate("root = 'r'\nrandom_start = 'unifrm'\n"); }, ErrorKind::config),
      "did you mean 'uniform'?"));
  CHECK(contains(error_of([] { validate("eps = 0.1\n"); }, ErrorKind::config),
                 "missing required key 'root'"));
  CHECK(contains(error_of([] { validate("root = 'r'\nmean = [0, 'a']\n"); }, ErrorKind::config),
                 "'mean' must be a float list"));
}

TEST_CASE("Params getters refuse keys the schema does not declare") {
  const auto p = validate("root = 'r'\n");
  CHECK(contains(error_of([&] { p.get_real("epz"); }, ErrorKind::runtime), "did you mean 'eps'?"));
  CHECK(contains(error_of([&] { p.get_int("eps"); }, ErrorKind::runtime), "read as integer"));
}

TEST_CASE("experiment files: malformed TOML, unknown table, overrides") {
  test::TempDir dir;
  const auto file = dir / "exp.toml";
  test::write_text(file, "[run]\nseed = 1\n[train\nepochs = 2\n");
  auto m = error_of([&] { ardkit::read_experiment(file, {}); }, ErrorKind::config);
  CHECK(contains(m, file.string() + ":3:"));
  CHECK(contains(m, "malformed TOML"));

  CHECK(contains(
      error_of([&] { ardkit::read_experiment(dir / "missing.toml", {}); }, ErrorKind::config),
      "experiment file not found"));

  test::write_text(file, "[run]\nseed = 1\n[trian]\nepochs = 2\n");
  const auto lookup = [](ardkit::PluginKind kind, const std::string& name,
                         const std::string& where) -> const ardkit::PluginInfo& {
    return test::builtin().find(kind, name, where).info;
  };
  m = error_of([&] { ardkit::resolve_experiment(ardkit::read_experiment(file, {}), file, lookup); },
               ErrorKind::config);
  CHECK(contains(m, ":3:2: unknown table 'trian' (did you mean 'train'?)"));

  test::write_text(file,
                   "[data]\nplugin = 'synthetic'\n[student]\nplugin = "
                   "'small_cnn'\n[objective]\nplugin = 'natural'\n"
                   "[train]\nepochs = 1\n[[eval]]\nplugin = 'pgd'\nsteps = 3\n");
  const auto root =
      ardkit::read_experiment(file, {"train.epochs=3", "train.batch_size=16", "eval.0.steps=5",
                                     "data.plugin=synthetic", "run.name=x"});
  const auto config = ardkit::resolve_experiment(root, file, lookup);
  CHECK(config.train.get_int("epochs") == 3);
  CHECK(config.train.get_int("batch_size") == 16);
  CHECK(config.evals.at(0).params.get_int("steps") == 5);
  CHECK(config.name() == "x");

  // An override with a wrong type is reported as coming from that --set.
  const auto bad = ardkit::read_experiment(file, {"train.epochs=many"});
  CHECK(
      contains(error_of([&] { ardkit::resolve_experiment(bad, file, lookup); }, ErrorKind::config),
               "(--set train.epochs=many): [train] 'epochs' must be"));
  const auto bad_key = ardkit::read_experiment(file, {"train.epoch=3"});
  CHECK(contains(
      error_of([&] { ardkit::resolve_experiment(bad_key, file, lookup); }, ErrorKind::config),
      "(--set train.epoch=3): [train] unknown key 'epoch'"));
  CHECK(contains(error_of([&] { ardkit::read_experiment(file, {"novalue"}); }, ErrorKind::config),
                 "KEY=VALUE"));
}

TEST_CASE("run id depends on what changes results, not on where results go") {
  test::TempDir dir;
  const auto file = dir / "exp.toml";
  test::write_text(file,
                   "[data]\nplugin = 'synthetic'\n[student]\nplugin = "
                   "'small_cnn'\n[objective]\nplugin = 'natural'\n");
  const auto lookup = [](ardkit::PluginKind kind, const std::string& name,
                         const std::string& where) -> const ardkit::PluginInfo& {
    return test::builtin().find(kind, name, where).info;
  };
  auto id = [&](std::vector<std::string> overrides) {
    return ardkit::resolve_experiment(ardkit::read_experiment(file, overrides), file, lookup)
        .run_id();
  };
  const auto base = id({});
  CHECK(base.rfind("exp-", 0) == 0);
  CHECK(id({"run.output=elsewhere", "run.threads=1"}) == base);
  CHECK(id({"train.epochs=2"}) != base);
  CHECK(id({"student.hidden=64"}) != base);
  CHECK(id({"train.epochs=1"}) == base);  // the default written out is the same configuration
}

TEST_CASE("missing plugin tables and plugin keys are explained") {
  test::TempDir dir;
  const auto file = dir / "exp.toml";
  const auto lookup = [](ardkit::PluginKind kind, const std::string& name,
                         const std::string& where) -> const ardkit::PluginInfo& {
    return test::builtin().find(kind, name, where).info;
  };
  auto resolve = [&] {
    ardkit::resolve_experiment(ardkit::read_experiment(file, {}), file, lookup);
  };
  test::write_text(file, "[data]\nplugin = 'synthetic'\n[student]\nplugin = 'small_cnn'\n");
  CHECK(contains(error_of(resolve, ErrorKind::config), "missing table [objective]"));
  test::write_text(file, "[data]\nseed = 1\n");
  CHECK(contains(error_of(resolve, ErrorKind::config), "[data] has no 'plugin' key"));
  test::write_text(file,
                   "[data]\nplugin = 'synthetic'\n[student]\nplugin = 'small_cnn'\nhiden = 3\n");
  CHECK(contains(
      error_of(resolve, ErrorKind::config),
      ":5:1: [student] (plugin 'small_cnn') unknown key 'hiden' (did you mean 'hidden'?)"));
  test::write_text(file, "[data]\nplugin = 'synthetic'\n[student]\nplugin = 'small_cnm'\n");
  const auto m = error_of(resolve, ErrorKind::plugin);
  CHECK(contains(m,
                 ":4:10: [student]: unknown model plugin 'small_cnm' (did you mean 'small_cnn'?)"));
}

TEST_CASE("an objective's attack defaults fill the [attack] keys the user left out") {
  test::TempDir dir;
  const auto file = dir / "exp.toml";
  const auto lookup = [](ardkit::PluginKind kind, const std::string& name,
                         const std::string& where) -> const ardkit::PluginInfo& {
    return test::builtin().find(kind, name, where).info;
  };
  const std::string base =
      "[data]\nplugin = 'synthetic'\n[student]\nplugin = 'small_cnn'\n[teacher]\n"
      "plugin = 'small_cnn'\n[objective]\nplugin = '{}'\n[attack]\nplugin = '{}'\n{}";
  auto resolve = [&](const std::string& objective, const std::string& attack,
                     const std::string& extra) {
    test::write_text(file, fmt::format(base, objective, attack, extra));
    return ardkit::resolve_experiment(ardkit::read_experiment(file, {}), file, lookup);
  };
  // RSLAD attacks from x + 0.001 N(0, I), unclipped; the user's eps wins.
  auto c = resolve("rslad", "pgd", "eps = 0.1\n");
  CHECK(c.attack->params.get_string("random_start") == "gaussian");
  CHECK_FALSE(c.attack->params.get_bool("clip_start"));
  CHECK(c.attack->params.get_real("eps") == doctest::Approx(0.1));
  CHECK(c.attack->params.get_real("step_size") == doctest::Approx(2.0 / 255));
  // ARD: uniform, unclipped. TRADES: its own radius and step.
  c = resolve("ard", "pgd", "");
  CHECK(c.attack->params.get_string("random_start") == "uniform");
  CHECK_FALSE(c.attack->params.get_bool("clip_start"));
  c = resolve("trades", "pgd", "random_start = 'none'\n");
  CHECK(c.attack->params.get_real("eps") == doctest::Approx(0.031));
  CHECK(c.attack->params.get_real("step_size") == doctest::Approx(0.007));
  CHECK(c.attack->params.get_string("random_start") == "none");
  // Keys the attack plugin lacks are skipped: apgd has no random_start.
  c = resolve("rslad", "apgd", "");
  CHECK(c.attack->params.get_real("eps") == doctest::Approx(8.0 / 255));
  // pgd_at's variant picks the recipe.
  c = resolve("pgd_at", "pgd", "");
  CHECK(c.attack->params.get_bool("clip_start"));
  test::write_text(file, fmt::format(base, "pgd_at", "pgd", "") + "");
  const auto root = ardkit::read_experiment(file, {"objective.variant=adaad"});
  CHECK(ardkit::resolve_experiment(root, file, lookup).attack->params.get_string("random_start") ==
        "gaussian");
}

TEST_CASE("a variant's defaults apply unless the user wrote the key") {
  // Declared before the key they depend on, as a plugin may order its schema.
  const ardkit::ParamSchema schema = {
      ardkit::param::integer("begin", 60).default_when("variant", "iad2", int64_t{40}),
      ardkit::param::real("temperature", 1.0).default_when("variant", "adaiad", 30.0),
      ardkit::param::string("variant", "iad1").one_of({"iad1", "iad2", "adaiad"}),
  };
  const auto validate = [&](const std::string& text) {
    return ardkit::validate_table(schema, toml::parse(text), "exp.toml", "objective");
  };
  CHECK(validate("").get_int("begin") == 60);
  CHECK(validate("variant = \"iad2\"").get_int("begin") == 40);
  CHECK(validate("variant = \"iad2\"").get_real("temperature") == 1.0);
  CHECK(validate("variant = \"adaiad\"").get_real("temperature") == 30.0);
  CHECK(validate("variant = \"iad2\"\nbegin = 7").get_int("begin") == 7);
  CHECK(schema[0].default_text() == "60 (variant = iad2: 40)");
  // fill_defaults on hand-built values sees the variant set before it.
  ardkit::Params p;
  p.set("variant", std::string("iad2"));
  ardkit::fill_defaults(schema, p);
  CHECK(p.get_int("begin") == 40);
  // A conditional default on a key the schema lacks is the plugin author's error, not a crash.
  const ardkit::ParamSchema broken = {
      ardkit::param::integer("begin", 60).default_when("mode", "x", int64_t{1})};
  ardkit::Params q;
  CHECK_THROWS_WITH_AS(ardkit::fill_defaults(broken, q), doctest::Contains("'mode'"),
                       ardkit::Error);
}
