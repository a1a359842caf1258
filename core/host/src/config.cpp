#include "ardkit/host/config.hpp"

#include <fmt/format.h>
#include <algorithm>
#include <cctype>
#include <cmath>

#include <sstream>

#include "ardkit/error.hpp"
#include "ardkit/hash.hpp"
#include "ardkit/host/generator_options.hpp"
#include "ardkit/host/lr_schedule.hpp"
#include "ardkit/plugin.hpp"
#include "ardkit/text.hpp"
#include "ardkit/weights.hpp"

namespace fs = std::filesystem;

namespace ardkit {

namespace {

const std::vector<std::string> kTopLevel = {
    "run",      "data",  "teacher", "student", "objective", "attack",   "optimizer",
    "schedule", "train", "eval",    "hook",    "generator", "teachers", "companions"};

std::string position(const std::string& file, const toml::source_region& source) {
  return source_position(file, source);
}

// A key's position; a key --set created has none, and its value's names the --set.
std::string key_position(const std::string& file, const toml::key& key, const toml::node& node) {
  return source_position(file, key.source().begin ? key.source() : node.source());
}

std::string describe_node(const toml::node& node) {
  std::ostringstream out;
  switch (node.type()) {
    case toml::node_type::string:
      out << "string \"" << *node.value<std::string>() << "\"";
      break;
    case toml::node_type::integer:
      out << "integer " << *node.value<int64_t>();
      break;
    case toml::node_type::floating_point:
      out << "float " << *node.value<double>();
      break;
    case toml::node_type::boolean:
      out << "bool " << (*node.value<bool>() ? "true" : "false");
      break;
    case toml::node_type::array:
      out << "an array";
      break;
    case toml::node_type::table:
      out << "a table";
      break;
    default:
      out << "a date/time";
      break;
  }
  return out.str();
}

std::string with_article(const std::string& noun) {
  return (std::string("aeiou").find(noun[0]) != std::string::npos ? "an " : "a ") + noun;
}

std::string example_of(const ParamSpec& spec) {
  if (spec.default_value)
    return spec.key + " = " + format_value(*spec.default_value);
  switch (spec.type) {
    case ParamType::boolean:
      return spec.key + " = true";
    case ParamType::integer:
      return spec.key + " = 1";
    case ParamType::real:
      return spec.key + " = 0.1";
    case ParamType::string:
      return spec.key + " = \"...\"";
    default:
      return spec.key + " = [...]";
  }
}

class TableValidator {
 public:
  TableValidator(const std::string& file, const std::string& table_name)
      : file_(file), table_(table_name) {}

  Value convert(const ParamSpec& spec, const toml::node& node) const {
    auto wrong_type = [&]() -> Value {
      throw_config_error(fmt::format(
          "{}: {} '{}' must be {}, got {}; write e.g. {}", position(file_, node.source()), table_,
          spec.key, with_article(type_name(spec.type)), describe_node(node), example_of(spec)));
    };
    switch (spec.type) {
      case ParamType::boolean:
        if (auto v = node.as_boolean())
          return Value(v->get());
        return wrong_type();
      case ParamType::integer:
        if (auto v = node.as_integer())
          return check_number(spec, node, static_cast<double>(v->get()), Value(v->get()));
        return wrong_type();
      case ParamType::real:
        if (auto v = node.as_floating_point())
          return check_number(spec, node, v->get(), Value(v->get()));
        if (auto v = node.as_integer())
          return check_number(spec, node, static_cast<double>(v->get()),
                              Value(static_cast<double>(v->get())));
        return wrong_type();
      case ParamType::string:
        if (auto v = node.as_string())
          return check_choice(spec, node, v->get());
        return wrong_type();
      case ParamType::integer_list:
      case ParamType::real_list:
      case ParamType::string_list: {
        const auto* array = node.as_array();
        if (!array)
          return wrong_type();
        std::vector<int64_t> ints;
        std::vector<double> reals;
        std::vector<std::string> strings;
        for (const auto& element : *array) {
          if (spec.type == ParamType::integer_list) {
            auto v = element.as_integer();
            if (!v)
              return wrong_type();
            check_number(spec, element, static_cast<double>(v->get()), Value());
            ints.push_back(v->get());
          } else if (spec.type == ParamType::real_list) {
            double x;
            if (auto f = element.as_floating_point())
              x = f->get();
            else if (auto i = element.as_integer())
              x = static_cast<double>(i->get());
            else
              return wrong_type();
            check_number(spec, element, x, Value());
            reals.push_back(x);
          } else {
            auto v = element.as_string();
            if (!v)
              return wrong_type();
            check_choice(spec, element, v->get());
            strings.push_back(v->get());
          }
        }
        if (spec.type == ParamType::integer_list)
          return Value(ints);
        if (spec.type == ParamType::real_list)
          return Value(reals);
        return Value(strings);
      }
    }
    return wrong_type();
  }

