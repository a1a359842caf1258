#include "grid_file.hpp"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <set>
#include <sstream>

#include "ardkit/error.hpp"
#include "ardkit/host/config.hpp"
#include "ardkit/params.hpp"
#include "ardkit/text.hpp"

namespace fs = std::filesystem;

namespace ardkit {

namespace {

std::string at(const fs::path& file, const toml::source_region& source) {
  if (!source.begin)
    return file.string() + " (command line)";
  return source_position(file.string(), source);
}

// A node's value as TOML text, the form --set parses back: floats in their shortest round-trip
// form (0.1, not 0.10000000000000001) but still floats (1.0), so labels read as they were written.
std::string toml_text(const toml::node& node) {
  if (const auto* d = node.as_floating_point()) {
    std::string text = fmt::format("{}", d->get());
    if (text.find_first_of(".eEn") == std::string::npos)
      text += ".0";
    return text;
  }
  if (const auto* array = node.as_array()) {
    std::vector<std::string> items;
    for (const auto& item : *array)
      items.push_back(toml_text(item));
    return "[" + join(items, ", ") + "]";
  }
  if (const auto* table = node.as_table()) {
    std::vector<std::string> items;
    for (auto&& [key, value] : *table)
      items.push_back(std::string(key.str()) + " = " + toml_text(value));
    return "{" + join(items, ", ") + "}";
  }
  std::ostringstream out;
  node.visit([&](auto&& v) { out << toml::toml_formatter(v, toml::format_flags::none); });
  return out.str();
}

// Leaves of a table as dotted keys: `attack.eps = [...]` and `"attack.eps" = [...]` alike.
void flatten(const toml::table& table, const std::string& prefix,
             std::vector<std::pair<std::string, const toml::node*>>& out) {
  for (auto&& [key, node] : table) {
    const std::string k = prefix.empty() ? std::string(key.str()) : prefix + "." + key.str().data();
    if (const auto* sub = node.as_table())
      flatten(*sub, k, out);
    else
      out.emplace_back(k, &node);
  }
}

const ParamSchema& grid_schema() {
  static const ParamSchema schema = {
      param::string("name", "").help("the grid's name (default: the file's stem)"),
      param::string_list("experiments", {})
          .help("base experiment files, relative to the grid file (the 'experiment' axis)"),
      param::string("experiment", "").help("a single base experiment file"),
      param::string("output", "").help("run store of every cell (default: each experiment's)"),
  };
  return schema;
}

const ParamSchema& slurm_schema() {
  static const ParamSchema schema = {
      param::string("partition", "").help("sbatch --partition (\"\" = the cluster's default)"),
      param::string("time", "04:00:00").help("sbatch --time of one cell"),
      param::integer("cpus", 2).at_least(1).help("sbatch --cpus-per-task; also ardkit's threads"),
      param::integer("gpus", 0).at_least(0).help("sbatch --gpus-per-task"),
      param::string("memory", "").help("sbatch --mem (\"\" = the partition's default)"),
      param::integer("concurrency", 0).at_least(0).help("at most this many cells at once (0: any)"),
      param::integer("signal_seconds", 120)
          .at_least(10)
          .help("SIGUSR1 this long before the time limit: the cell checkpoints and requeues"),
      param::string_list("extra", {}).help("further sbatch options, one per entry"),
  };
  return schema;
}

// One axis from a node: an array of values (an empty array is an error: it empties the grid).
GridSpec::Axis axis_of(const std::string& key, const toml::node& node, const fs::path& file,
                       const std::string& table) {
  const auto* array = node.as_array();
  if (!array)
    throw_config_error(fmt::format(
        "{}: [{}] {} must be a list of values, e.g. {} = [0.05, 0.1]; use [set] for a fixed value",
        at(file, node.source()), table, key, key));
  if (array->empty())
    throw_config_error(fmt::format("{}: [{}] {} is an empty list; give at least one value",
                                   at(file, node.source()), table, key));
  GridSpec::Axis axis{key, {}};
  for (const auto& v : *array)
    axis.values.push_back(toml_text(v));
  return axis;
}

}  // namespace

std::string GridCell::label() const {
  std::vector<std::string> parts;
  for (const auto& c : coordinates) {
    std::string v = c.value;
    if (v.size() >= 2 && (v.front() == '"' || v.front() == '\''))
      v = v.substr(1, v.size() - 2);
    parts.push_back(c.key == "experiment" ? v : c.key + "=" + v);
  }
  return parts.empty() ? experiment_label : join(parts, " ");
}

std::vector<std::string> split_axis_values(const std::string& text) {
  std::vector<std::string> out;
  std::string current;
  int depth = 0;
  char quote = 0;
  for (char c : text) {
    if (quote) {
      if (c == quote)
        quote = 0;
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '[' || c == '{') {
      ++depth;
    } else if (c == ']' || c == '}') {
      --depth;
    } else if (c == ',' && depth == 0) {
      out.push_back(current);
      current.clear();
      continue;
    }
    current += c;
  }
  out.push_back(current);
  return out;
}

std::vector<std::string> GridSpec::axis_keys() const {
  std::vector<std::string> keys;
  if (experiments.size() > 1)
    keys.push_back("experiment");
  for (const auto& group : groups)
    for (const auto& axis : group)
      keys.push_back(axis.key);
  return keys;
}

namespace {

// [grid] experiments (and experiment), name and output.
void read_grid_table(const toml::table& root, const fs::path& file, GridSpec& spec) {
  std::error_code ec;
  const Params grid = read_host_table(root, "grid", grid_schema(), file.string());
  check_folder_name(grid, "grid", "name");
  if (!grid.get_string("name").empty())
    spec.name = grid.get_string("name");
  std::vector<std::string> names = grid.get_string_list("experiments");
  if (!grid.get_string("experiment").empty())
    names.insert(names.begin(), grid.get_string("experiment"));
  if (names.empty())
    throw_config_error(file.string() +
                       ": [grid] names no experiment; add experiments = [\"base.toml\", ...]");
  for (const auto& n : names) {
    const fs::path p = fs::path(n).is_absolute() ? fs::path(n) : file.parent_path() / n;
    if (!fs::is_regular_file(p, ec))
      throw_config_error(
          fmt::format("{}: [grid] experiment '{}' not found (looked for {}); "
                      "paths are relative to the grid file",
                      file.string(), n, p.string()));
    spec.experiments.push_back(p.lexically_normal());
  }
  std::set<std::string> stems;
  for (const auto& p : spec.experiments)
    if (!stems.insert(p.stem().string()).second)
      throw_config_error(fmt::format(
          "{}: [grid] two experiments are named '{}'; the experiment axis tells them apart by "
          "file name, so rename one",
          file.string(), p.stem().string()));
  if (!grid.get_string("output").empty())
    spec.output = grid.get_string("output");
}

void read_slurm_table(const toml::table& root, const fs::path& file, GridSpec& spec) {
  const Params slurm = read_host_table(root, "slurm", slurm_schema(), file.string());
  spec.slurm.partition = slurm.get_string("partition");
  spec.slurm.time = slurm.get_string("time");
  spec.slurm.cpus = slurm.get_int("cpus");
  spec.slurm.gpus = slurm.get_int("gpus");
  spec.slurm.memory = slurm.get_string("memory");
  spec.slurm.concurrency = slurm.get_int("concurrency");
  spec.slurm.signal_seconds = slurm.get_int("signal_seconds");
  spec.slurm.extra = slurm.get_string_list("extra");
}

std::vector<std::pair<std::string, const toml::node*>> leaves_of(const toml::table& table) {
  std::vector<std::pair<std::string, const toml::node*>> leaves;
  flatten(table, "", leaves);
  return leaves;
}

// [[zip]] groups: keys that move together, each a list of one length.
void read_zips(const toml::array& zips, const fs::path& file, GridSpec& spec) {
  for (size_t z = 0; z < zips.size(); ++z) {
    const auto* table = zips.get(z)->as_table();
    if (!table)
      throw_config_error(file.string() + ": [[zip]] entries must be tables of lists");
    std::vector<GridSpec::Axis> group;
    for (const auto& [key, node] : leaves_of(*table)) {
      group.push_back(axis_of(key, *node, file, fmt::format("zip[{}]", z)));
      if (group.back().values.size() != group.front().values.size())
        throw_config_error(
            fmt::format("{}: [[zip]] {} has {} values but {} has {}; keys that move together need "
                        "lists of the same length",
                        at(file, node->source()), key, group.back().values.size(),
                        group.front().key, group.front().values.size()));
    }
    if (!group.empty())
      spec.groups.push_back(std::move(group));
  }
}

// [set], [axes], [[zip]] and [[exclude]].
void read_grid_axes(const toml::table& root, const fs::path& file, GridSpec& spec) {
  if (const auto* set = root["set"].as_table())
    for (const auto& [key, node] : leaves_of(*set))
      spec.set.push_back(key + "=" + toml_text(*node));
  if (const auto* axes = root["axes"].as_table())
    for (const auto& [key, node] : leaves_of(*axes))
      spec.groups.push_back({axis_of(key, *node, file, "axes")});
  if (const auto* zips = root["zip"].as_array())
    read_zips(*zips, file, spec);
  if (const auto* excludes = root["exclude"].as_array())
    for (size_t x = 0; x < excludes->size(); ++x) {
      const auto* table = excludes->get(x)->as_table();
      if (!table)
        throw_config_error(file.string() + ": [[exclude]] entries must be tables");
      std::vector<GridCoordinate> rule;
      for (const auto& [key, node] : leaves_of(*table))
        rule.push_back({key, toml_text(*node)});
      spec.excludes.push_back(std::move(rule));
    }
}

// --axis KEY=V1,V2: values parse as TOML, bare words are strings (--axis
// objective.plugin=ard,rslad).
GridSpec::Axis parse_cli_axis(const std::string& a) {
  const auto eq = a.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == a.size())
    throw_config_error("--axis '" + a + "': expected KEY=V1,V2,..., e.g. --axis run.seed=0,1,2");
  GridSpec::Axis axis{a.substr(0, eq), {}};
  for (auto v : split_axis_values(a.substr(eq + 1))) {
    try {
      auto parsed = toml::parse("v = " + v);
      v = toml_text(*parsed.get("v"));
    } catch (const toml::parse_error&) {
      v = toml_text(toml::value<std::string>(v));
    }
    axis.values.push_back(v);
  }
  return axis;
}

// The command line replaces a file axis of the same key (alone in its group), or adds one.
void add_cli_axis(GridSpec& spec, const GridSpec::Axis& axis) {
  bool replaced = false;
  for (auto& group : spec.groups)
    for (auto& existing : group)
      if (existing.key == axis.key) {
        if (group.size() > 1 && existing.values.size() != axis.values.size())
          throw_config_error(fmt::format(
              "--axis {}: the grid's [[zip]] moves {} together with {}; give {} values", axis.key,
              axis.key, group.front().key == axis.key ? group.back().key : group.front().key,
              existing.values.size()));
        existing = axis;
        replaced = true;
      }
  if (!replaced)
    spec.groups.push_back({axis});
}

// Each key one axis; exclude rules name axes (a rule naming anything else would silently
// exclude nothing).
void check_axes(const GridSpec& spec, const fs::path& file) {
  std::set<std::string> seen;
  for (const auto& key : spec.axis_keys())
    if (!seen.insert(key).second)
      throw_config_error(
          fmt::format("{}: axis '{}' appears twice; give each key one axis (or "
                      "one [[zip]] group)",
                      file.string(), key));
  for (const auto& rule : spec.excludes)
    for (const auto& c : rule)
      if (!seen.count(c.key))
        throw_config_error(
            fmt::format("{}: [[exclude]] names '{}', which is not an axis{}; axes: "
                        "{}",
                        file.string(), c.key, did_you_mean(c.key, spec.axis_keys()),
                        join(spec.axis_keys(), ", ")));
}

}  // namespace

