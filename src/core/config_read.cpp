// Reading configuration: TOML job files and `--set section.key=VALUE` overrides applied
// through the schema (core/config_schema.h), each value checked for its type, range and
// choices, errors naming the file and line or the --set; and load_config, the layering
// defaults <- job file <- --set.
#include <toml++/toml.h>

#include <cmath>
#include <functional>
#include <limits>
#include <sstream>

#include "config_schema.h"
#include "scorch/core/error.h"

namespace scorch {

using config_schema::Field;
using config_schema::FieldPtr;
using config_schema::printable;
using config_schema::schema;
using config_schema::valid_utf8;

namespace {

std::string type_name(const FieldPtr& p) {
  struct V {
    std::string operator()(int64_t*) const { return "an integer"; }
    std::string operator()(double*) const { return "a number"; }
    std::string operator()(bool*) const { return "a boolean"; }
    std::string operator()(std::string*) const { return "a string"; }
    std::string operator()(std::vector<int64_t>*) const { return "an array of integers"; }
    std::string operator()(std::vector<double>*) const { return "an array of numbers"; }
    std::string operator()(std::vector<std::vector<double>>*) const { return "an array of arrays of numbers"; }
  };
  return std::visit(V{}, p);
}

std::string node_type_name(const toml::node& n) {
  std::ostringstream os;
  os << n.type();
  return os.str();
}

std::string where(const toml::node& n, const std::string& source) {
  const auto& s = n.source();
  if (s.begin.line > 0) return fmt::format("{}:{}", source, s.begin.line);
  return source;
}

std::string format_number(double v) {
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
}

void check_range(const Field& f, double v, const std::string& at) {
  bool ok = (f.lo_open ? v > f.lo : v >= f.lo) && (f.hi_open ? v < f.hi : v <= f.hi);
  if (!ok) {
    std::string lo = std::isinf(f.lo) ? "" : fmt::format("{} {}", f.lo_open ? ">" : ">=", format_number(f.lo));
    std::string hi = std::isinf(f.hi) ? "" : fmt::format("{} {}", f.hi_open ? "<" : "<=", format_number(f.hi));
    SCORCH_THROW("{}: value {} of '{}' is out of range: it must be {}{}{}", at, format_number(v), f.key, lo,
                 (!lo.empty() && !hi.empty()) ? " and " : "", hi);
  }
}

// Sets one field from a TOML node, checking type and range. `at` names the place.
void set_field(Field& f, const toml::node& n, const std::string& at) {
  auto wrong_type = [&]() {
    SCORCH_THROW("{}: '{}' must be {}, got {} ({})", at, f.key, type_name(f.ptr), node_type_name(n),
                 f.help);
  };
  std::visit(
      [&](auto* p) {
        using T = std::remove_pointer_t<decltype(p)>;
        if constexpr (std::is_same_v<T, int64_t>) {
          if (!n.is_integer()) wrong_type();
          int64_t v = n.as_integer()->get();
          check_range(f, static_cast<double>(v), at);
          *p = v;
        } else if constexpr (std::is_same_v<T, double>) {
          if (!n.is_number()) wrong_type();
          double v = n.is_integer() ? static_cast<double>(n.as_integer()->get()) : n.as_floating_point()->get();
          if (!std::isfinite(v)) SCORCH_THROW("{}: '{}' must be finite, got {}", at, f.key, v);
          check_range(f, v, at);
          *p = v;
        } else if constexpr (std::is_same_v<T, bool>) {
          if (!n.is_boolean()) wrong_type();
          *p = n.as_boolean()->get();
        } else if constexpr (std::is_same_v<T, std::string>) {
          if (f.integer_text && n.is_integer()) {
            *p = std::to_string(n.as_integer()->get());
            return;
          }
          if (!n.is_string()) wrong_type();
          std::string v = n.as_string()->get();
          if (!f.choices.empty() && std::find(f.choices.begin(), f.choices.end(), v) == f.choices.end()) {
            std::string list;
            for (const auto& c : f.choices) list += (list.empty() ? "" : ", ") + c;
            SCORCH_THROW("{}: '{}' = \"{}\" is not one of: {}", at, f.key, v, list);
          }
          *p = v;
        } else if constexpr (std::is_same_v<T, std::vector<double>>) {
          if (!n.is_array()) wrong_type();
          std::vector<double> out;
          for (const auto& e : *n.as_array()) {
            if (!e.is_number()) wrong_type();
            double v = e.is_integer() ? static_cast<double>(e.as_integer()->get()) : e.as_floating_point()->get();
            check_range(f, v, at);
            out.push_back(v);
          }
          *p = std::move(out);
        } else if constexpr (std::is_same_v<T, std::vector<std::vector<double>>>) {
          if (!n.is_array()) wrong_type();
          std::vector<std::vector<double>> out;
          for (const auto& row : *n.as_array()) {
            if (!row.is_array()) wrong_type();
            std::vector<double> r;
            for (const auto& e : *row.as_array()) {
              if (!e.is_number()) wrong_type();
              r.push_back(e.is_integer() ? static_cast<double>(e.as_integer()->get()) : e.as_floating_point()->get());
            }
            out.push_back(std::move(r));
          }
          *p = std::move(out);
        } else {
          if (!n.is_array()) wrong_type();
          std::vector<int64_t> out;
          for (const auto& e : *n.as_array()) {
            if (!e.is_integer()) wrong_type();
            int64_t v = e.as_integer()->get();
            check_range(f, static_cast<double>(v), at);
            out.push_back(v);
          }
          *p = std::move(out);
        }
      },
      f.ptr);
}

Field* find(std::vector<Field>& fields, const std::string& key) {
  for (auto& f : fields)
    if (f.key == key) return &f;
  return nullptr;
}

[[noreturn]] void unknown_key(std::vector<Field>& fields, const std::string& key, const std::string& at) {
  std::string section = key.substr(0, key.find('.'));
  std::string known;
  for (const auto& f : fields) {
    if (f.key.rfind(section + ".", 0) == 0) known += (known.empty() ? "" : ", ") + f.key;
  }
  if (known.empty()) {
    for (const auto& f : fields) {
      std::string s = f.key.substr(0, f.key.find('.'));
      const std::string sec = fmt::format("[{}]", s);  // (fmt: GCC 12 warns falsely on "lit" + string&& in C++20)
      if (known.find(sec) == std::string::npos) known += (known.empty() ? "" : " ") + sec;
    }
    SCORCH_THROW("{}: unknown key '{}' (sections: {})", at, key, known);
  }
  SCORCH_THROW("{}: unknown key '{}' (known keys: {})", at, key, known);
}

void apply_table(Config& cfg, const toml::table& tbl, const std::string& prefix, const std::string& source,
                 std::vector<Field>& fields) {
  for (const auto& [k, node] : tbl) {
    std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (node.is_table() && !find(fields, key)) {
      bool is_section = std::any_of(fields.begin(), fields.end(),
                                    [&](const Field& f) { return f.key.rfind(key + ".", 0) == 0; });
      if (!is_section) unknown_key(fields, key, where(node, source));
      apply_table(cfg, *node.as_table(), key, source, fields);
      continue;
    }
    Field* f = find(fields, key);
    if (!f) unknown_key(fields, key, where(node, source));
    set_field(*f, node, where(node, source));
  }
}

}  // namespace

namespace config_schema {

// Well-formed UTF-8 (no overlong forms, surrogates or code points above U+10FFFF).
bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) {
      n = 1, cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2, cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;
    for (size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc >> 6) != 0x2) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
      return false;
    i += n + 1;
  }
  return true;
}

