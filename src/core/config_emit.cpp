// Writing configuration back: the resolved Config as TOML (every key, defaults included,
// in schema order, each value in a form that reads back to the same value), the fixed keys
// two configs disagree on, and the list of keys with their help for `scorch info --keys`.
#include <toml++/toml.h>

#include <cmath>
#include <map>
#include <sstream>

#include "config_schema.h"
#include "scorch/core/error.h"

namespace scorch {

using config_schema::Field;
using config_schema::printable;
using config_schema::schema;

namespace {

// A double in its shortest form that reads back to the same value (0.1, not
// 0.10000000000000001; fmt's "{}" is round-trip exact), always a TOML float.
std::string toml_double(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  std::string s = fmt::format("{}", v);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

// A TOML basic string, escaped by toml++.
std::string toml_string(const std::string& v) {
  std::ostringstream os;
  os << toml::value<std::string>(v);
  return os.str();
}

template <class T>
std::string toml_scalar(const T& v) {
  if constexpr (std::is_same_v<T, double>) {
    return toml_double(v);
  } else if constexpr (std::is_same_v<T, bool>) {
    return v ? "true" : "false";
  } else if constexpr (std::is_same_v<T, std::string>) {
    return toml_string(v);
  } else {
    return fmt::format("{}", v);
  }
}

template <class T>
std::string toml_array(const std::vector<T>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += ", ";
    if constexpr (std::is_same_v<T, std::vector<double>>) {
      s += toml_array(v[i]);
    } else {
      s += toml_scalar(v[i]);
    }
  }
  return s + "]";
}

}  // namespace

// A field's value as TOML text ("vpsde" quoted, [1, 2], 0.01).
std::string value_text(const Field& f) {
  return std::visit(
      [](auto* p) -> std::string {
        using T = std::remove_pointer_t<decltype(p)>;
        if constexpr (std::is_same_v<T, std::vector<int64_t>> || std::is_same_v<T, std::vector<double>> ||
                      std::is_same_v<T, std::vector<std::vector<double>>>) {
          return toml_array(*p);
        } else {
          return toml_scalar(*p);
        }
      },
      f.ptr);
}

std::vector<KeyChange> fixed_key_changes(const Config& before_in, const Config& after_in) {
  Config before = before_in, after = after_in;
  auto a = schema(before), b = schema(after);
  std::vector<KeyChange> out;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!a[i].fixed) continue;
    // N is the training discretisation only for the discrete objectives (SMLD, DDPM); a
    // continuous-time network never saw it, and samplers may take another.
    if (a[i].key == "model.num_scales" && before.training.continuous && after.training.continuous) continue;
    auto x = value_text(a[i]), y = value_text(b[i]);
    if (x != y) out.push_back({a[i].key, x, y});
  }
  return out;
}

std::string to_toml(const Config& cfg_in) {
  Config cfg = cfg_in;
  auto fields = schema(cfg);
  // Root keys first, then one table per section in schema order; each key as "key = value".
  std::vector<std::string> order;
  std::map<std::string, std::string> body;
  for (const auto& f : fields) {
    std::string sec, key = f.key;
    auto dot = key.find('.');
    if (dot != std::string::npos) {
      sec = key.substr(0, dot);
      key = key.substr(dot + 1);
    }
    if (!body.count(sec)) order.push_back(sec);
    body[sec] += key + " = " + value_text(f) + "\n";
  }
  std::ostringstream os;
  os << "# scorch resolved configuration (every key; defaults included)\n";
  for (const auto& s : cfg.sources) os << "# layer: " << printable(s) << "\n";
  if (body.count("")) os << body.at("");
  for (const auto& sec : order) {
    if (!sec.empty()) os << "\n[" << sec << "]\n" << body.at(sec);
  }
  // What is written must read back: never emit a file that poisons later runs.
  try {
    (void)toml::parse(os.str());
  } catch (const toml::parse_error& e) {
    SCORCH_THROW("internal error: the resolved configuration does not parse back ({}, line {})", e.description(),
                 e.source().begin.line);
  }
  return os.str();
}

std::vector<std::pair<std::string, std::string>> config_keys() {
  Config c;
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& f : schema(c)) out.emplace_back(f.key, f.help);
  return out;
}

}  // namespace scorch
