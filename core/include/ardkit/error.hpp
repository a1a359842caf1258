#pragma once
#include <stdexcept>
#include <string>

#include "ardkit/export.hpp"

namespace ardkit {

// The category decides the exit status of the `ardkit` command (DESIGN.md "Command line").
enum class ErrorKind { runtime = 1, config = 2, plugin = 3 };

// The one exception type that crosses the plugin boundary. Its type information lives in
// libardkit_core, so a plugin may throw it and the host can catch it after the plugin's own code
// is long gone from the stack. Messages are one line: what is wrong, where, and what to do.
class ARDKIT_API Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message);
  ~Error() override;
  ErrorKind kind() const noexcept {
    return kind_;
  }
  int exit_code() const noexcept {
    return static_cast<int>(kind_);
  }

 private:
  ErrorKind kind_;
};

[[noreturn]] ARDKIT_API void throw_config_error(const std::string& message);
[[noreturn]] ARDKIT_API void throw_plugin_error(const std::string& message);
[[noreturn]] ARDKIT_API void throw_runtime_error(const std::string& message);

}  // namespace ardkit