 private:
  Value check_number(const ParamSpec& spec, const toml::node& node, double x, Value value) const {
    // nan passes every comparison and inf every lower bound; no parameter means either.
    if (!std::isfinite(x))
      throw_config_error(fmt::format("{}: {} '{}' = {} is not a finite number; write e.g. {}",
                                     position(file_, node.source()), table_, spec.key, x,
                                     example_of(spec)));
    const bool below = spec.min && (spec.min_exclusive ? x <= *spec.min : x < *spec.min);
    const bool above = spec.max && x > *spec.max;
    if (below || above)
      throw_config_error(fmt::format("{}: {} '{}' = {} is out of range: it must be {}",
                                     position(file_, node.source()), table_, spec.key, x,
                                     spec.constraint_text()));
    return value;
  }
  Value check_choice(const ParamSpec& spec, const toml::node& node, const std::string& s) const {
    if (!spec.choices.empty() &&
        std::find(spec.choices.begin(), spec.choices.end(), s) == spec.choices.end())
      throw_config_error(fmt::format("{}: {} '{}' = \"{}\" is not allowed{}: it must be {}",
                                     position(file_, node.source()), table_, spec.key, s,
                                     did_you_mean(s, spec.choices), spec.constraint_text()));
    return Value(s);
  }
  std::string file_, table_;
};

const toml::table& table_or_empty(const toml::table& root, const std::string& key,
                                  const std::string& file) {
  static const toml::table empty;
  const toml::node* node = root.get(key);
  if (!node)
    return empty;
  if (const auto* t = node->as_table())
    return *t;
  throw_config_error(fmt::format("{}: '{}' must be a table ([{}]), got {}",
                                 position(file, node->source()), key, key, describe_node(*node)));
}

}  // namespace

Params validate_table(const ParamSchema& schema, const toml::table& table, const std::string& file,
                      const std::string& table_name, const std::vector<std::string>& host_keys,
                      const std::string& plugin, const Params& preset) {
  const std::string label = plugin.empty() ? "[" + table_name + "]"
                                           : fmt::format("[{}] (plugin '{}')", table_name, plugin);
  Params params(file + " " + label);
  TableValidator validator(file, label);
  std::vector<std::string> valid;
  for (const auto& spec : schema)
    valid.push_back(spec.key);
  for (auto&& [key, node] : table) {
    const std::string k(key.str());
    if (std::find(host_keys.begin(), host_keys.end(), k) != host_keys.end())
      continue;
    auto spec =
        std::find_if(schema.begin(), schema.end(), [&](const ParamSpec& s) { return s.key == k; });
    if (spec == schema.end()) {
      std::vector<std::string> all = valid;
      all.insert(all.end(), host_keys.begin(), host_keys.end());
      throw_config_error(fmt::format("{}: {} unknown key '{}'{}; valid keys: {}",
                                     key_position(file, key, node), label, k, did_you_mean(k, all),
                                     all.empty() ? "none" : join(all, ", ")));
    }
    params.set(k, validator.convert(*spec, node), position(file, node.source()));
  }
  // Presets fill keys the table does not write, before required keys are checked.
  for (const auto& [key, value] : preset.values())
    if (!params.has(key))
      params.set(key, value, preset.origin(key));
  for (const auto& spec : schema)
    if (spec.required() && !params.has(spec.key))
      throw_config_error(fmt::format("{}: {} missing required key '{}' ({}): add {} to the table",
                                     position(file, table.source()), label, spec.key,
                                     type_name(spec.type), example_of(spec)));
  fill_defaults(schema, params);
  return params;
}

void check_folder_name(const Params& params, const std::string& table, const std::string& key) {
  const std::string& name = params.get_string(key);
  if (name.find_first_of("/\\") != std::string::npos || name == "." || name == ".." ||
      name.find('\0') != std::string::npos)
    throw_config_error(fmt::format(
        "{}: [{}] {} = \"{}\" is a path, but it names a folder inside the output folder; use a "
        "plain name such as \"my-run\" and choose the place with [run] output or --output",
        params.origin(key), table, key, name));
}

toml::table to_toml(const Params& params) {
  toml::table out;
  for (const auto& [key, value] : params.values()) {
    std::visit(
        [&, k = key](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, bool> || std::is_same_v<T, int64_t> ||
                        std::is_same_v<T, double> || std::is_same_v<T, std::string>) {
            out.insert_or_assign(k, v);
          } else {
            toml::array array;
            for (const auto& element : v)
              array.push_back(element);
            out.insert_or_assign(k, std::move(array));
          }
        },
        value);
  }
  return out;
}

