#define BOOST_DLL_USE_STD_FS
#include "ardkit/host/registry.hpp"

#include <cxxabi.h>
#include <dlfcn.h>
#include <fmt/format.h>

#include <algorithm>
#include <boost/dll/library_info.hpp>
#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <set>
#include <sstream>

#include "ardkit/host/generator_options.hpp"
#include "ardkit/progress.hpp"
#include "ardkit/text.hpp"

namespace fs = std::filesystem;

namespace ardkit {

// A loaded plugin library. It is never unloaded: LibTorch-linked libraries crash when dlclose'd
// (static destructors deregistering operators), so the handle is opened with RTLD_NODELETE and
// the wrapper is kept alive by every object its factories return.
struct LoadedLibrary {
  boost::dll::shared_library library;
};

namespace {

std::string field(const char* text, size_t size) {
  return std::string(text, strnlen(text, size));
}

// Holds an instance and, declared first so it is destroyed last, the library its code lives in.
struct Keepalive {
  std::shared_ptr<LoadedLibrary> library;
  std::shared_ptr<Component> object;
};

void check_abi(const fs::path& file, const AbiDescriptor& theirs) {
  const AbiDescriptor& ours = this_abi();
  const std::string fix =
      "rebuild the plugin against this ardkit (find_package(ardkit) + ardkit_add_plugin)";
  if (theirs.magic != kAbiMagic)
    throw_plugin_error(fmt::format("{}: not an ardkit plugin descriptor (bad magic number); {}",
                                   file.string(), fix));
  if (theirs.abi_version != ours.abi_version)
    throw_plugin_error(
        fmt::format("{}: built for ardkit plugin ABI {}, this ardkit speaks ABI {}; {}",
                    file.string(), theirs.abi_version, ours.abi_version, fix));
  if (theirs.descriptor_size != ours.descriptor_size)
    throw_plugin_error(fmt::format("{}: ABI descriptor size {} differs from this ardkit's {}; {}",
                                   file.string(), theirs.descriptor_size, ours.descriptor_size,
                                   fix));
  const std::pair<const char*, std::pair<std::string, std::string>> text_fields[] = {
      {"LibTorch",
       {field(theirs.torch_version, sizeof theirs.torch_version),
        field(ours.torch_version, sizeof ours.torch_version)}},
      {"compiler",
       {field(theirs.compiler, sizeof theirs.compiler),
        field(ours.compiler, sizeof ours.compiler)}},
      {"C++ runtime",
       {field(theirs.cxx_runtime, sizeof theirs.cxx_runtime),
        field(ours.cxx_runtime, sizeof ours.cxx_runtime)}},
  };
  for (const auto& [what, values] : text_fields)
    if (values.first != values.second)
      throw_plugin_error(fmt::format("{}: built with {} '{}', this ardkit with '{}'; {}",
                                     file.string(), what, values.first, values.second, fix));
#define ARDKIT_ABI_NAME(type) #type,
  static const char* const names[kAbiStructCount] = {ARDKIT_ABI_STRUCTS(ARDKIT_ABI_NAME)};
#undef ARDKIT_ABI_NAME
  for (int i = 0; i < kAbiStructCount; ++i)
    if (theirs.struct_sizes[i] != ours.struct_sizes[i])
      throw_plugin_error(fmt::format("{}: sizeof({}) is {} in the plugin but {} here; {}",
                                     file.string(), names[i], theirs.struct_sizes[i],
                                     ours.struct_sizes[i], fix));
}

std::string demangle(const std::string& symbol) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> out(
      abi::__cxa_demangle(symbol.c_str(), nullptr, nullptr, &status), std::free);
  return status == 0 && out ? std::string(out.get()) : symbol;
}

// The loader's message made actionable. The common case is a plugin compiled with the pre-C++11
// std::string ABI (_GLIBCXX_USE_CXX11_ABI=0, which pip's PyTorch wheels use and their
// TorchConfig.cmake passes on): every core function taking a string is then missing for it.
std::string explain_load_failure(const fs::path& file, const char* loader_message) {
  const std::string message = loader_message ? loader_message : "unknown loader error";
  const std::string marker = "undefined symbol: ";
  const auto at = message.find(marker);
  if (at == std::string::npos)
    return fmt::format(
        "{}: failed to load ({}); check that its dependencies are installed "
        "(ldd {}) and rebuild it against this ardkit",
        file.string(), message, file.string());
  std::string symbol = message.substr(at + marker.size());
  symbol = symbol.substr(0, symbol.find_first_of(" \t\n"));
  const std::string readable = demangle(symbol);
  const bool old_string_abi = (readable.find("std::string") != std::string::npos ||
                               readable.find("std::basic_string") != std::string::npos) &&
                              readable.find("__cxx11") == std::string::npos;
  if (old_string_abi)
    return fmt::format(
        "{}: built with the pre-C++11 std::string ABI (_GLIBCXX_USE_CXX11_ABI=0, as pip's "
        "PyTorch wheels are), but this ardkit and its LibTorch use the C++11 ABI, so `{}` does "
        "not exist for it; rebuild it against this ardkit's LibTorch with find_package(ardkit) "
        "and ardkit_add_plugin()",
        file.string(), readable);
  return fmt::format(
      "{}: needs `{}`, which neither this ardkit nor the libraries it links provide; rebuild it "
      "against this ardkit (find_package(ardkit) + ardkit_add_plugin) and check ldd {}",
      file.string(), readable, file.string());
}

// A plugin whose sizes are absurd fails to allocate; the message names the parameters that set
// the sizes (the largest integers first), with their positions, rather than only the plugin.
std::string out_of_memory(PluginKind kind, const std::string& name, const Params& params) {
  std::vector<std::pair<int64_t, std::string>> sizes;
  for (const auto& [key, value] : params.values())
    if (const auto* i = std::get_if<int64_t>(&value); i && *i > 1)
      sizes.emplace_back(*i, key);
  std::sort(sizes.rbegin(), sizes.rend());
  std::vector<std::string> named;
  for (size_t i = 0; i < sizes.size() && i < 3; ++i)
    named.push_back(fmt::format("{} = {} ({})", sizes[i].second, sizes[i].first,
                                params.origin(sizes[i].second)));
  return fmt::format("{} plugin '{}' ran out of memory while building; check its size parameters{}",
                     kind_name(kind), name, named.empty() ? "" : ": " + join(named, ", "));
}

bool is_identifier(const std::string& name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0])))
    return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

}  // namespace

