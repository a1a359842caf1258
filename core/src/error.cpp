#include "ardkit/error.hpp"

namespace ardkit {

Error::Error(ErrorKind kind, const std::string& message)
    : std::runtime_error(message), kind_(kind) {}
Error::~Error() = default;

void throw_config_error(const std::string& message) {
  throw Error(ErrorKind::config, message);
}
void throw_plugin_error(const std::string& message) {
  throw Error(ErrorKind::plugin, message);
}
void throw_runtime_error(const std::string& message) {
  throw Error(ErrorKind::runtime, message);
}

}  // namespace ardkit