const ParamSchema& run_schema() {
  static const ParamSchema schema = {
      param::string("name", "")
          .help("run name (folder prefix); default: the experiment file's stem"),
      param::integer("seed", 0).at_least(0).help("seed of every random choice in the run"),
      param::string("device", "cpu").one_of({"cpu", "cuda"}).help("where tensors live"),
      param::string("precision", "float32")
          .one_of({"float32", "bfloat16", "float16"})
          .help("training steps under autocast: bfloat16 (CPU or GPU) or float16 (GPU); "
                "evaluation stays float32"),
      param::integer("threads", 0).at_least(0).help("LibTorch intra-op threads; 0 = one per core"),
      param::string("output", "runs")
          .help("folder that holds run folders (relative to the working directory)"),
      param::boolean("deterministic", false)
          .help("use deterministic algorithms (bit-exact resume on CPU)"),
      param::string_list("plugin_path", {})
          .help("extra plugin folders, searched after --plugin-path and ARDKIT_PLUGIN_PATH"),
      param::string("label", "")
          .help("a readable name for this run's TensorBoard curves (`ardkit grid` sets each cell's "
                "axis values); not part of the run id"),
      param::boolean("tensorboard", false)
          .help("write RUN/tensorboard/events.out.tfevents.* as the run goes (live curves, "
                "sample grids, the configuration); not part of the run id"),
  };
  return schema;
}

const ParamSchema& train_schema() {
  static const ParamSchema schema = {
      param::integer("epochs", 1)
          .at_least(0)
          .help("training epochs (0: evaluate the initial weights)"),
      param::integer("batch_size", 128).at_least(1).help("training batch size"),
      param::integer("eval_batch_size", 500)
          .at_least(1)
          .help("batch size of validation and evaluation"),
      param::integer("eval_points", 0)
          .at_least(0)
          .help("test points of the final evaluation; 0 = the whole test split"),
      param::integer("validate_every", 1)
          .at_least(0)
          .help("validate every N epochs (clean + [attack] accuracy); 0 = never"),
      param::integer("validation_points", 1000)
          .at_least(0)
          .help("validation points used; 0 = the whole validation split"),
      param::integer("log_every", 50).at_least(1).help("write a metrics line every N steps"),
      param::real("checkpoint_minutes", 5.0)
          .greater_than(0)
          .help("also checkpoint mid-epoch at this interval"),
      param::integer("average_from", -1)
          .at_least(-1)
          .help("average the student's weights after every epoch from this one (0-based) on "
                "and evaluate the mean as checkpoint \"averaged\" (SWA); -1 = no averaging"),
  };
  return schema;
}

const ParamSchema& optimizer_schema() {
  static const ParamSchema schema = {
      param::string("type", "sgd").one_of({"sgd", "adam"}).help("optimizer"),
      param::real("lr", 0.1).greater_than(0).help("initial learning rate"),
      param::real("momentum", 0.9).at_least(0).at_most(1).help("SGD momentum"),
      param::boolean("nesterov", false).help("SGD Nesterov momentum"),
      param::real("weight_decay", 5e-4)
          .at_least(0)
          .help("L2 weight decay (coupled, as torch.optim)"),
      param::real("extra_lr_factor", 1.0)
          .greater_than(0)
          .help("the objective's own trainable modules (heads): lr = scheduled lr x this"),
      param::real("extra_weight_decay", -1.0)
          .help("weight decay of the objective's trainable modules; negative: weight_decay"),
      param::real("beta1", 0.9).at_least(0).at_most(1).help("Adam beta1"),
      param::real("beta2", 0.999).at_least(0).at_most(1).help("Adam beta2"),
      param::real("grad_clip", 0.0)
          .at_least(0)
          .help("clip the gradient norm of every trained parameter to this before each step "
                "(0 = off)"),
  };
  return schema;
}

const ParamSchema& schedule_schema() {
  static const ParamSchema schema = {
      param::string("type", "constant")
          .one_of({"constant", "multistep", "piecewise", "cosine"})
          .help("learning-rate schedule (see LrSchedule in lr_schedule.hpp)"),
      param::string("per", "epoch")
          .one_of({"epoch", "batch"})
          .help("set the lr at each epoch's start, or before every batch (t = epoch + (i+1)/S)"),
      param::integer("epoch_base", 0)
          .at_least(0)
          .at_most(1)
          .help("count epochs from 0 or 1 when reading milestones/boundaries (1: as TRADES' "
                "`epoch >= 75` and IAD's lr_schedule(epoch + 1) count)"),
      param::integer_list("milestones", {})
          .help("multistep: epochs (0-based) from which lr is multiplied by gamma once more"),
      param::real("gamma", 0.1).greater_than(0).help("multistep: factor applied at each milestone"),
      param::real_list("boundaries", {})
          .help("piecewise: epochs (may be fractional) where the next value takes over"),
      param::real_list("values", {})
          .help("piecewise: learning rates, one more than boundaries (replaces [optimizer] lr)"),
      param::real("min_lr", 0.0).at_least(0).help("cosine: the final learning rate"),
      param::real("warmup_epochs", 0.0)
          .at_least(0)
          .help("linear warm-up from 0 over this many epochs, for any type"),
  };
  return schema;
}

