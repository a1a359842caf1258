#pragma once
// What a plugin library includes to describe itself. One library may provide several plugins:
//
//   #include <ardkit/ardkit.hpp>
//   ARDKIT_PLUGIN_LIBRARY(manifest) {
//     manifest.add(ardkit::PluginKind::attack, "my_attack", "1.0.0", "One-line summary",
//                  my_schema(), [](const ardkit::Params& p, const ardkit::BuildContext& c) {
//                    return std::make_shared<MyAttack>(p);
//                  });
//   }
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include <torch/version.h>
#include <boost/dll/alias.hpp>

#include "ardkit/attack.hpp"
#include "ardkit/component.hpp"
#include "ardkit/data.hpp"
#include "ardkit/error.hpp"
#include "ardkit/generator.hpp"
#include "ardkit/hook.hpp"
#include "ardkit/knobs.hpp"
#include "ardkit/model.hpp"
#include "ardkit/objective.hpp"
#include "ardkit/params.hpp"

// Bumped whenever a type that crosses the plugin boundary changes layout or meaning.
#ifndef ARDKIT_ABI_VERSION
#define ARDKIT_ABI_VERSION 18
#endif

namespace ardkit {

// Builds a registered plugin by kind and name from some of its parameters: the others take their
// defaults, and all are checked against the plugin's schema as an experiment table's would be.
using PluginBuilder = std::function<std::shared_ptr<Component>(
    PluginKind kind, const std::string& name, const Params& values)>;

// A plugin that another one is made of, as the experiment configured it in the outer plugin's
// table ([objective.wrapped] for an objective that wraps another): already validated against
// its own schema.
struct PluginPart {
  PluginKind kind = PluginKind::objective;
  std::string plugin;
  Params params;
};

// What a factory gets besides its parameters.
struct BuildContext {
  DataSpec data;               // the experiment's data shape (models size themselves from it)
  std::string device = "cpu";  // where the run places tensors
  int64_t seed = 0;            // the run's seed
  // False in a data-free run: a data plugin must not read (or even open) its training files;
  // the run only evaluates on the test split. Plugins that load eagerly check it.
  bool train_split = true;
  // Plugins made of plugins (autoattack runs apgd, fab and square) build their parts through
  // the registry with this, so a part is the same plugin a user would name, shadowing included.
  // Set by the registry; valid only while the factory runs.
  PluginBuilder build;
  // The part configured in this plugin's `wrapped` sub-table, for a plugin registered with
  // .wraps(kind); null otherwise. Valid only while the factory runs: build it with build_part.
  const PluginPart* wrapped = nullptr;

  template <typename T>
  std::shared_ptr<T> build_as(PluginKind kind, const std::string& name,
                              const Params& values) const {
    if (!build)
      throw Error(ErrorKind::plugin, "'" + name + "' was requested outside a registry build");
    auto object = std::dynamic_pointer_cast<T>(build(kind, name, values));
    if (!object)
      throw Error(ErrorKind::plugin,
                  "plugin '" + name + "' is not a " + kind_name(kind) + " plugin");
    return object;
  }
  // The `wrapped` part, built through the registry as the user configured it.
  template <typename T>
  std::shared_ptr<T> build_wrapped() const {
    if (!wrapped)
      throw Error(ErrorKind::plugin, "no [.wrapped] part was configured for this plugin");
    return build_as<T>(wrapped->kind, wrapped->plugin, wrapped->params);
  }
};

using Factory = std::function<std::shared_ptr<Component>(const Params&, const BuildContext&)>;

// Defaults an objective sets for the experiment's [attack] table, given the objective's own
// parameters: what its official code attacks with (RSLAD: a gaussian start of std 0.001; ARD:
// an unclipped uniform one). A key the user writes in [attack] wins, and a key the attack
// plugin does not have is skipped, so any attack plugin can serve any objective.
using AttackDefaults =
    std::function<std::vector<std::pair<std::string, Value>>(const Params& objective)>;

struct PluginInfo {
  PluginKind kind = PluginKind::model;
  std::string name;     // an identifier: what experiment files write after `plugin =`
  std::string version;  // the plugin's own version
  std::string summary;  // one line
  ParamSchema schema;
  Factory factory;
  AttackDefaults attack_defaults;  // objectives only; empty: none
  uint32_t need_flags = 0;         // objectives only: Need values, or-ed
  // Objectives only: the named model tables it uses, "teachers.NAME" (frozen, like [teacher]) and
  // "companions.NAME" (trained beside the student with their own optimizer); the experiment must
  // have each, and no other.
  std::vector<std::string> roles;
  // Whether the plugin is made of another plugin of kind `wrapped_kind`, configured in its
  // table's `wrapped` sub-table (an objective that adds terms to another objective).
  bool wraps_part = false;
  PluginKind wrapped_kind = PluginKind::objective;
  // Generators only: the plugin's defaults for the host's engine keys of [generator] (iterations,
  // generator_steps, student_batch, pool_size, balance, ...: `ardkit plugins show NAME` lists
  // them), what its official code does. A key the host does not have refuses the library.
  std::vector<std::pair<std::string, Value>> engine_defaults;