fs::path builtin_plugin_dir() {
  // This library lives in <prefix>/lib (build tree: build/lib); plugins in lib/ardkit/plugins.
  return boost::dll::this_line_location().parent_path() / "ardkit" / "plugins";
}

std::vector<fs::path> plugin_search_path(const std::vector<fs::path>& command_line,
                                         const std::vector<fs::path>& experiment) {
  std::vector<fs::path> out = command_line;
  if (const char* env = std::getenv("ARDKIT_PLUGIN_PATH")) {
    std::stringstream stream(env);
    for (std::string part; std::getline(stream, part, ':');)
      if (!part.empty())
        out.emplace_back(part);
  }
  out.insert(out.end(), experiment.begin(), experiment.end());
  out.push_back(builtin_plugin_dir());
  return out;
}

namespace {

// A library the registry sets aside may be the one a user just built: every command says so on
// stderr, once per file and process (a run builds a registry for its teacher's experiment too).
void warn_set_aside(const BrokenLibrary& broken) {
  static std::mutex mutex;
  static std::set<std::string> warned;
  std::lock_guard<std::mutex> lock(mutex);
  if (warned.insert(broken.file.string()).second)
    log_line("warning: plugin library set aside, its plugins are unavailable: " + broken.error);
}

}  // namespace

