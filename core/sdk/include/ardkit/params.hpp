#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "ardkit/export.hpp"

namespace ardkit {

enum class ParamType { boolean, integer, real, string, integer_list, real_list, string_list };

ARDKIT_API const char* type_name(ParamType type);

using Value = std::variant<bool, int64_t, double, std::string, std::vector<int64_t>,
                           std::vector<double>, std::vector<std::string>>;

ARDKIT_API std::string format_value(const Value& value);

// A default that replaces a parameter's own when another (string) key of the same table holds a
// given value: a variant of a method brings its official defaults (IAD-II's begin = 40 where
// IAD-I's is 60) without a second plugin, and a value the user writes always wins.
struct DefaultWhen {
  std::string key;     // the controlling key, e.g. "variant"
  std::string equals;  // the value it must hold
  Value value;         // the default then
};

// One declared parameter of a plugin (or of a host table). Built with the helpers in `param::`
// and refined with the chainable setters, e.g.
//   param::real("eps", 0.1).at_least(0).at_most(1).help("L-inf radius in [0,1] pixel units")
struct ARDKIT_API ParamSpec {
  std::string key;
  ParamType type = ParamType::real;
  std::optional<Value> default_value;  // nullopt: the key is required
  std::optional<double> min;           // for numbers, and for every element of a number list
  std::optional<double> max;
  bool min_exclusive = false;
  std::vector<std::string> choices;  // for strings (and string lists): the allowed values
  std::string doc;
  std::vector<DefaultWhen> defaults_when;  // checked in order; the first match wins

  ParamSpec& help(std::string text);
  ParamSpec& at_least(double bound);
  ParamSpec& greater_than(double bound);
  ParamSpec& at_most(double bound);
  ParamSpec& one_of(std::vector<std::string> allowed);
  // The default when `key` (a string parameter without conditional defaults of its own) equals
  // `equals`, e.g. integer("begin", 60).default_when("variant", "iad2", int64_t{40}).
  ParamSpec& default_when(std::string key, std::string equals, Value value);
  bool required() const {
    return !default_value.has_value();
  }
  // "in [0, 1]", "> 0", "one of uniform|gaussian|none" or "".
  std::string constraint_text() const;
  // "60 (variant = iad2: 40)": the default and its conditional ones, for help texts.
  std::string default_text() const;
  // The default that applies given the table's other values (which hold the controlling keys).
  const Value& default_for(const std::map<std::string, Value>& values) const;
};

using ParamSchema = std::vector<ParamSpec>;

namespace param {
ARDKIT_API ParamSpec boolean(std::string key, bool fallback);
ARDKIT_API ParamSpec integer(std::string key, int64_t fallback);
ARDKIT_API ParamSpec real(std::string key, double fallback);
ARDKIT_API ParamSpec string(std::string key, std::string fallback);
ARDKIT_API ParamSpec integer_list(std::string key, std::vector<int64_t> fallback);
ARDKIT_API ParamSpec real_list(std::string key, std::vector<double> fallback);
ARDKIT_API ParamSpec string_list(std::string key, std::vector<std::string> fallback);
// A key without a default: leaving it out of the experiment file is an error.
ARDKIT_API ParamSpec required(ParamType type, std::string key);
}  // namespace param

// Validated values of one table: every schema key is present (given or defaulted), with the
// declared type. Getters throw ardkit::Error naming the table when misused by plugin code.
class ARDKIT_API Params {
 public:
  Params() = default;
  explicit Params(std::string where) : where_(std::move(where)) {}

  void set(const std::string& key, Value value, std::string origin = {});
  bool has(const std::string& key) const;

  bool get_bool(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  double get_real(const std::string& key) const;  // integers are widened
  const std::string& get_string(const std::string& key) const;
  const std::vector<int64_t>& get_int_list(const std::string& key) const;
  std::vector<double> get_real_list(const std::string& key) const;
  const std::vector<std::string>& get_string_list(const std::string& key) const;

  // Where the table came from ("exp.toml [attack] (plugin 'pgd')") and where one value came
  // from ("exp.toml:12:7"), so plugins can raise errors about combinations of values.
  const std::string& where() const {
    return where_;
  }
  std::string origin(const std::string& key) const;
  const std::map<std::string, Value>& values() const {
    return values_;
  }

 private:
  const Value& lookup(const std::string& key) const;
  std::string where_;
  std::map<std::string, Value> values_;
  std::map<std::string, std::string> origins_;
};

// Sets every key of `schema` that `params` lacks to its default (required keys stay missing).
// Keys with conditional defaults are filled last, once the keys they depend on hold their final
// values, so they see what the user wrote or what defaulted.
ARDKIT_API void fill_defaults(const ParamSchema& schema, Params& params);

}  // namespace ardkit