std::string source_position(const std::string& file, const toml::source_region& source) {
  constexpr std::string_view kSet = "--set ";
  if (source.path && source.path->compare(0, kSet.size(), kSet) == 0)
    return fmt::format("{} ({})", file, *source.path);
  if (source.begin.line == 0)
    return file + " (--set)";
  return fmt::format("{}:{}:{}", file, source.begin.line, source.begin.column);
}

void apply_override(toml::table& root, const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw_config_error("--set '" + assignment + "': expected KEY=VALUE, e.g. --set train.epochs=2");
  const std::string path = assignment.substr(0, eq);
  const std::string text = assignment.substr(eq + 1);
  // The assignment is the value's source "file": errors then name it ("(--set a.b=VALUE)").
  const std::string source = "--set " + assignment;
  toml::table value_holder;
  try {
    value_holder = toml::parse("v = " + text, source);
  } catch (const toml::parse_error&) {
    // Bare words are strings: --set data.plugin=idx (quoted as a JSON string, which TOML reads).
    std::string quoted = "\"";
    for (char ch : text) {
      if (ch == '"' || ch == '\\')
        quoted += '\\';
      if (static_cast<unsigned char>(ch) < 0x20)
        quoted += fmt::format("\\u{:04x}", static_cast<unsigned char>(ch));
      else
        quoted += ch;
    }
    quoted += '"';
    try {
      value_holder = toml::parse("v = " + quoted, source);
    } catch (const toml::parse_error&) {
      value_holder.insert_or_assign("v", text);  // not valid UTF-8: no position, still a string
    }
  }
  toml::node* value = value_holder.get("v");

  std::vector<std::string> parts;
  std::stringstream stream(path);
  for (std::string part; std::getline(stream, part, '.');)
    parts.push_back(part);
  toml::node* current = &root;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    if (auto* table = current->as_table()) {
      if (!table->get(parts[i]))
        table->insert(parts[i], toml::table{});
      current = table->get(parts[i]);
    } else if (auto* array = current->as_array()) {
      size_t index = 0;
      try {
        index = std::stoul(parts[i]);
      } catch (...) {
        index = array->size();
      }
      if (index >= array->size())
        throw_config_error(
            fmt::format("--set {}: '{}' is not an index of that array (it has {} entries)", path,
                        parts[i], array->size()));
      current = array->get(index);
    } else {
      throw_config_error("--set " + path + ": '" + parts[i - 1] + "' is not a table");
    }
  }
  auto* table = current->as_table();
  if (!table)
    throw_config_error("--set " + path + ": the parent of '" + parts.back() + "' is not a table");
  // Moved, not copied: a copy would lose the source.
  value->visit([&](auto&& v) { table->insert_or_assign(parts.back(), std::move(v)); });
}

toml::table parse_toml_file(const fs::path& file, const std::string& missing) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec))
    throw_config_error(file.string() + ": " + missing);
  try {
    return toml::parse_file(file.string());
  } catch (const toml::parse_error& e) {
    throw_config_error(fmt::format("{}:{}:{}: malformed TOML: {}", file.string(),
                                   e.source().begin.line, e.source().begin.column,
                                   std::string(e.description())));
  }
}

toml::table read_experiment(const fs::path& file, const std::vector<std::string>& overrides) {
  toml::table root = parse_toml_file(
      file, "experiment file not found; check the path (experiments/ holds examples)");
  for (const auto& o : overrides)
    apply_override(root, o);
  return root;
}

std::vector<fs::path> experiment_plugin_path(const toml::table& root, const fs::path& file) {
  const auto& run = table_or_empty(root, "run", file.string());
  const auto params = validate_table(run_schema(), run, file.string(), "run");
  std::vector<fs::path> out;
  for (const auto& p : params.get_string_list("plugin_path"))
    out.emplace_back(p);
  return out;
}

