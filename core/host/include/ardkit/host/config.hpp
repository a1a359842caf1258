#pragma once
// Experiment files: parsing, command-line overrides, validation against the host's and the
// plugins' schemas, and the resolved configuration a run is identified by.
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <toml++/toml.h>

#include "ardkit/component.hpp"
#include "ardkit/params.hpp"

namespace ardkit {

struct PluginInfo;

// Validates `table` against `schema`; keys in `host_keys` are the host's and skipped. `plugin`,
// when given, names the plugin whose schema it is (it appears in the messages). `preset` values
// (each with its origin) fill keys the table does not write, before schema defaults.
// Errors (unknown key with the nearest valid one, wrong type, out of range, missing required
// key) are ardkit::Error(config) naming file:line:column, the table and the fix.
ARDKIT_API Params validate_table(const ParamSchema& schema, const toml::table& table,
                                 const std::string& file, const std::string& table_name,
                                 const std::vector<std::string>& host_keys = {},
                                 const std::string& plugin = {}, const Params& preset = {});

// A name that becomes a folder or file name under an output folder (a run's, a grid's) must not
// be a path: "../x", "/x", "a/b", "." and ".." are refused, with the key's position, before
// anything is written.
ARDKIT_API void check_folder_name(const Params& params, const std::string& table,
                                  const std::string& key);

// Where a TOML node came from, for messages: "FILE:LINE:COLUMN" for a file, "FILE (--set
// a.b=VALUE)" for a value a --set override wrote (apply_override keeps the assignment as the
// node's source), "FILE (--set)" for other nodes made by the host.
ARDKIT_API std::string source_position(const std::string& file, const toml::source_region& source);

// Writes validated values back as TOML (every schema key, defaults included).
ARDKIT_API toml::table to_toml(const Params& params);

// A table that names a plugin: `plugin = "pgd"` plus that plugin's parameters.
struct PluginTable {
  std::string table;  // "attack", "eval[2]"
  std::string plugin;
  Params params;  // the plugin's validated parameters
  Params host;    // host keys of this table (checkpoint, name, ...)
  // Keys the file does not write whose values came from another plugin's presets (the
  // objective's attack defaults), so that a run can say where they came from.
  std::vector<std::string> preset_keys;
  uint32_t need_flags = 0;         // what the plugin declared it needs (PluginInfo::need_flags)
  std::vector<std::string> roles;  // the model tables it uses by role (PluginInfo::roles)
  // The `wrapped` sub-table of a plugin that wraps another (PluginInfo::wraps): that plugin's
  // table, whose needs and roles this one's include. Null otherwise.
  std::shared_ptr<PluginTable> wrapped;
  bool needs(Need n) const {
    return (need_flags & static_cast<uint32_t>(n)) != 0;
  }
};

// [companions.NAME]: a model the objective trains beside the student (a peer, a guide), with its
// own optimizer and schedule (the run's [optimizer] and [schedule], with the keys its own
// [companions.NAME.optimizer] and [companions.NAME.schedule] tables write).
struct CompanionConfig {
  PluginTable model;  // table "companions.NAME"; host keys: checkpoint (its start), mode
  Params optimizer, schedule;
};

struct ARDKIT_API ExperimentConfig {
  std::filesystem::path file;
  Params run, train, optimizer, schedule;
  std::optional<PluginTable> data, student, teacher, objective, attack;
  // [generator]: present in a data-free run (the student trains on its synthetic batches).
  std::optional<PluginTable> generator;
  std::vector<PluginTable> evals, hooks;
  // [teachers.NAME] and [companions.NAME]: the models an objective declared by role
  // (PluginInfo::roles), by name. [teacher] stays the role "teacher".
  std::map<std::string, PluginTable> teachers;
  std::map<std::string, CompanionConfig> companions;

  // The resolved configuration: what config.toml in the run folder holds.
  toml::table resolved() const;
  // Identity of the run: a hash of the resolved configuration without the keys that cannot
  // change its result (output folder, threads, plugin path).
  std::string run_id() const;
  std::string name() const;
};

// Looks up a plugin's description for validation; throws ardkit::Error(plugin) when unknown.
using PluginLookup = std::function<const PluginInfo&(PluginKind kind, const std::string& name,
                                                     const std::string& where)>;

// Parses a TOML file; a missing file is a config error "FILE: `missing`", malformed TOML one
// naming FILE:line:column. Shared by the experiment and grid readers.
ARDKIT_API toml::table parse_toml_file(const std::filesystem::path& file,
                                       const std::string& missing);

// Reads an experiment file, applies `overrides` ("a.b=value"; the value is parsed as TOML and
// taken as a string when it does not parse) and validates everything.
ARDKIT_API toml::table read_experiment(const std::filesystem::path& file,
                                       const std::vector<std::string>& overrides);
// Applies one "a.b=value" override to a parsed file (what --set does).
ARDKIT_API void apply_override(toml::table& root, const std::string& assignment);
// The [run] plugin_path entries (resolved relative to the experiment file), before any plugin
// is loaded: the registry needs them to find the plugins the rest is validated against.
ARDKIT_API std::vector<std::filesystem::path> experiment_plugin_path(
    const toml::table& root, const std::filesystem::path& file);
ARDKIT_API ExperimentConfig resolve_experiment(const toml::table& root,
                                               const std::filesystem::path& file,
                                               const PluginLookup& lookup);

// Building blocks for files made of host tables and plugin tables (experiments, evaluations).
// Unknown top-level tables are errors naming the allowed ones; `what` is "an experiment".
ARDKIT_API void check_top_level(const toml::table& root, const std::string& file,
                                const std::vector<std::string>& allowed, const char* what);
ARDKIT_API Params read_host_table(const toml::table& root, const std::string& name,
                                  const ParamSchema& schema, const std::string& file);
// [name] naming a plugin of `kind`; nullopt when absent and not required.
ARDKIT_API std::optional<PluginTable> read_plugin_table(
    const toml::table& root, const std::string& name, PluginKind kind, bool required,
    const ParamSchema& host_schema, const std::string& file, const PluginLookup& lookup);
// [[name]] entries, each naming a plugin of `kind` (labelled name[0], name[1], ...).
ARDKIT_API std::vector<PluginTable> read_plugin_tables(const toml::table& root,
                                                       const std::string& name, PluginKind kind,
                                                       const ParamSchema& host_schema,
                                                       const std::string& file,
                                                       const PluginLookup& lookup);
ARDKIT_API toml::table plugin_table_to_toml(const PluginTable& table);
// Host keys of model tables (checkpoint and its key mapping) and of [[eval]] entries (name).
ARDKIT_API const ParamSchema& model_host_schema();
ARDKIT_API const ParamSchema& eval_host_schema();
// [teacher] adds `experiment` and `use` (resolved by the registry's load_experiment).
ARDKIT_API const ParamSchema& teacher_host_schema();
// [companions.NAME] adds `mode`: "follow" (the student's train/eval mode), "train" or "eval".
ARDKIT_API const ParamSchema& companion_host_schema();

// Host table schemas, also printed by `ardkit validate --schema` style help.
ARDKIT_API const ParamSchema& run_schema();
ARDKIT_API const ParamSchema& train_schema();
ARDKIT_API const ParamSchema& optimizer_schema();
ARDKIT_API const ParamSchema& schedule_schema();

}  // namespace ardkit