Registry::Registry(const std::vector<fs::path>& search_path) : search_path_(search_path) {
  std::set<std::string> seen_names;
  for (const auto& dir : search_path_) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
      throw_plugin_error(
          fmt::format("plugin folder {} does not exist; fix --plugin-path, ARDKIT_PLUGIN_PATH "
                      "or [run] plugin_path",
                      dir.string()));
    std::vector<fs::path> files;
    for (const auto& item : fs::directory_iterator(dir, ec))
      if (item.path().extension() == ".so")
        files.push_back(item.path());
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      if (!seen_names.insert(file.filename().string()).second)
        continue;
      std::vector<PluginEntry> loaded;
      try {
        loaded = load_library(file);
      } catch (const Error& e) {
        broken_.push_back({file, e.what()});
        warn_set_aside(broken_.back());
        continue;
      }
      // Two libraries claiming one name is a conflict to resolve, not a library to skip.
      for (auto& entry : loaded) {
        for (const auto& other : entries_)
          if (other.info.kind == entry.info.kind && other.info.name == entry.info.name)
            throw_plugin_error(fmt::format(
                "{} plugin '{}' is provided by both {} and {}; remove one of them from the "
                "plugin path or rename the plugin",
                kind_name(entry.info.kind), entry.info.name, other.library.string(),
                file.string()));
        entries_.push_back(std::move(entry));
      }
    }
  }
}

std::vector<PluginEntry> Registry::load_library(const fs::path& file) {
  auto loaded = std::make_shared<LoadedLibrary>();
  // Look before loading: a file without the ardkit section is not a plugin, and loading it
  // would run its static constructors for nothing.
  try {
    boost::dll::library_info info(file);
    const auto sections = info.sections();
    if (std::find(sections.begin(), sections.end(), "ardkit") == sections.end())
      throw_plugin_error(
          fmt::format("{}: not an ardkit plugin (no ardkit_abi/ardkit_register entry symbols); "
                      "build it with ardkit_add_plugin() and ARDKIT_PLUGIN_LIBRARY, or move "
                      "it out of the plugin folder",
                      file.string()));
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw_plugin_error(
        fmt::format("{}: cannot be read as a shared library ({}); rebuild it or remove it "
                    "from the plugin folder",
                    file.string(), e.what()));
  }
  // dlopen first, directly: Boost.DLL reports a failure as a system error ("Bad file
  // descriptor") and the loader's own message is gone by the time it throws.
  constexpr int kMode = RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE;
  if (void* probe = ::dlopen(file.c_str(), kMode))
    ::dlclose(probe);  // RTLD_NODELETE: stays loaded for the load below
  else
    throw_plugin_error(explain_load_failure(file, ::dlerror()));
  try {
    loaded->library.load(file, static_cast<boost::dll::load_mode::type>(kMode));
  } catch (const std::exception& e) {
    throw_plugin_error(explain_load_failure(file, e.what()));
  }
  for (const char* symbol : {"ardkit_abi", "ardkit_register"})
    if (!loaded->library.has(symbol))
      throw_plugin_error(
          fmt::format("{}: missing entry symbol '{}'; define the plugin with "
                      "ARDKIT_PLUGIN_LIBRARY(manifest) {{ ... }}",
                      file.string(), symbol));
  const AbiDescriptor* abi = loaded->library.get_alias<AbiFunction>("ardkit_abi")();
  if (!abi)
    throw_plugin_error(
        fmt::format("{}: its ardkit_abi entry returned no descriptor; define the "
                    "plugin with ARDKIT_PLUGIN_LIBRARY(manifest) {{ ... }}",
                    file.string()));
  check_abi(file, *abi);

  Manifest manifest;
  try {
    loaded->library.get_alias<RegisterFunction>("ardkit_register")(manifest);
  } catch (const std::exception& e) {
    throw_plugin_error(fmt::format("{}: plugin registration failed: {}", file.string(), e.what()));
  }
  std::vector<PluginEntry> out;
  for (const auto& info : manifest.plugins()) {
    if (!is_identifier(info.name))
      throw_plugin_error(
          fmt::format("{}: plugin name '{}' is not an identifier (letters, digits, _)",
                      file.string(), info.name));
    if (info.kind == PluginKind::generator) {
      try {
        generator_engine_schema(info);  // its engine defaults name the host's keys
      } catch (const Error& e) {
        throw_plugin_error(file.string() + ": " + e.what());
      }
    }
    out.push_back(PluginEntry{info, file, loaded});
  }
  return out;
}

