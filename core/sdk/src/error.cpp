#include "ardkit/error.hpp"

#include <c10/util/Exception.h>

namespace ardkit {

Error::Error(ErrorKind kind, const std::string& message)
    : std::runtime_error(message), kind_(kind) {}
Error::~Error() = default;

std::string message_of(const std::exception& e) {
  if (const auto* torch_error = dynamic_cast<const c10::Error*>(&e))
    return torch_error->what_without_backtrace();
  return e.what();
}

std::string one_line(const std::string& message) {
  const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  const auto end = message.find_first_of("\r\n");
  if (end == std::string::npos)
    return message;
  std::string first = message.substr(0, end);
  size_t last_end = message.size();
  while (last_end > end && blank(message[last_end - 1]))
    --last_end;
  size_t last_begin = message.find_last_of("\r\n", last_end - 1) + 1;
  while (last_begin < last_end && blank(message[last_begin]))
    ++last_begin;
  if (last_begin <= end || last_begin >= last_end)
    return first;
  return first + " ... " + message.substr(last_begin, last_end - last_begin);
}

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
