#pragma once
// What the fuzz targets share: a private scratch folder in memory (the readers under test take
// file paths, as ardkit uses them), the built-in plugins, and the rule that decides what a
// finding is. A reader may refuse any input with an ardkit::Error (the one-line message users
// see); anything else escaping, a crash, a sanitizer report or a hang is a finding.
#include <unistd.h>

#include <ardkit/error.hpp>
#include <ardkit/host/registry.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace fuzz {

namespace fs = std::filesystem;

// One folder per fuzzing process (libFuzzer's -jobs/-fork run several), in /dev/shm when there
// is one: the inputs never touch a disk.
inline const fs::path& scratch() {
  static const fs::path dir = [] {
    const fs::path base = fs::exists("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    fs::path d = base / ("ardkit-fuzz-" + std::to_string(::getpid()));
    fs::create_directories(d);
    return d;
  }();
  return dir;
}

inline fs::path write(const fs::path& file, std::string_view bytes) {
  fs::create_directories(file.parent_path());
  std::ofstream(file, std::ios::binary | std::ios::trunc)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return file;
}

// The built-in plugins, loaded once (their constructors register coverage before fuzzing starts).
inline const ardkit::Registry& builtin() {
  static const ardkit::Registry registry({ardkit::builtin_plugin_dir()});
  return registry;
}

// Splits the input into `n` parts at the separator "\n--\n" (missing parts are empty): one
// input, several files.
inline std::vector<std::string_view> parts(std::string_view data, size_t n) {
  std::vector<std::string_view> out;
  while (out.size() + 1 < n) {
    const size_t at = data.find("\n--\n");
    if (at == std::string_view::npos)
      break;
    out.push_back(data.substr(0, at));
    data.remove_prefix(at + 4);
  }
  out.push_back(data);
  out.resize(n);
  return out;
}

// Runs `f`; an ardkit::Error with a message is an accepted refusal (the CLI prints it, folding a
// long one into one line). Any other exception, or an empty message, is a finding: abort so
// libFuzzer saves the input.
template <typename F>
void expect_clean(F&& f) {
  try {
    f();
  } catch (const ardkit::Error& e) {
    const std::string_view what = e.what();
    if (what.empty()) {
      std::fprintf(stderr, "finding: an empty error message\n");
      std::abort();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "finding: a %s escaped instead of an ardkit::Error: %s\n",
                 typeid(e).name(), e.what());
    std::abort();
  }
}

}  // namespace fuzz
