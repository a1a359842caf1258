#pragma once
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>

#include <ardkit/attack.hpp>
#include <ardkit/error.hpp>
#include <ardkit/host/generator_options.hpp>
#include <ardkit/host/registry.hpp>
#include <ardkit/pytorch_file.hpp>

namespace test {

// A fresh folder removed at scope exit.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::random_device rd;
    path = std::filesystem::temp_directory_path() /
           ("ardkit-test-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::filesystem::path operator/(const std::string& name) const {
    return path / name;
  }
};

inline void write_text(const std::filesystem::path& file, const std::string& text) {
  std::ofstream(file) << text;
}

// The registry of the built-in plugins, loaded once for the whole test binary.
inline const ardkit::Registry& builtin() {
  static const ardkit::Registry registry({ardkit::builtin_plugin_dir()});
  return registry;
}

// The message of the ardkit::Error `f` throws, checking its category; fails when nothing is thrown.
template <typename F>
std::string error_of(F&& f, ardkit::ErrorKind kind) {
  try {
    f();
  } catch (const ardkit::Error& e) {
    CHECK(static_cast<int>(e.kind()) == static_cast<int>(kind));
    return e.what();
  }
  FAIL("expected an ardkit::Error");
  return {};
}

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// The folder a reference script (make_reference.py, run first by CTest) wrote, named by the
// environment variable `env`.
inline std::filesystem::path reference_dir(const char* env) {
  const char* dir = std::getenv(env);
  REQUIRE_MESSAGE(dir != nullptr, env << " must name make_reference.py's output");
  return dir;
}

// The tensors torch.save wrote to `file`, by name.
inline std::map<std::string, torch::Tensor> load_tensors(const std::filesystem::path& file) {
  std::map<std::string, torch::Tensor> out;
  for (auto& [k, v] : ardkit::read_pytorch_state_dict(file))
    out[k] = v;
  return out;
}

// An attack that forwards to `inner`: tests derive from it to watch or cut perturb().
class WrappedAttack : public ardkit::Attack {
 public:
  explicit WrappedAttack(ardkit::AttackPtr inner) : inner_(std::move(inner)) {}
  ardkit::ThreatModel threat() const override {
    return inner_->threat();
  }
  void set_eps(double eps) override {
    inner_->set_eps(eps);
  }

 protected:
  torch::Tensor run(const ardkit::AttackTarget& target, const Input& in) override {
    return inner_->perturb(target, in.x, in.labels);
  }
  ardkit::AttackPtr inner_;
};

}  // namespace test

namespace test {

// Parameters of a plugin: its schema's defaults with some values replaced.
inline ardkit::Params params_for(ardkit::PluginKind kind, const std::string& name,
                                 const std::map<std::string, ardkit::Value>& overrides = {}) {
  const auto& entry = builtin().find(kind, name);
  ardkit::Params params("test [" + name + "]");
  for (const auto& [key, value] : overrides)
    params.set(key, value);
  ardkit::fill_defaults(entry.info.schema, params);
  return params;
}

template <typename T>
std::shared_ptr<T> make(ardkit::PluginKind kind, const std::string& name,
                        const std::map<std::string, ardkit::Value>& overrides = {},
                        const ardkit::BuildContext& context = {}) {
  return builtin().create<T>(kind, name, params_for(kind, name, overrides), context);
}

// A generator plugin with the engine's options for it: `overrides` may name both its own keys
// and the host's engine keys of [generator] (generator_options.hpp), as an experiment's table
// does; each goes to its side.
struct GeneratorUnderTest {
  std::shared_ptr<ardkit::Generator> generator;
  ardkit::GeneratorOptions options;
};

inline GeneratorUnderTest make_generator(
    const std::string& name, const std::map<std::string, ardkit::Value>& overrides = {}) {
  const auto& entry = builtin().find(ardkit::PluginKind::generator, name);
  const ardkit::ParamSchema engine = ardkit::generator_engine_schema(entry.info);
  std::map<std::string, ardkit::Value> own;
  ardkit::Params engine_params("test [generator]");
  for (const auto& [key, value] : overrides) {
    const bool host = std::any_of(engine.begin(), engine.end(),
                                  [&, k = key](const ardkit::ParamSpec& s) { return s.key == k; });
    if (host)
      engine_params.set(key, value);
    else
      own[key] = value;
  }
  ardkit::fill_defaults(engine, engine_params);
  return {make<ardkit::Generator>(ardkit::PluginKind::generator, name, own),
          ardkit::generator_options_from(engine_params)};
}

}  // namespace test