void check_top_level(const toml::table& root, const std::string& file,
                     const std::vector<std::string>& allowed, const char* what) {
  for (auto&& [key, node] : root) {
    const std::string k(key.str());
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end())
      throw_config_error(fmt::format("{}: unknown table '{}'{}; {} has: {}",
                                     key_position(file, key, node), k, did_you_mean(k, allowed),
                                     what, join(allowed, ", ")));
  }
}

Params read_host_table(const toml::table& root, const std::string& name, const ParamSchema& schema,
                       const std::string& file) {
  return validate_table(schema, table_or_empty(root, name, file), file, name);
}

namespace {

PluginTable plugin_table(const toml::table& table, const std::string& name, PluginKind kind,
                         const ParamSchema& host_schema, const std::string& file,
                         const PluginLookup& lookup, const Params& preset = {},
                         const std::vector<std::string>& sub_tables = {}) {
  const toml::node* plugin = table.get("plugin");
  if (!plugin)
    throw_config_error(
        fmt::format("{}: [{}] has no 'plugin' key: name the {} plugin to use, e.g. "
                    "plugin = \"...\" (`ardkit plugins list` shows them)",
                    position(file, table.source()), name, kind_name(kind)));
  const auto* plugin_name = plugin->as_string();
  if (!plugin_name)
    throw_config_error(fmt::format("{}: [{}] 'plugin' must be a string naming a {} plugin, got {}",
                                   position(file, plugin->source()), name, kind_name(kind),
                                   describe_node(*plugin)));
  const std::string where = fmt::format("{}: [{}]", position(file, plugin->source()), name);
  const PluginInfo& info = lookup(kind, plugin_name->get(), where);
  std::vector<std::string> host_keys = {"plugin"};
  host_keys.insert(host_keys.end(), sub_tables.begin(), sub_tables.end());
  if (info.wraps_part)
    host_keys.push_back("wrapped");
  for (const auto& spec : host_schema)
    host_keys.push_back(spec.key);
  PluginTable out;
  out.table = name;
  out.plugin = plugin_name->get();
  out.params = validate_table(info.schema, table, file, name, host_keys, out.plugin, preset);
  out.need_flags = info.need_flags;
  out.roles = info.roles;
  if (info.wraps_part) {
    // The inner plugin's table, validated as its own; what it needs, the outer one needs.
    const toml::node* inner = table.get("wrapped");
    if (!inner || !inner->is_table())
      throw_config_error(fmt::format(
          "{}: [{}] '{}' is made of another {} plugin: add a [{}.wrapped] table with plugin = "
          "\"...\" and its parameters",
          position(file, (inner ? inner : plugin)->source()), name, out.plugin,
          kind_name(info.wrapped_kind), name));
    out.wrapped = std::make_shared<PluginTable>(
        plugin_table(*inner->as_table(), name + ".wrapped", info.wrapped_kind, {}, file, lookup));
    out.need_flags |= out.wrapped->need_flags;
    for (const auto& role : out.wrapped->roles)
      if (std::find(out.roles.begin(), out.roles.end(), role) == out.roles.end())
        out.roles.push_back(role);
  }
  std::vector<std::string> skipped = sub_tables;
  if (info.wraps_part)
    skipped.push_back("wrapped");
  for (const auto& [key, value] : preset.values())
    if (!table.contains(key))
      out.preset_keys.push_back(key);
  // Host keys are validated on their own, against the host's schema for this table, in the
  // table itself: a copy would lose the source positions that errors name.
  std::vector<std::string> plugin_keys = {"plugin"};
  plugin_keys.insert(plugin_keys.end(), skipped.begin(), skipped.end());
  for (const auto& spec : info.schema)
    plugin_keys.push_back(spec.key);
  out.host = validate_table(host_schema, table, file, name, plugin_keys);
  return out;
}

// The objective's attack defaults (keys the attack plugin has), each with an origin that names
// the objective; they apply where [attack] does not write the key. An unknown attack plugin is
// left for plugin_table to report with its position.
Params attack_defaults(const toml::table& attack, const PluginTable& objective,
                       const PluginLookup& lookup, const std::string& file) {
  // A wrapped objective's defaults first (a wrapper adds terms to it, and attacks as it does),
  // then the wrapper's own, which win.
  Params defaults =
      objective.wrapped ? attack_defaults(attack, *objective.wrapped, lookup, file) : Params();
  const PluginInfo& info = lookup(PluginKind::objective, objective.plugin, file);
  const auto* name = attack.get_as<std::string>("plugin");
  if (!info.attack_defaults || !name)
    return defaults;
  const PluginInfo* attack_info = nullptr;
  try {
    attack_info = &lookup(PluginKind::attack, name->get(), file);
  } catch (const Error&) {
    return defaults;
  }
  for (const auto& [key, value] : info.attack_defaults(objective.params)) {
    const bool known = std::any_of(attack_info->schema.begin(), attack_info->schema.end(),
                                   [&, k = key](const ParamSpec& s) { return s.key == k; });
    if (known)
      defaults.set(key, value, fmt::format("objective '{}' default", objective.plugin));
  }
  return defaults;
}

}  // namespace

