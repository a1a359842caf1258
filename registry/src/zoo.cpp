#include "ardkit/host/zoo.hpp"

#include <fmt/format.h>

#include <filesystem>
#include <sstream>

#include "ardkit/error.hpp"
#include "ardkit/file.hpp"
#include "ardkit/host/config.hpp"
#include "ardkit/text.hpp"

namespace fs = std::filesystem;

namespace ardkit {

extern const char* const kZooCatalogue;  // registry/zoo/robustbench.toml, built in

namespace {

std::vector<ZooEntry> parse_catalogue() {
  const toml::table root = toml::parse(std::string_view(kZooCatalogue),
                                       std::string_view("registry/zoo/robustbench.toml"));
  std::vector<ZooEntry> out;
  for (auto&& [key, node] : root) {
    const toml::table& t = *node.as_table();
    ZooEntry e;
    e.name = std::string(key.str());
    e.architecture = t["architecture"].value_or(std::string());
    e.family = t["family"].value_or(std::string());
    e.paper = t["paper"].value_or(std::string());
    e.eps = t["eps"].value_or(std::string());
    e.clean = t["clean"].value_or(0.0);
    e.autoattack = t["autoattack"].value_or(0.0);
    e.model = *t["model"].as_table();
    out.push_back(std::move(e));
  }
  // toml++ keeps keys sorted; the list reads best by dataset, then name.
  return out;
}

// A value as TOML writes it, for comparing two nodes of any type.
std::string text_of(const toml::node& node) {
  std::ostringstream out;
  node.visit([&](auto&& v) { out << v; });
  return out.str();
}

// One model table: the entry's architecture in, `file` as the checkpoint, the file's hash.
void expand_table(toml::table& table, const std::string& label, const std::string& file) {
  const toml::node* zoo = table.get("zoo");
  if (!zoo || zoo->value_or(std::string("?")).empty())
    return;  // absent, or the empty default a resolved configuration writes
  const auto name = zoo->value<std::string>();
  const std::string where = fmt::format("{}: [{}]", source_position(file, zoo->source()), label);
  if (!name)
    throw_config_error(where +
                       ": zoo must be a string naming a model, e.g. "
                       "\"cifar10/Linf/Wang2023Better_WRN-28-10\" (`ardkit zoo list`)");
  const ZooEntry& entry = zoo_entry(*name, where);
  if (const toml::node* experiment = table.get("experiment"))
    throw_config_error(fmt::format(
        "{}: [{}] names both zoo and experiment; a teacher is either a zoo model (zoo, file) or "
        "another experiment's student, not both",
        source_position(file, experiment->source()), label));
  // A value the entry fixes may be written only as the entry has it (a run's resolved
  // configuration, read again, has them all).
  for (auto&& [key, value] : entry.model)
    if (const toml::node* given = table.get(key.str()); given && text_of(*given) != text_of(value))
      throw_config_error(fmt::format(
          "{}: [{}] sets '{}', which zoo = \"{}\" fixes ({}: {}); remove it, or drop zoo and "
          "name the plugin and its parameters yourself",
          source_position(file, given->source()), label, std::string(key.str()), *name,
          entry.architecture, entry.family));
  if (const toml::node* file_node = table.get("file")) {
    if (table.contains("checkpoint"))
      throw_config_error(fmt::format(
          "{}: [{}] names both file and checkpoint; with zoo, give the weights as file = \"...\"",
          source_position(file, file_node->source()), label));
    toml::node_view<toml::node> moved = table["file"];
    table.insert("checkpoint", *moved.node());
    table.erase("file");
  }
  for (auto&& [key, value] : entry.model)
    table.insert(key, value);  // no-op where the table already has the same value
  const auto checkpoint = table["checkpoint"].value<std::string>();
  std::error_code ec;
  if (checkpoint && !table.contains("sha256") && fs::is_regular_file(*checkpoint, ec))
    table.insert("sha256", file_sha256(*checkpoint));
}

}  // namespace

const std::vector<ZooEntry>& zoo_entries() {
  static const std::vector<ZooEntry> entries = parse_catalogue();
  return entries;
}

const ZooEntry& zoo_entry(const std::string& name, const std::string& where) {
  std::vector<std::string> names;
  for (const auto& e : zoo_entries()) {
    if (e.name == name)
      return e;
    names.push_back(e.name);
  }
  throw_config_error(fmt::format(
      "{}: '{}' is not a model zoo entry ardkit knows{}; `ardkit zoo list` shows them (add one "
      "to registry/zoo/robustbench.toml)",
      where, name, did_you_mean(name, names)));
}

void expand_zoo(toml::table& root, const std::string& file) {
  for (const char* role : {"student", "teacher", "model"})
    if (auto* table = root.get_as<toml::table>(role))
      expand_table(*table, role, file);
  for (const char* group : {"teachers", "companions"})
    if (auto* named = root.get_as<toml::table>(group))
      for (auto&& [key, node] : *named)
        if (auto* table = node.as_table())
          expand_table(*table, std::string(group) + "." + std::string(key.str()), file);
}

}  // namespace ardkit
