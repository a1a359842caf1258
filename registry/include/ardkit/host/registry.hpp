#pragma once
// Discovery and loading of plugin libraries (Boost.DLL), the ABI handshake, name resolution and
// instance lifetime.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "ardkit/error.hpp"
#include "ardkit/host/config.hpp"
#include "ardkit/plugin.hpp"

namespace ardkit {

struct LoadedLibrary;

struct PluginEntry {
  PluginInfo info;
  std::filesystem::path library;  // the file that provides it
  std::shared_ptr<LoadedLibrary> handle;
};

// A library in a plugin folder that could not be loaded, and why (one line naming the fix).
struct BrokenLibrary {
  std::filesystem::path file;
  std::string error;
};

// Plugin search path, first match wins: --plugin-path entries, ARDKIT_PLUGIN_PATH (colon
// separated), the experiment's [run] plugin_path, then the built-in folder next to this library.
ARDKIT_API std::vector<std::filesystem::path> plugin_search_path(
    const std::vector<std::filesystem::path>& command_line,
    const std::vector<std::filesystem::path>& experiment);
ARDKIT_API std::filesystem::path builtin_plugin_dir();

class ARDKIT_API Registry {
 public:
  // Loads every shared library (*.so) in the search path's folders. A library file name found in
  // an earlier folder shadows the same file name in later ones (so a rebuilt copy overrides the
  // built-in one); two different libraries providing the same kind and name is an error naming
  // both. A library that fails to load (not a plugin, wrong ABI, missing symbols) does not stop
  // the others: it is listed in broken(), and looking up a plugin that is missing names it, since
  // it may be the one that provides it. A missing folder is an ardkit::Error(plugin).
  explicit Registry(const std::vector<std::filesystem::path>& search_path);

  const std::vector<PluginEntry>& entries() const {
    return entries_;
  }
  const std::vector<std::filesystem::path>& search_path() const {
    return search_path_;
  }
  const std::vector<BrokenLibrary>& broken() const {
    return broken_;
  }
  // Unknown names are an error listing that kind's names and the nearest one. `where` prefixes
  // the message (the experiment file position that named it).
  const PluginEntry& find(PluginKind kind, const std::string& name,
                          const std::string& where = {}) const;
  // All entries called `name`, of any kind (for `ardkit plugins show NAME`).
  std::vector<const PluginEntry*> find_any(const std::string& name) const;
  // The schema lookup that validation needs (resolve_experiment, resolve_evaluation).
  PluginLookup lookup() const {
    return [this](PluginKind kind, const std::string& name,
                  const std::string& where) -> const PluginInfo& {
      return find(kind, name, where).info;
    };
  }

  // Runs the plugin's factory. The returned object keeps its library loaded (never unloaded in
  // practice: see LoadedLibrary). A factory's exception becomes an ardkit::Error naming the plugin.
  template <typename T>
  std::shared_ptr<T> create(PluginKind kind, const std::string& name, const Params& params,
                            const BuildContext& context) const {
    auto object = std::dynamic_pointer_cast<T>(create_component(kind, name, params, context));
    if (!object)
      throw_plugin_error("plugin '" + name + "' returned an object that is not a " +
                         kind_name(kind) +
                         "; its factory must return the interface of the kind it registers");
    return object;
  }

 private:
  std::shared_ptr<Component> create_component(PluginKind kind, const std::string& name,
                                              const Params& params,
                                              const BuildContext& context) const;
  std::vector<PluginEntry> load_library(const std::filesystem::path& file);

  std::vector<std::filesystem::path> search_path_;
  std::vector<PluginEntry> entries_;
  std::vector<BrokenLibrary> broken_;
};

}  // namespace ardkit