std::optional<PluginTable> read_plugin_table(const toml::table& root, const std::string& name,
                                             PluginKind kind, bool required,
                                             const ParamSchema& host_schema,
                                             const std::string& file, const PluginLookup& lookup) {
  const toml::node* node = root.get(name);
  if (!node) {
    if (required)
      throw_config_error(
          fmt::format("{}: missing table [{}]: add it with plugin = \"...\" naming a "
                      "{} plugin (`ardkit plugins list`)",
                      file, name, kind_name(kind)));
    return std::nullopt;
  }
  return plugin_table(table_or_empty(root, name, file), name, kind, host_schema, file, lookup);
}

std::vector<PluginTable> read_plugin_tables(const toml::table& root, const std::string& name,
                                            PluginKind kind, const ParamSchema& host_schema,
                                            const std::string& file, const PluginLookup& lookup) {
  std::vector<PluginTable> out;
  const toml::node* node = root.get(name);
  if (!node)
    return out;
  const auto* array = node->as_array();
  if (!array || !array->is_array_of_tables())
    throw_config_error(
        fmt::format("{}: '{}' must be an array of tables: write [[{}]] for each entry",
                    position(file, node->source()), name, name));
  for (size_t i = 0; i < array->size(); ++i)
    out.push_back(plugin_table(*array->get(i)->as_table(), fmt::format("{}[{}]", name, i), kind,
                               host_schema, file, lookup));
  return out;
}

namespace {

// [generator]: the plugin's keys, and the host's engine keys (generator_options.hpp) with the
// plugin's defaults for them, validated in the one table.
std::optional<PluginTable> read_generator_table(const toml::table& root, const std::string& file,
                                                const PluginLookup& lookup) {
  const toml::node* node = root.get("generator");
  if (!node)
    return std::nullopt;
  const toml::table& table = table_or_empty(root, "generator", file);
  ParamSchema engine = generator_engine_schema(PluginInfo{});
  if (const auto* name = table.get_as<std::string>("plugin")) {
    try {
      engine = generator_engine_schema(lookup(PluginKind::generator, name->get(), file));
    } catch (const Error&) {
      // An unknown plugin is reported by plugin_table, with its position and a suggestion.
    }
  }
  return plugin_table(table, "generator", PluginKind::generator, engine, file, lookup);
}

}  // namespace

const ParamSchema& model_host_schema() {
  static const ParamSchema schema = [] {
    ParamSchema s;
    add_weight_params(s);
    return s;
  }();
  return schema;
}

const ParamSchema& teacher_host_schema() {
  static const ParamSchema schema = [] {
    ParamSchema s = model_host_schema();
    s.push_back(param::string("experiment", "")
                    .help("experiment file whose trained student is the teacher (run first)"));
    s.push_back(param::string("use", "best")
                    .one_of({"best", "last"})
                    .help("with experiment: its validation-best or its last checkpoint"));
    return s;
  }();
  return schema;
}

const ParamSchema& companion_host_schema() {
  static const ParamSchema schema = [] {
    ParamSchema s = model_host_schema();
    s.push_back(param::string("mode", "follow")
                    .one_of({"follow", "train", "eval"})
                    .help("train/eval mode: the student's (follow), or always train or eval"));
    return s;
  }();
  return schema;
}

const ParamSchema& eval_host_schema() {
  static const ParamSchema schema = {
      param::string("name", "")
          .help("label of this attack in tables and results; default: the plugin name")};
  return schema;
}

toml::table plugin_table_to_toml(const PluginTable& t) {
  toml::table table = to_toml(t.params);
  for (auto&& [k, v] : to_toml(t.host))
    table.insert_or_assign(k, v);
  table.insert_or_assign("plugin", t.plugin);
  if (t.wrapped)
    table.insert_or_assign("wrapped", plugin_table_to_toml(*t.wrapped));
  return table;
}

