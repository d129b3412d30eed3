// The configuration schema, private to core/config_*.cpp: every key bound to its Config
// member with its type, help, range, choices and whether it is fixed for a trained network.
// core/config_schema.cpp declares the keys and checks values across keys; config_read.cpp
// reads TOML files and `--set` through the schema; config_emit.cpp writes it back as TOML.
#pragma once
#include <cstdint>
#include <limits>
#include <string>
#include <variant>
#include <vector>

#include "scorch/core/config.h"

namespace scorch::config_schema {

using FieldPtr = std::variant<int64_t*, double*, bool*, std::string*, std::vector<int64_t>*, std::vector<double>*,
                               std::vector<std::vector<double>>*>;

struct Field {
  std::string key;
  FieldPtr ptr;
  std::string help;
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  bool lo_open = false;
  bool hi_open = false;
  std::vector<std::string> choices{};
  // Changes what a trained network means (its shape, its SDE, its objective, its data
  // scaling): refused when a run resumes from a checkpoint that holds another value.
  bool fixed = false;
  // A string key that also takes a TOML integer, stored as its decimal text (class_label = 7).
  bool integer_text = false;

  Field& fix() { fixed = true; return *this; }
  Field& or_integer() { integer_text = true; return *this; }
  Field& min(double v, bool open = false) { lo = v; lo_open = open; return *this; }
  Field& max(double v, bool open = false) { hi = v; hi_open = open; return *this; }
  Field& one_of(std::vector<std::string> c) { choices = std::move(c); return *this; }
};

// Every key of `c`, bound to c's members, in declaration order (the order of config.toml).
std::vector<Field> schema(Config& c);

// Well-formed UTF-8 (no overlong forms, surrogates or code points above U+10FFFF).
bool valid_utf8(const std::string& s);
// `s` with control characters (and every byte >= 0x80 if it is not valid UTF-8) as \xNN:
// safe in a TOML comment and in a message.
std::string printable(const std::string& s);

}  // namespace scorch::config_schema
