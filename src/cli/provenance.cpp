// eval_log.csv rows and JSON records of evaluation results (see cli/provenance.h).
#include "scorch/cli/provenance.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "scorch/core/error.h"
#include "scorch/core/hash.h"
#include "scorch/core/host.h"
#include "scorch/core/log.h"
#include "scorch/core/version.h"
#include "scorch/io/files.h"
#include "scorch/io/tensorboard.h"

namespace fs = std::filesystem;

namespace scorch::cli {

namespace {

constexpr const char* kHeader =
    "unix_time,step,metric,value,standard_error,n,nfe_mean,nfe_min,nfe_max,checkpoint,checkpoint_sha256,weights,"
    "sampler,seeds,feature_net,feature_net_sha256,feature_net_interface,reference,reference_sha256,reference_n,data,"
    "data_sha256,scorch_version,commit,record,settings";
// The layout before provenance columns (scorch <= 0.13): its rows are kept, moved across.
constexpr const char* kOldHeader = "unix_time,step,metric,value,standard_error,nfe,settings";

// A CSV field: quoted, quotes doubled, line breaks as "; " (one row per result).
std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size(); ++i) {
    const char ch = s[i];
    if (ch == '"') {
      out += "\"\"";
    } else if (ch == '\n') {
      if (i + 1 < s.size()) out += "; ";
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::string number(double v, const char* f) { return std::isfinite(v) ? fmt::format(fmt::runtime(f), v) : std::string(); }

std::string commit() {
  for (const auto& [k, v] : build_info())
    if (k == "commit") return v;
  return "unknown";
}

// An old row "t,step,metric,value,se,nfe,"settings"" in the new columns.
std::string migrated(const std::string& row) {
  std::vector<std::string> f;
  size_t pos = 0;
  for (int i = 0; i < 6; ++i) {
    const size_t c = row.find(',', pos);
    if (c == std::string::npos) return std::string();
    f.push_back(row.substr(pos, c - pos));
    pos = c + 1;
  }
  const std::string settings = row.substr(pos);
  // unix_time..standard_error, n, nfe_mean, nfe_min, nfe_max, 16 empty columns, settings.
  return fmt::format("{},{},{},{},{},,{},,,,,,,,,,,,,,,,,,,{}", f[0], f[1], f[2], f[3], f[4], f[5], settings);
}

// "key = value" lines as a JSON object (strings), or the text itself if it has no such lines.
nlohmann::json settings_json(const std::string& text) {
  nlohmann::json o = nlohmann::json::object();
  size_t pos = 0;
  while (pos < text.size()) {
    size_t e = text.find('\n', pos);
    if (e == std::string::npos) e = text.size();
    const std::string line = text.substr(pos, e - pos);
    const size_t eq = line.find(" = ");
    if (eq == std::string::npos) return text;
    o[line.substr(0, eq)] = line.substr(eq + 3);
    pos = e + 1;
  }
  return o;
}

nlohmann::json or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }
nlohmann::json or_null(const std::string& s) { return s.empty() ? nlohmann::json() : nlohmann::json(s); }

}  // namespace

namespace {

// The checksum of a record's JSON without its "checksum" key.
std::string record_checksum(nlohmann::json j) {
  j.erase("checksum");
  return sha256_hex(j.dump());
}

// "" if `record` may be reused; otherwise why not.
std::string record_problem(const std::string& record, const std::string& key, const std::string& value,
                           const std::string& identity) {
  nlohmann::json j;
  try {
    std::ifstream in(record);
    j = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    return fmt::format("it does not parse ({})", message_of(e));
  }
  if (!j.is_object() || !j.contains("results")) return "it holds no results";
  if (!j.contains("checksum")) return "it carries no checksum (written by an older scorch, or edited)";
  if (!j["checksum"].is_string() || j["checksum"].get<std::string>() != record_checksum(j)) {
    return "its checksum does not match its content: it was changed after scorch wrote it";
  }
  if (!identity.empty()) {
    const auto& c = j.value("checkpoint", nlohmann::json::object());
    const std::string had = c.is_object() && c.contains("identity") && c["identity"].is_string()
                                ? c["identity"].get<std::string>()
                                : std::string();
    if (had != identity) {
      return fmt::format("it was computed from another checkpoint (identity {}, this one's {})",
                         had.empty() ? std::string("unrecorded") : had.substr(0, 16), identity.substr(0, 16));
    }
  }
  if (!key.empty() && !(j.contains("settings") && j["settings"].is_object() &&
                        j["settings"].value(key, std::string()) == value)) {
    return fmt::format("its setting '{}' is not '{}'", key, value);
  }
  return "";
}

}  // namespace

bool record_exists(dist::Communicator& comm, const std::string& record, const std::string& key,
                   const std::string& value, const std::string& identity) {
  auto flag = torch::zeros({1}, torch::kInt64);
  if (comm.rank() == 0 && fs::is_regular_file(record)) {
    const std::string why = record_problem(record, key, value, identity);
    if (why.empty()) {
      flag[0] = 1;
    } else {
      spdlog::warn("{}: not reused, {}: evaluating again (the record is rewritten)", record, why);
    }
  }
  comm.allreduce_sum(flag);
  return flag[0].item<int64_t>() > 0;
}

void verify_record(const std::string& record) {
  const std::string why = record_problem(record, "", "", "");
  SCORCH_CHECK(why.empty(), "{}: {}", record, why);
}

std::string weights_description(bool has_ema, double decay, int64_t updates) {
  return has_ema ? fmt::format("EMA (decay {}, {} updates)", decay, updates)
                 : std::string("raw parameters (the checkpoint holds no EMA)");
}

void log_results(const std::string& workdir, int64_t step, const std::vector<Result>& results, const Provenance& p,
                 const std::string& record, const std::string& sets_json) {
  const double now = unix_seconds();
  const std::string version = scorch_version(), sha = commit();
  // The JSON record first: a row always names a record that exists.
  nlohmann::json res = nlohmann::json::object();
  for (const auto& r : results) {
    res[r.metric] = {{"value", r.value}, {"standard_error", or_null(r.se)}};
    if (r.metric == "fid" && p.n < 50000) {
      res[r.metric]["note"] = fmt::format("from {} samples, not 50,000: biased upwards, not comparable to a published "
                                          "FID-50k", p.n);
    }
  }
  nlohmann::json build = nlohmann::json::object();
  for (const auto& [k, v] : build_info()) build[k] = v;
  nlohmann::json j{
      {"results", res},
      {"step", step >= 0 ? nlohmann::json(step) : nlohmann::json()},
      {"checkpoint",
       {{"file", or_null(p.checkpoint)},
        {"sha256", or_null(p.checkpoint_sha256)},
        {"identity", or_null(p.checkpoint_identity)},
        {"weights", or_null(p.weights)}}},
      {"sampler", p.sampler.empty() ? nlohmann::json() : settings_json(p.sampler)},
      {"nfe", {{"mean", or_null(p.nfe_mean)}, {"min", or_null(p.nfe_min)}, {"max", or_null(p.nfe_max)}}},
      {"n", p.n},
      {"seeds", or_null(p.seeds)},
      {"feature_net",
       p.feature_net.empty() ? nlohmann::json()
                             : nlohmann::json{{"file", p.feature_net}, {"sha256", p.feature_net_sha256},
                                              {"interface", p.feature_net_interface}}},
      {"reference",
       p.reference.empty() ? nlohmann::json()
                           : nlohmann::json{{"file", p.reference}, {"sha256", p.reference_sha256},
                                            {"n", p.reference_n >= 0 ? nlohmann::json(p.reference_n) : nlohmann::json()}}},
      {"data", p.data.empty() ? nlohmann::json() : nlohmann::json{{"file", p.data}, {"sha256", p.data_sha256}}},
      {"settings", p.settings.empty() ? nlohmann::json() : settings_json(p.settings)},
      {"scorch", build},
      {"host", host_name()},
      {"time", local_time_iso8601()},
      {"unix_time", now}};
  if (!sets_json.empty()) j["seed_sets"] = nlohmann::json::parse(sets_json);
  j["checksum"] = record_checksum(j);
  fs::create_directories(fs::path(record).parent_path());
  io::write_text_atomically(record, j.dump(2) + "\n");

  const std::string path = workdir + "/eval_log.csv";
  std::string text;
  if (fs::exists(path) && !fs::is_symlink(path)) {
    std::ifstream in(path);
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  const std::string header = std::string(kHeader) + "\n";
  if (text.rfind(std::string(kOldHeader) + "\n", 0) == 0) {
    std::string moved = header;
    size_t pos = std::string(kOldHeader).size() + 1;
    while (pos < text.size()) {
      size_t e = text.find('\n', pos);
      if (e == std::string::npos) e = text.size();
      const std::string row = migrated(text.substr(pos, e - pos));
      if (!row.empty()) moved += row + "\n";
      pos = e + 1;
    }
    text = moved;
  }
  if (text.rfind(header, 0) != 0) text = header;
  if (text.back() != '\n') text += '\n';
  const std::string ref_n = p.reference_n >= 0 ? std::to_string(p.reference_n) : std::string();
  for (const auto& r : results) {
    text += fmt::format("{:.3f},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n", now,
                        step >= 0 ? std::to_string(step) : std::string(), r.metric, number(r.value, "{:.9g}"),
                        number(r.se, "{:.6g}"), p.n, number(p.nfe_mean, "{:.1f}"), number(p.nfe_min, "{:.0f}"),
                        number(p.nfe_max, "{:.0f}"), quoted(p.checkpoint), p.checkpoint_sha256, quoted(p.weights),
                        quoted(p.sampler), quoted(p.seeds), quoted(p.feature_net), p.feature_net_sha256,
                        quoted(p.feature_net_interface), quoted(p.reference), p.reference_sha256, ref_n, quoted(p.data),
                        p.data_sha256, version, sha, quoted(record), quoted(p.settings));
  }
  fs::create_directories(workdir);
  io::write_text_atomically(path, text);
  if (step >= 0) {
    std::vector<std::pair<std::string, double>> scalars;
    for (const auto& r : results) scalars.emplace_back("eval/" + r.metric, r.value);
    io::EventWriter(workdir + "/tensorboard").scalars(step, now, scalars);
  }
}

}  // namespace scorch::cli