// `s` with control characters (and every byte >= 0x80 if it is not valid UTF-8) as \xNN:
// safe in a TOML comment and in a message.
std::string printable(const std::string& s) {
  const bool utf8 = valid_utf8(s);
  std::string out;
  for (unsigned char ch : s) {
    if (ch < 0x20 || ch == 0x7f || (!utf8 && ch >= 0x80)) {
      out += fmt::format("\\x{:02x}", static_cast<int>(ch));
    } else {
      out += static_cast<char>(ch);
    }
  }
  return out;
}

}  // namespace config_schema

void apply_toml_string(Config& cfg, const std::string& text, const std::string& source) {
  toml::table tbl;
  try {
    tbl = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    SCORCH_THROW("{}:{}: TOML syntax error: {}", source, e.source().begin.line, e.description());
  }
  auto fields = schema(cfg);
  apply_table(cfg, tbl, "", source, fields);
  cfg.sources.push_back(source);
}

void apply_toml_file(Config& cfg, const std::string& path) {
  toml::table tbl;
  try {
    tbl = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    if (e.source().begin.line == 0) SCORCH_THROW("cannot read job file '{}': {}", path, e.description());
    SCORCH_THROW("{}:{}: TOML syntax error: {}", path, e.source().begin.line, e.description());
  }
  auto fields = schema(cfg);
  apply_table(cfg, tbl, "", path, fields);
  cfg.sources.push_back(path);
}

void apply_override(Config& cfg, const std::string& assignment) {
  // A value goes into config.toml and every checkpoint: one line of valid UTF-8, one value.
  SCORCH_CHECK(valid_utf8(assignment), "--set {}: not valid UTF-8", printable(assignment));
  for (unsigned char ch : assignment) {
    SCORCH_CHECK(ch >= 0x20 && ch != 0x7f,
                 "--set {}: control character \\x{:02x} (a newline or tab?) in the value: one --set takes one key and "
                 "one value", printable(assignment), static_cast<int>(ch));
  }
  auto eq = assignment.find('=');
  SCORCH_CHECK(eq != std::string::npos && eq > 0, "--set '{}': expected section.key=value", assignment);
  std::string key = assignment.substr(0, eq);
  std::string value = assignment.substr(eq + 1);
  auto fields = schema(cfg);
  Field* f = find(fields, key);
  std::string at = fmt::format("--set {}", assignment);
  if (!f) unknown_key(fields, key, at);
  toml::table tbl;
  try {
    tbl = toml::parse("v = " + value);
  } catch (const toml::parse_error& e) {
    // A bare word (--set training.sde=vesde) is taken as a string; anything else must parse.
    SCORCH_CHECK(std::holds_alternative<std::string*>(f->ptr), "{}: '{}' is not {} ({})", at, value,
                 type_name(f->ptr), e.description());
    tbl = toml::table{{"v", value}};
  }
  SCORCH_CHECK(tbl.size() == 1, "{}: the value holds more than one TOML key; one --set sets one key", at);
  set_field(*f, *tbl.get("v"), at);
  cfg.sources.push_back("--set " + assignment);
}

Config load_config(const std::string& job, const std::vector<std::string>& overrides) {
  Config cfg;
  cfg.sources.push_back("defaults");
  if (!job.empty()) apply_toml_file(cfg, job);
  for (const auto& o : overrides) apply_override(cfg, o);
  derive(cfg);
  validate(cfg);
  return cfg;
}

}  // namespace scorch
