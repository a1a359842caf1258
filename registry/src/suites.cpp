#include "ardkit/host/suites.hpp"

#include <fmt/format.h>

#include "ardkit/error.hpp"
#include "ardkit/host/config.hpp"
#include "ardkit/text.hpp"

namespace ardkit {

namespace {

std::string position(const std::string& file, const toml::source_region& source) {
  return source_position(file, source);
}

toml::table attack(const char* plugin, const char* name) {
  return toml::table{{"plugin", plugin}, {"name", name}};
}

// The suite's attack tables for one threat model.
std::vector<toml::table> suite_tables(const std::string& suite, double eps, const std::string& norm,
                                      int64_t seed) {
  std::vector<toml::table> out;
  const bool linf = norm == "linf";
  if (linf) {
    auto fgsm = attack("fgsm", "fgsm");
    fgsm.insert("eps", eps);
    out.push_back(std::move(fgsm));
  }
  // PGD-20 at step eps/4 (2/255 at 8/255, the ARD/RSLAD papers' evaluation).
  auto pgd = attack("pgd", "pgd20");
  pgd.insert("eps", eps);
  pgd.insert("norm", norm);
  pgd.insert("steps", 20);
  pgd.insert("step_size", eps / 4);
  out.push_back(std::move(pgd));
  if (suite == "quick")
    return out;
  if (linf) {
    auto cw = attack("cw_inf", "cw_inf");
    cw.insert("eps", eps);
    cw.insert("steps", 20);
    cw.insert("step_size", eps / 4);
    out.push_back(std::move(cw));
  }
  auto aa = attack("autoattack", "autoattack");
  aa.insert("eps", eps);
  aa.insert("norm", norm);
  aa.insert("seed", seed);
  if (!linf) {
    // Square is L-inf only in ardkit: the white-box parts of the standard version.
    aa.insert("version", "custom");
    aa.insert("attacks", toml::array{"apgd-ce", "apgd-t", "fab-t"});
  }
  out.push_back(std::move(aa));
  return out;
}

}  // namespace

std::vector<std::string> suite_names() {
  return {"quick", "standard"};
}

void expand_suites(toml::table& root, const std::string& file) {
  auto* evals = root.get_as<toml::array>("eval");
  if (!evals)
    return;
  // In place: a copied table loses the source positions that later errors name.
  for (size_t i = 0, number = 1; i < evals->size(); ++number) {
    const auto* entry = evals->get(i)->as_table();
    if (!entry || !entry->contains("suite")) {
      ++i;
      continue;
    }
    const std::string where =
        fmt::format("{}: [[eval]] entry {}", position(file, entry->source()), number);
    const auto* suite_node = entry->get("suite");
    const auto suite = suite_node->value<std::string>();
    const auto names = suite_names();
    if (!suite || std::find(names.begin(), names.end(), *suite) == names.end())
      throw_config_error(fmt::format("{}: suite must be one of {}, got {}{}",
                                     position(file, suite_node->source()), join(names, ", "),
                                     suite ? "'" + *suite + "'" : "a non-string",
                                     suite ? did_you_mean(*suite, names) : ""));
    for (const auto& [key, node] : *entry) {
      const std::vector<std::string> allowed = {"suite", "eps", "norm", "seed"};
      if (std::find(allowed.begin(), allowed.end(), std::string(key.str())) == allowed.end())
        throw_config_error(fmt::format(
            "{}: '{}' is not a key of a suite entry (suite, eps, norm, seed){}; to tune an "
            "attack, list attack tables instead of a suite",
            position(file, key.source()), std::string(key.str()),
            did_you_mean(std::string(key.str()), allowed)));
    }
    const auto eps = entry->get("eps") ? entry->get("eps")->value<double>() : std::nullopt;
    if (!eps || *eps < 0)
      throw_config_error(fmt::format(
          "{}: suite '{}' needs the threat model's radius: eps = 0.1 (a number >= 0, in [0,1] "
          "pixel units)",
          where, *suite));
    const std::string norm =
        entry->get("norm") ? entry->get("norm")->value_or(std::string()) : "linf";
    if (norm != "linf" && norm != "l2")
      throw_config_error(fmt::format("{}: norm must be \"linf\" or \"l2\", got '{}'", where, norm));
    const int64_t seed = entry->get("seed") ? entry->get("seed")->value_or(int64_t{-1}) : 0;
    if (seed < 0)
      throw_config_error(fmt::format("{}: seed must be an integer >= 0", where));
    auto tables = suite_tables(*suite, *eps, norm, seed);
    evals->erase(evals->begin() + static_cast<std::ptrdiff_t>(i));
    for (auto& table : tables)
      evals->insert(evals->begin() + static_cast<std::ptrdiff_t>(i++), std::move(table));
  }
}

}  // namespace ardkit