GridSpec read_grid(const fs::path& file, const std::vector<std::string>& cli_axes,
                   const std::vector<std::string>& cli_set) {
  const toml::table root = parse_toml_file(
      file, "grid file not found; check the path (experiments/fmnist/grids/ holds examples)");
  GridSpec spec;
  spec.file = file;
  spec.name = file.stem().string();
  if (!root.contains("grid")) {
    // An experiment file: a grid of itself along the command line's axes (Hydra's --multirun).
    spec.experiments.push_back(file);
  } else {
    check_top_level(root, file.string(), {"grid", "axes", "zip", "exclude", "set", "slurm"},
                    "a grid file");
    read_grid_table(root, file, spec);
    read_slurm_table(root, file, spec);
    read_grid_axes(root, file, spec);
  }
  for (const auto& s : cli_set) {
    if (s.find('=') == std::string::npos || s.front() == '=')
      throw_config_error("--set '" + s + "': expected KEY=VALUE, e.g. --set train.epochs=2");
    spec.set.push_back(s);
  }
  for (const auto& a : cli_axes)
    add_cli_axis(spec, parse_cli_axis(a));
  check_axes(spec, file);
  return spec;
}

namespace {

// Whether the experiment has the table an axis key sets ("attack" of attack.eps, entry 0 of
// eval for eval.0.eps); [run], [train], [optimizer] and [schedule] always exist.
bool key_applies(const toml::table& experiment, const std::string& key) {
  const auto parts = split(key, '.');
  if (parts.size() < 2)
    return true;
  static const std::set<std::string> host = {"run", "train", "optimizer", "schedule"};
  if (host.count(parts[0]))
    return true;
  const toml::node* node = experiment.get(parts[0]);
  for (size_t i = 1; node && i + 1 < parts.size(); ++i) {
    if (const auto* t = node->as_table())
      node = t->get(parts[i]);
    else if (const auto* a = node->as_array())
      node = parts[i].find_first_not_of("0123456789") == std::string::npos
                 ? a->get(std::stoul(parts[i]))
                 : nullptr;
    else
      node = nullptr;
  }
  return node != nullptr;
}

}  // namespace

