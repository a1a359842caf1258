#pragma once
#include <stdexcept>
#include <string>

#include "ardkit/export.hpp"

namespace ardkit {

// The category decides the exit status of the `ardkit` command (docs/experiments.md, "Errors").
enum class ErrorKind { runtime = 1, config = 2, plugin = 3 };

// The one exception type that crosses the plugin boundary. Its type information lives in
// libardkit_sdk, so a plugin may throw it and the host can catch it after the plugin's own code
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

// An exception's message without LibTorch's C++ backtrace ("Exception raised from ...").
ARDKIT_API std::string message_of(const std::exception& e);
// A message in one line: its first line, and its last when they differ. TorchScript errors run to
// dozens of lines, with what went wrong ("RuntimeError: ...") at the end of a traceback; the
// terminal and status files get this line, the whole message goes to a log.
ARDKIT_API std::string one_line(const std::string& message);

[[noreturn]] ARDKIT_API void throw_config_error(const std::string& message);
[[noreturn]] ARDKIT_API void throw_plugin_error(const std::string& message);
[[noreturn]] ARDKIT_API void throw_runtime_error(const std::string& message);

}  // namespace ardkit