namespace {

// The NAME tables of [teachers.NAME] or [companions.NAME], in file order; each NAME an identifier.
std::vector<std::pair<std::string, const toml::table*>> named_tables(const toml::table& root,
                                                                     const char* group,
                                                                     const std::string& file) {
  std::vector<std::pair<std::string, const toml::table*>> out;
  const toml::node* node = root.get(group);
  if (!node)
    return out;
  const auto* tables = node->as_table();
  if (!tables)
    throw_config_error(fmt::format("{}: '{}' must be a table of named tables: write [{}.NAME]",
                                   position(file, node->source()), group, group));
  for (auto&& [key, value] : *tables) {
    const std::string name(key.str());
    const bool identifier =
        !name.empty() && std::all_of(name.begin(), name.end(),
                                     [](unsigned char c) { return std::isalnum(c) || c == '_'; });
    if (!value.is_table() || !identifier)
      throw_config_error(fmt::format(
          "{}: [{}.{}] must be a table named by letters, digits and '_': write [{}.NAME] with "
          "plugin = \"...\"",
          position(file, value.source()), group, name, group));
    out.emplace_back(name, value.as_table());
  }
  return out;
}

// [teachers.NAME] (frozen models, like [teacher]) and [companions.NAME]
// (trained beside the student, each with its optimizer and schedule over the run's).
void read_role_tables(const toml::table& root, const std::string& file, const PluginLookup& lookup,
                      ExperimentConfig& config) {
  for (const auto& [name, table] : named_tables(root, "teachers", file)) {
    const std::string label = "teachers." + name;
    config.teachers[name] =
        plugin_table(*table, label, PluginKind::model, teacher_host_schema(), file, lookup);
  }
  for (const auto& [name, table] : named_tables(root, "companions", file)) {
    const std::string label = "companions." + name;
    CompanionConfig companion;
    companion.model = plugin_table(*table, label, PluginKind::model, companion_host_schema(), file,
                                   lookup, {}, {"optimizer", "schedule"});
    // A named copy: clang 14 cannot capture a structured binding in a lambda (C++17).
    const toml::table* companion_table = table;
    const auto sub = [&](const char* key, const ParamSchema& schema, const Params& run_table) {
      const toml::node* node = companion_table->get(key);
      static const toml::table empty;
      if (node && !node->is_table())
        throw_config_error(fmt::format("{}: [{}] '{}' must be a table: write [{}.{}]",
                                       position(file, node->source()), label, key, label, key));
      return validate_table(schema, node ? *node->as_table() : empty, file, label + "." + key, {},
                            {}, run_table);
    };
    companion.optimizer = sub("optimizer", optimizer_schema(), config.optimizer);
    companion.schedule = sub("schedule", schedule_schema(), config.schedule);
    LrSchedule(companion.optimizer, companion.schedule, config.train.get_int("epochs"));
    config.companions[name] = std::move(companion);
  }
}

// Each model table the objective declared (PluginInfo::roles) is there, and each one there is
// declared: an unused teacher would be silently ignored.
void check_roles(const toml::table& root, const ExperimentConfig& config,
                 const std::string& objective_at) {
  const std::string file = config.file.string();
  const auto& roles = config.objective->roles;
  const auto present = [&](const std::string& role) {
    const auto dot = role.find('.');
    const std::string group = role.substr(0, dot), name = role.substr(dot + 1);
    return group == "teachers" ? config.teachers.count(name) > 0
                               : config.companions.count(name) > 0;
  };
  for (const auto& role : roles)
    if (!present(role))
      throw_config_error(fmt::format(
          "{}: [objective] '{}' uses a model in the role {} but the experiment has no [{}] "
          "table; add one with plugin = \"...\"{}",
          objective_at, config.objective->plugin, role, role,
          role.rfind("teachers.", 0) == 0 ? " and checkpoint = \"...\"" : ""));
  const auto check_declared = [&](const char* group, const std::string& name) {
    const std::string role = std::string(group) + "." + name;
    if (std::find(roles.begin(), roles.end(), role) != roles.end())
      return;
    const toml::node* node = root.at_path(role).node();
    throw_config_error(fmt::format(
        "{}: [{}]: objective '{}' uses no model in the role {} ({}); remove the table or "
        "choose an objective that uses it",
        node ? position(file, node->source()) : file, role, config.objective->plugin, role,
        roles.empty() ? "it uses none" : "it uses " + join(roles, ", ")));
  };
  for (const auto& [name, table] : config.teachers)
    check_declared("teachers", name);
  for (const auto& [name, companion] : config.companions)
    check_declared("companions", name);
}

}  // namespace