std::vector<GridCell> GridSpec::cells() const {
  std::vector<toml::table> roots;
  for (const auto& e : experiments)
    roots.push_back(read_experiment(e, {}));
  // An axis whose table no experiment has is a typo, not an axis that does not apply.
  for (const auto& group : groups)
    for (const auto& axis : group) {
      bool anywhere = false;
      for (const auto& r : roots)
        anywhere = anywhere || key_applies(r, axis.key);
      if (!anywhere)
        throw_config_error(fmt::format(
            "{}: axis '{}' sets a table that none of the grid's experiments has; check the key "
            "(axes name experiment keys such as attack.eps or objective.plugin)",
            file.string(), axis.key));
    }
  std::vector<GridCell> out;
  std::vector<size_t> index(groups.size(), 0);
  for (size_t e = 0; e < experiments.size(); ++e) {
    std::fill(index.begin(), index.end(), 0);
    for (;;) {
      GridCell cell;
      cell.experiment = experiments[e];
      cell.experiment_label = experiments[e].stem().string();
      if (experiments.size() > 1)
        cell.coordinates.push_back(
            {"experiment", toml_text(toml::value<std::string>(cell.experiment_label))});
      cell.overrides = set;
      for (size_t g = 0; g < groups.size(); ++g)
        for (const auto& axis : groups[g]) {
          cell.coordinates.push_back({axis.key, axis.values[index[g]]});
          if (key_applies(roots[e], axis.key))
            cell.overrides.push_back(axis.key + "=" + axis.values[index[g]]);
        }
      const bool excluded = std::any_of(excludes.begin(), excludes.end(), [&](const auto& rule) {
        return std::all_of(rule.begin(), rule.end(), [&](const GridCoordinate& c) {
          return std::any_of(
              cell.coordinates.begin(), cell.coordinates.end(),
              [&](const GridCoordinate& d) { return d.key == c.key && d.value == c.value; });
        });
      });
      if (!excluded) {
        cell.index = out.size();
        out.push_back(std::move(cell));
      }
      // Next combination: the last group moves fastest.
      size_t g = groups.size();
      while (g > 0) {
        --g;
        if (++index[g] < groups[g].front().values.size())
          break;
        index[g] = 0;
        if (g == 0) {
          g = groups.size() + 1;
          break;
        }
      }
      if (groups.empty() || g == groups.size() + 1)
        break;
    }
  }
  if (out.empty())
    throw_config_error(file.string() + ": every cell of the grid is excluded; check [[exclude]]");
  return out;
}

}  // namespace ardkit