  // manifest.add(...).needs({Need::teacher, Need::attack}): at registration.
  PluginInfo& needs(std::initializer_list<Need> what) {
    for (Need n : what)
      need_flags |= static_cast<uint32_t>(n);
    return *this;
  }
  // manifest.add(...).uses({"teachers.clean", "teachers.robust", "companions.peer"}).
  PluginInfo& uses(std::initializer_list<const char*> tables) {
    for (const char* t : tables)
      roles.emplace_back(t);
    return *this;
  }
  // manifest.add(...).wraps(PluginKind::objective): [objective.wrapped] names the inner plugin.
  PluginInfo& wraps(PluginKind kind) {
    wraps_part = true;
    wrapped_kind = kind;
    return *this;
  }
  // manifest.add(...).engine({{"iterations", int64_t{50}}, {"generator_steps", int64_t{5}}}).
  PluginInfo& engine(std::vector<std::pair<std::string, Value>> defaults) {
    for (auto& d : defaults)
      engine_defaults.push_back(std::move(d));
    return *this;
  }
  bool has(Need n) const {
    return (need_flags & static_cast<uint32_t>(n)) != 0;
  }
};

class Manifest {
 public:
  // Returns the entry, valid until the next add, to set optional fields (needs, attack_defaults).
  PluginInfo& add(PluginKind kind, std::string name, std::string version, std::string summary,
                  ParamSchema schema, Factory factory) {
    PluginInfo info;
    info.kind = kind;
    info.name = std::move(name);
    info.version = std::move(version);
    info.summary = std::move(summary);
    info.schema = std::move(schema);
    info.factory = std::move(factory);
    plugins_.push_back(std::move(info));
    return plugins_.back();
  }
  const std::vector<PluginInfo>& plugins() const {
    return plugins_;
  }

 private:
  std::vector<PluginInfo> plugins_;
};

// Read by the host before it touches anything else in a library: plain C layout, fixed-size
// fields, so a mismatched library is refused with a message saying what differs instead of
// crashing on a std::vector whose layout changed.
// The structs that cross the plugin boundary by value or reference; the descriptor carries the
// size of each, in this order, so that a layout change the ABI version missed is still caught
// (gz-plugin compares its interfaces the same way).
// clang-format off
#define ARDKIT_ABI_STRUCTS(X)                                                                     \
  X(PluginInfo) X(Params) X(Value) X(BuildContext) X(DataSpec) X(Batch) X(ModelOutput)           \
  X(ThreatModel) X(AttackTarget) X(StepContext) X(LossTerms) X(ObjectiveSetup) X(HookEvent)       \
  X(Knobs) X(GeneratorContext) X(GeneratorSetup) X(PluginPart)
// clang-format on
#define ARDKIT_ABI_COUNT(type) +1
constexpr int kAbiStructCount = 0 ARDKIT_ABI_STRUCTS(ARDKIT_ABI_COUNT);
#undef ARDKIT_ABI_COUNT

struct AbiDescriptor {
  uint32_t magic;  // kAbiMagic
  uint32_t abi_version;
  uint32_t descriptor_size;
  uint32_t struct_sizes[kAbiStructCount];  // ARDKIT_ABI_STRUCTS, in order
  char torch_version[32];
  char compiler[64];
  char cxx_runtime[64];
};

constexpr uint32_t kAbiMagic = 0x41524b54;  // "ARKT"

#define ARDKIT_STRINGIFY_IMPL(x) #x
#define ARDKIT_STRINGIFY(x) ARDKIT_STRINGIFY_IMPL(x)

// The descriptor of whatever translation unit includes this header: the host's copy is compared
// with the plugin's copy field by field.
inline const AbiDescriptor& this_abi() {
  static const AbiDescriptor descriptor{
      kAbiMagic,
      ARDKIT_ABI_VERSION,
      sizeof(AbiDescriptor),
#define ARDKIT_ABI_SIZE(type) static_cast<uint32_t>(sizeof(type)),
      {ARDKIT_ABI_STRUCTS(ARDKIT_ABI_SIZE)},
#undef ARDKIT_ABI_SIZE
      TORCH_VERSION,
      "gcc " __VERSION__,
      "libstdc++ " ARDKIT_STRINGIFY(_GLIBCXX_RELEASE) " cxx11abi=" ARDKIT_STRINGIFY(
          _GLIBCXX_USE_CXX11_ABI)};
  return descriptor;
}

using AbiFunction = const AbiDescriptor*();
using RegisterFunction = void(Manifest&);

}  // namespace ardkit

// Defines the library's registration function and exports the two entry points the host looks
// up: `ardkit_abi` (checked first) and `ardkit_register` (fills the manifest).
#define ARDKIT_PLUGIN_LIBRARY(manifest_name)                                                \
  namespace ardkit_plugin_entry {                                                           \
  static void register_plugins(::ardkit::Manifest& manifest_name);                          \
  static const ::ardkit::AbiDescriptor* abi() {                                             \
    return &::ardkit::this_abi();                                                           \
  }                                                                                         \
  }                                                                                         \
  BOOST_DLL_ALIAS_SECTIONED(ardkit_plugin_entry::abi, ardkit_abi, ardkit)                   \
  BOOST_DLL_ALIAS_SECTIONED(ardkit_plugin_entry::register_plugins, ardkit_register, ardkit) \
  void ardkit_plugin_entry::register_plugins(::ardkit::Manifest& manifest_name)
