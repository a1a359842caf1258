// Plugin loading: discovery, the ABI handshake, duplicate and unknown names, lifetime.
#include <ardkit/attack.hpp>

#include "test_util.hpp"

namespace fs = std::filesystem;
using ardkit::ErrorKind;
using test::contains;
using test::error_of;

namespace {
const fs::path kTestPlugins = ARDKIT_TEST_PLUGIN_DIR;
const fs::path kBuiltin = ardkit::builtin_plugin_dir();

// The load error of the one bad library in `dir`, searched before the built-in folder: the bad
// library is set aside, the built-in plugins still work, and looking up a plugin that is missing
// names the bad library, which may be the one that provides it.
std::string load_error(const fs::path& dir) {
  ardkit::Registry registry({dir, kBuiltin});
  REQUIRE(registry.broken().size() == 1);
  CHECK(registry.find(ardkit::PluginKind::attack, "pgd").info.name == "pgd");
  const std::string error = registry.broken()[0].error;
  CHECK(contains(
      error_of([&] { registry.find(ardkit::PluginKind::hook, "its_plugin"); }, ErrorKind::plugin),
      "unknown hook plugin 'its_plugin'"));
  CHECK(contains(
      error_of([&] { registry.find(ardkit::PluginKind::hook, "its_plugin"); }, ErrorKind::plugin),
      "a library that may provide it failed to load: " + error));
  return error;
}
}  // namespace

TEST_CASE("built-in plugins load with kind, version and library") {
  const auto& r = test::builtin();
  const auto& pgd = r.find(ardkit::PluginKind::attack, "pgd");
  CHECK(pgd.info.version == "1.0.0");
  CHECK(pgd.library.filename() == "ardkit_pgd.so");
  for (const char* name : {"idx", "synthetic"})
    CHECK(r.find(ardkit::PluginKind::data, name).info.name == name);
  CHECK(r.find(ardkit::PluginKind::model, "small_cnn").info.schema.size() >= 3);
}

TEST_CASE("unknown plugin names list the kind's plugins and the nearest") {
  const auto m = error_of(
      [] { test::builtin().find(ardkit::PluginKind::attack, "pgdd", "exp.toml:3:10: [attack]"); },
      ErrorKind::plugin);
  CHECK(contains(m, "exp.toml:3:10: [attack]: unknown attack plugin 'pgdd' (did you mean 'pgd'?)"));
  CHECK(
      contains(m, "known attack plugins: apgd, apgd_t, autoattack, cw_inf, fab, fab_t, fgsm, pgd"));
  CHECK(contains(error_of([] { test::builtin().find(ardkit::PluginKind::attack, "small_cnn"); },
                          ErrorKind::plugin),
                 "'small_cnn' is a model plugin"));
}

TEST_CASE("a library built for another ABI is refused, saying what differs") {
  const auto m = load_error(kTestPlugins / "abi");
  CHECK(contains(m,
                 "test_abi_mismatch.so: built for ardkit plugin ABI 999, this ardkit speaks "
                 "ABI " ARDKIT_STRINGIFY(ARDKIT_ABI_VERSION)));
  CHECK(contains(m, "rebuild the plugin"));
}

TEST_CASE("missing entry symbol, non-plugin library and garbage file are set aside") {
  CHECK(contains(load_error(kTestPlugins / "nosym"), "missing entry symbol 'ardkit_register'"));
  CHECK(contains(load_error(kTestPlugins / "notplugin"), "not an ardkit plugin"));
  test::TempDir dir;
  test::write_text(dir / "broken.so", "this is not an ELF file");
  CHECK(contains(load_error(dir.path), "broken.so: cannot be read as a shared library"));
  CHECK(contains(
      error_of([&] { ardkit::Registry registry({dir / "nonexistent"}); }, ErrorKind::plugin),
      "does not exist"));
}

TEST_CASE("a library built with the old std::string ABI is named as such") {
  // Without the diagnosis: a dlerror about an undefined mangled symbol, or Boost.DLL's
  // "Bad file descriptor".
  const auto m = load_error(kTestPlugins / "oldabi");
  CHECK(contains(m, "test_old_string_abi.so: built with the pre-C++11 std::string ABI"));
  CHECK(contains(m, "`ardkit::throw_plugin_error(std::string const&)`"));
}

TEST_CASE("two libraries providing the same plugin is an error naming both files") {
  test::TempDir dir;
  fs::copy_file(kBuiltin / "ardkit_pgd.so", dir / "my_pgd.so");
  const auto m = error_of(
      [&] {
        ardkit::Registry registry({dir.path, kBuiltin});
      },
      ErrorKind::plugin);
  CHECK(contains(m, "attack plugin 'pgd' is provided by both"));
  CHECK(contains(m, (dir / "my_pgd.so").string()));
  CHECK(contains(m, (kBuiltin / "ardkit_pgd.so").string()));
}

TEST_CASE("a library of the same file name earlier in the path shadows the built-in one") {
  test::TempDir dir;
  fs::copy_file(kBuiltin / "ardkit_pgd.so", dir / "ardkit_pgd.so");
  ardkit::Registry registry({dir.path, kBuiltin});
  CHECK(registry.find(ardkit::PluginKind::attack, "pgd").library == dir / "ardkit_pgd.so");
}

TEST_CASE("a throwing factory becomes an ardkit::Error naming the plugin") {
  ardkit::Registry registry({kTestPlugins / "good"});
  const auto m = error_of(
      [&] {
        registry.create<ardkit::Model>(ardkit::PluginKind::model, "failing", ardkit::Params(), {});
      },
      ErrorKind::runtime);
  CHECK(contains(m, "model plugin 'failing'"));
  CHECK(contains(m, "deliberate failure"));
}

TEST_CASE("objects outlive the registry that created them") {
  std::shared_ptr<ardkit::Attack> attack;
  {
    ardkit::Registry registry({kBuiltin});
    const auto& entry = registry.find(ardkit::PluginKind::attack, "fgsm");
    ardkit::Params params;
    ardkit::fill_defaults(entry.info.schema, params);
    attack = registry.create<ardkit::Attack>(ardkit::PluginKind::attack, "fgsm", params, {});
  }
  CHECK(attack->threat().eps == doctest::Approx(8.0 / 255));
  CHECK(attack.use_count() == 1);
}

TEST_CASE("a plugin builds its parts through the registry, their values checked by their schema") {
  ardkit::Registry registry({kTestPlugins / "good", kBuiltin});
  auto build = [&](const std::string& part, int64_t steps) {
    ardkit::Params p("exp.toml:4:1: [attack]");
    p.set("part", part);
    p.set("steps", steps);
    return registry.create<ardkit::Attack>(ardkit::PluginKind::attack, "composite", p, {});
  };
  // The part takes its own defaults for everything not given.
  CHECK(build("pgd", 3)->threat().eps == doctest::Approx(8.0 / 255));
  const auto range = error_of([&] { build("pgd", -2); }, ErrorKind::config);
  CHECK(contains(range, "plugin 'composite' building its part 'pgd'"));
  CHECK(contains(range, "steps"));
  const auto unknown = error_of([&] { build("pgdd", 3); }, ErrorKind::plugin);
  CHECK(contains(unknown, "unknown attack plugin 'pgdd'"));
  // Outside a registry build there is no builder: an error, not a crash.
  ardkit::BuildContext bare;
  CHECK(contains(
      error_of([&] { bare.build_as<ardkit::Attack>(ardkit::PluginKind::attack, "pgd", {}); },
               ErrorKind::plugin),
      "outside a registry build"));
}