const PluginEntry& Registry::find(PluginKind kind, const std::string& name,
                                  const std::string& where) const {
  std::vector<std::string> names;
  for (const auto& entry : entries_) {
    if (entry.info.kind != kind)
      continue;
    if (entry.info.name == name)
      return entry;
    names.push_back(entry.info.name);
  }
  std::string other_kind;
  for (const auto& entry : entries_)
    if (entry.info.name == name)
      other_kind = fmt::format(" ('{}' is a {} plugin)", name, kind_name(entry.info.kind));
  std::sort(names.begin(), names.end());
  // A library that failed to load may be the one that provides it: say which and why.
  std::string broken;
  for (const auto& b : broken_)
    broken += "; a library that may provide it failed to load: " + b.error;
  throw_plugin_error(fmt::format(
      "{}{}unknown {} plugin '{}'{}{}; known {} plugins: {} (searched {}){}", where,
      where.empty() ? "" : ": ", kind_name(kind), name, did_you_mean(name, names), other_kind,
      kind_name(kind), names.empty() ? "none" : join(names, ", "),
      [&] {
        std::vector<std::string> dirs;
        for (const auto& d : search_path_)
          dirs.push_back(d.string());
        return join(dirs, ":");
      }(),
      broken));
}

std::vector<const PluginEntry*> Registry::find_any(const std::string& name) const {
  std::vector<const PluginEntry*> out;
  for (const auto& entry : entries_)
    if (entry.info.name == name)
      out.push_back(&entry);
  return out;
}

std::shared_ptr<Component> Registry::create_component(PluginKind kind, const std::string& name,
                                                      const Params& params,
                                                      const BuildContext& context) const {
  const PluginEntry& entry = find(kind, name);
  // Parts of a composite plugin go through this registry too: same search path, same checks.
  BuildContext inner = context;
  inner.build = [this, context, parent = name](PluginKind part_kind, const std::string& part,
                                               const Params& values) {
    const std::string where = fmt::format("plugin '{}' building its part '{}'", parent, part);
    const Params checked = validate_table(find(part_kind, part, where).info.schema, to_toml(values),
                                          where, part, {}, part);
    BuildContext part_context = context;
    part_context.wrapped = nullptr;  // the outer plugin's part is not the part's
    return create_component(part_kind, part, checked, part_context);
  };
  std::shared_ptr<Component> object;
  try {
    object = entry.info.factory(params, inner);
  } catch (const Error& e) {
    throw Error(e.kind(), fmt::format("{} plugin '{}': {}", kind_name(kind), name, e.what()));
  } catch (const std::bad_alloc&) {
    throw_config_error(out_of_memory(kind, name, params));
  } catch (const c10::Error& e) {
    const std::string message = e.what_without_backtrace();
    if (message.find("can't allocate memory") != std::string::npos ||
        message.find("out of memory") != std::string::npos)
      throw_config_error(out_of_memory(kind, name, params));
    throw_runtime_error(fmt::format("{} plugin '{}' ({}) failed to build: {}", kind_name(kind),
                                    name, entry.library.string(), message));
  } catch (const std::exception& e) {
    throw_runtime_error(fmt::format("{} plugin '{}' ({}) failed to build: {}", kind_name(kind),
                                    name, entry.library.string(), e.what()));
  }
  if (!object)
    throw_plugin_error(fmt::format("{} plugin '{}' returned nothing", kind_name(kind), name));
  // Aliasing constructor: callers hold the object, the control block also holds the library.
  auto keep = std::make_shared<Keepalive>(Keepalive{entry.handle, object});
  return std::shared_ptr<Component>(keep, keep->object.get());
}

}  // namespace ardkit
