#include "ardkit/params.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "ardkit/error.hpp"
#include "ardkit/text.hpp"

namespace ardkit {

const char* type_name(ParamType type) {
  switch (type) {
    case ParamType::boolean:
      return "bool";
    case ParamType::integer:
      return "integer";
    case ParamType::real:
      return "float";
    case ParamType::string:
      return "string";
    case ParamType::integer_list:
      return "integer list";
    case ParamType::real_list:
      return "float list";
    case ParamType::string_list:
      return "string list";
  }
  return "?";
}

std::string format_value(const Value& value) {
  struct Visitor {
    std::string operator()(bool v) const {
      return v ? "true" : "false";
    }
    std::string operator()(int64_t v) const {
      return std::to_string(v);
    }
    std::string operator()(double v) const {
      return fmt::format("{}", v);
    }
    std::string operator()(const std::string& v) const {
      return fmt::format("\"{}\"", v);
    }
    std::string operator()(const std::vector<int64_t>& v) const {
      return fmt::format("[{}]", fmt::join(v, ", "));
    }
    std::string operator()(const std::vector<double>& v) const {
      return fmt::format("[{}]", fmt::join(v, ", "));
    }
    std::string operator()(const std::vector<std::string>& v) const {
      std::vector<std::string> quoted;
      for (const auto& s : v)
        quoted.push_back("\"" + s + "\"");
      return "[" + join(quoted, ", ") + "]";
    }
  };
  return std::visit(Visitor{}, value);
}

ParamSpec& ParamSpec::help(std::string text) {
  doc = std::move(text);
  return *this;
}
ParamSpec& ParamSpec::at_least(double bound) {
  min = bound;
  min_exclusive = false;
  return *this;
}
ParamSpec& ParamSpec::greater_than(double bound) {
  min = bound;
  min_exclusive = true;
  return *this;
}
ParamSpec& ParamSpec::at_most(double bound) {
  max = bound;
  return *this;
}
ParamSpec& ParamSpec::one_of(std::vector<std::string> allowed) {
  choices = std::move(allowed);
  return *this;
}

ParamSpec& ParamSpec::default_when(std::string controlling, std::string value_equals, Value value) {
  defaults_when.push_back({std::move(controlling), std::move(value_equals), std::move(value)});
  return *this;
}

std::string ParamSpec::default_text() const {
  if (!default_value)
    return "required";
  std::string text = format_value(*default_value);
  if (defaults_when.empty())
    return text;
  std::vector<std::string> cases;
  for (const auto& d : defaults_when)
    cases.push_back(fmt::format("{} = {}: {}", d.key, d.equals, format_value(d.value)));
  return text + " (" + join(cases, "; ") + ")";
}

const Value& ParamSpec::default_for(const std::map<std::string, Value>& values) const {
  for (const auto& d : defaults_when) {
    const auto found = values.find(d.key);
    if (found == values.end())
      throw_plugin_error(
          fmt::format("parameter '{}' has a default that depends on '{}', which "
                      "the table does not hold: declare '{}' in the same schema",
                      key, d.key, d.key));
    const auto* s = std::get_if<std::string>(&found->second);
    if (s && *s == d.equals)
      return d.value;
  }
  return *default_value;
}

std::string ParamSpec::constraint_text() const {
  if (!choices.empty())
    return "one of " + join(choices, "|");
  if (min && max)
    return fmt::format("in {}{}, {}]", min_exclusive ? "(" : "[", *min, *max);
  if (min)
    return fmt::format("{} {}", min_exclusive ? ">" : ">=", *min);
  if (max)
    return fmt::format("<= {}", *max);
  return {};
}

namespace param {
namespace {
ParamSpec make(std::string key, ParamType type, std::optional<Value> fallback) {
  ParamSpec spec;
  spec.key = std::move(key);
  spec.type = type;
  spec.default_value = std::move(fallback);
  return spec;
}
}  // namespace
ParamSpec boolean(std::string key, bool fallback) {
  return make(std::move(key), ParamType::boolean, Value(fallback));
}
ParamSpec integer(std::string key, int64_t fallback) {
  return make(std::move(key), ParamType::integer, Value(fallback));
}
ParamSpec real(std::string key, double fallback) {
  return make(std::move(key), ParamType::real, Value(fallback));
}
ParamSpec string(std::string key, std::string fallback) {
  return make(std::move(key), ParamType::string, Value(std::move(fallback)));
}
ParamSpec integer_list(std::string key, std::vector<int64_t> fallback) {
  return make(std::move(key), ParamType::integer_list, Value(std::move(fallback)));
}
ParamSpec real_list(std::string key, std::vector<double> fallback) {
  return make(std::move(key), ParamType::real_list, Value(std::move(fallback)));
}
ParamSpec string_list(std::string key, std::vector<std::string> fallback) {
  return make(std::move(key), ParamType::string_list, Value(std::move(fallback)));
}
ParamSpec required(ParamType type, std::string key) {
  return make(std::move(key), type, std::nullopt);
}
}  // namespace param

void Params::set(const std::string& key, Value value, std::string origin) {
  values_[key] = std::move(value);
  if (!origin.empty())
    origins_[key] = std::move(origin);
}

bool Params::has(const std::string& key) const {
  return values_.count(key) != 0;
}

const Value& Params::lookup(const std::string& key) const {
  auto it = values_.find(key);
  if (it == values_.end()) {
    std::vector<std::string> keys;
    for (const auto& [k, v] : values_)
      keys.push_back(k);
    throw_runtime_error(
        fmt::format("{}: no parameter '{}'{} — the plugin asked for a key its schema "
                    "does not declare; declare it in the plugin's schema",
                    where_, key, did_you_mean(key, keys)));
  }
  return it->second;
}

namespace {
template <typename T>
const T& typed(const Value& value, const std::string& where, const std::string& key,
               const char* expected) {
  if (const T* v = std::get_if<T>(&value))
    return *v;
  throw_runtime_error(
      fmt::format("{}: parameter '{}' read as {} but holds {} — the plugin's getter "
                  "and schema disagree",
                  where, key, expected, format_value(value)));
}
}  // namespace

bool Params::get_bool(const std::string& key) const {
  return typed<bool>(lookup(key), where_, key, "bool");
}
int64_t Params::get_int(const std::string& key) const {
  return typed<int64_t>(lookup(key), where_, key, "integer");
}
double Params::get_real(const std::string& key) const {
  const Value& v = lookup(key);
  if (const auto* i = std::get_if<int64_t>(&v))
    return static_cast<double>(*i);
  return typed<double>(v, where_, key, "float");
}
const std::string& Params::get_string(const std::string& key) const {
  return typed<std::string>(lookup(key), where_, key, "string");
}
const std::vector<int64_t>& Params::get_int_list(const std::string& key) const {
  return typed<std::vector<int64_t>>(lookup(key), where_, key, "integer list");
}
std::vector<double> Params::get_real_list(const std::string& key) const {
  const Value& v = lookup(key);
  if (const auto* ints = std::get_if<std::vector<int64_t>>(&v))
    return {ints->begin(), ints->end()};
  return typed<std::vector<double>>(v, where_, key, "float list");
}
const std::vector<std::string>& Params::get_string_list(const std::string& key) const {
  return typed<std::vector<std::string>>(lookup(key), where_, key, "string list");
}

std::string Params::origin(const std::string& key) const {
  auto it = origins_.find(key);
  return it == origins_.end() ? where_ : it->second;
}

void fill_defaults(const ParamSchema& schema, Params& params) {
  for (const bool conditional : {false, true})
    for (const auto& spec : schema)
      if (!spec.required() && !params.has(spec.key) && spec.defaults_when.empty() != conditional)
        params.set(spec.key, spec.default_for(params.values()));
}

}  // namespace ardkit