ExperimentConfig resolve_experiment(const toml::table& root, const fs::path& file_path,
                                    const PluginLookup& lookup) {
  const std::string file = file_path.string();
  check_top_level(root, file, kTopLevel, "an experiment");
  ExperimentConfig config;
  config.file = file_path;
  config.run = read_host_table(root, "run", run_schema(), file);
  check_folder_name(config.run, "run", "name");
  config.train = read_host_table(root, "train", train_schema(), file);
  config.optimizer = read_host_table(root, "optimizer", optimizer_schema(), file);
  config.schedule = read_host_table(root, "schedule", schedule_schema(), file);
  LrSchedule(config.optimizer, config.schedule, config.train.get_int("epochs"));  // checks it
  static const ParamSchema no_host_keys;
  auto single = [&](const char* name, PluginKind kind, bool required, const ParamSchema& host) {
    return read_plugin_table(root, name, kind, required, host, file, lookup);
  };
  config.data = single("data", PluginKind::data, true, no_host_keys);
  config.student = single("student", PluginKind::model, true, model_host_schema());
  config.teacher = single("teacher", PluginKind::model, false, teacher_host_schema());
  config.objective = single("objective", PluginKind::objective, true, no_host_keys);
  config.generator = read_generator_table(root, file, lookup);
  if (root.get("attack")) {
    const toml::table& attack = table_or_empty(root, "attack", file);
    config.attack = plugin_table(attack, "attack", PluginKind::attack, no_host_keys, file, lookup,
                                 attack_defaults(attack, *config.objective, lookup, file));
  }
  config.evals =
      read_plugin_tables(root, "eval", PluginKind::attack, eval_host_schema(), file, lookup);
  config.hooks = read_plugin_tables(root, "hook", PluginKind::hook, no_host_keys, file, lookup);
  read_role_tables(root, file, lookup, config);
  // What the objective declared at registration: a missing table is named here, by `ardkit
  // validate`, before anything is built.
  const auto objective_at = [&] {
    const toml::node* plugin = root.at_path("objective.plugin").node();
    return plugin ? position(file, plugin->source()) : file;
  };
  if (config.objective->needs(Need::teacher) && !config.teacher)
    throw_config_error(fmt::format(
        "{}: [objective] '{}' distills from a teacher but the experiment has no [teacher] table; "
        "add one with plugin and checkpoint (or experiment = \"TEACHER.toml\")",
        objective_at(), config.objective->plugin));
  if (config.objective->needs(Need::attack) && !config.attack)
    throw_config_error(fmt::format(
        "{}: [objective] '{}' trains on adversarial examples but the experiment has no [attack] "
        "table; add one, e.g. [attack] plugin = \"pgd\"",
        objective_at(), config.objective->plugin));
  check_roles(root, config, objective_at());
  return config;
}

std::string ExperimentConfig::name() const {
  const std::string& n = run.get_string("name");
  return n.empty() ? file.stem().string() : n;
}

toml::table ExperimentConfig::resolved() const {
  toml::table out;
  const auto& with_plugin = plugin_table_to_toml;
  toml::table run_table = to_toml(run);
  run_table.insert_or_assign("name", name());
  out.insert("run", std::move(run_table));
  out.insert("train", to_toml(train));
  out.insert("optimizer", to_toml(optimizer));
  out.insert("schedule", to_toml(schedule));
  for (const auto* t : {&data, &student, &teacher, &objective, &attack, &generator})
    if (*t)
      out.insert((*t)->table, with_plugin(**t));
  // Present only when used: the ids of runs without named models stay what they were.
  if (!teachers.empty()) {
    toml::table group;
    for (const auto& [name, t] : teachers)
      group.insert(name, with_plugin(t));
    out.insert("teachers", std::move(group));
  }
  if (!companions.empty()) {
    toml::table group;
    for (const auto& [name, c] : companions) {
      toml::table table = with_plugin(c.model);
      table.insert("optimizer", to_toml(c.optimizer));
      table.insert("schedule", to_toml(c.schedule));
      group.insert(name, std::move(table));
    }
    out.insert("companions", std::move(group));
  }
  for (const auto& [key, list] : {std::pair{"eval", &evals}, std::pair{"hook", &hooks}}) {
    if (list->empty())
      continue;
    toml::array array;
    for (const auto& t : *list)
      array.push_back(with_plugin(t));
    out.insert(key, std::move(array));
  }
  return out;
}

std::string ExperimentConfig::run_id() const {
  toml::table identity = resolved();
  auto* run_table = identity.get_as<toml::table>("run");
  for (const char* k : {"output", "threads", "plugin_path", "tensorboard", "label"})
    run_table->erase(k);
  // A key added after runs existed does not change their identity at its default.
  if (run_table->get("precision") &&
      run_table->get("precision")->value_or(std::string()) == "float32")
    run_table->erase("precision");
  if (auto* train = identity.get_as<toml::table>("train");
      train && train->get("average_from") && train->get("average_from")->value_or(int64_t{0}) == -1)
    train->erase("average_from");
  std::ostringstream text;
  text << toml::toml_formatter(identity);
  const std::string bytes = text.str();
  const uint64_t h = fnv1a(bytes.data(), bytes.size());
  return fmt::format("{}-{:012x}", name(), h & 0xffffffffffffull);
}

}  // namespace ardkit
