// Power-function EMA snapshots (see io/ema_snapshots.h).
#include "scorch/io/ema_snapshots.h"

#include <algorithm>
#include <filesystem>
#include <regex>

#include "scorch/core/error.h"
#include "scorch/core/version.h"

namespace fs = std::filesystem;

namespace scorch::io {

namespace {
constexpr const char* kSnapshotFormat = "scorch-ema-snapshot";
constexpr int64_t kSnapshotVersion = 2;  // 2 added the lineage; 1 still read
}  // namespace

void write_power_ema(hid_t f, const std::string& group, const std::vector<PowerEmaState>& profiles) {
  for (size_t k = 0; k < profiles.size(); ++k) {
    const auto& p = profiles[k];
    const std::string g = fmt::format("{}/{}", group, k);
    h5::write_tensors(f, g, p.tensors);
    h5::Handle h(H5Gopen2(f, g.c_str(), H5P_DEFAULT), H5Gclose);
    h5::set_attr(h.id(), "sigma_rel", p.sigma_rel);
    h5::set_attr(h.id(), "gamma", p.gamma);
    h5::set_attr(h.id(), "num_updates", p.num_updates);
  }
}

std::vector<PowerEmaState> read_power_ema(hid_t f, const std::string& group, const std::string& path, bool tensors) {
  std::vector<PowerEmaState> out;
  if (!h5::exists(f, group)) return out;
  for (size_t k = 0;; ++k) {
    const std::string g = fmt::format("{}/{}", group, k);
    if (!h5::exists(f, g)) break;
    PowerEmaState p;
    if (tensors) p.tensors = h5::read_tensors(f, g, path);
    h5::Handle h(H5Gopen2(f, g.c_str(), H5P_DEFAULT), H5Gclose);
    p.sigma_rel = h5::get_attr_double(h.id(), "sigma_rel", path);
    p.gamma = h5::get_attr_double(h.id(), "gamma", path);
    p.num_updates = h5::get_attr_int(h.id(), "num_updates", path);
    out.push_back(std::move(p));
  }
  SCORCH_CHECK(out.size() == h5::list(f, group).size(), "{}: /{} holds groups other than 0..{}", path, group,
               out.size() == 0 ? 0 : out.size() - 1);
  return out;
}

std::string ema_snapshot_path(const std::string& workdir, int64_t step) {
  return fmt::format("{}/ema/snapshot_{:09d}.h5", workdir, step);
}

void save_ema_snapshot(const std::string& path, const EmaSnapshot& s) {
  check_lineage(s.lineage, fmt::format("EMA snapshot '{}' of step {}", path, s.step));
  for (size_t k = 0; k < s.profiles.size(); ++k) {
    for (const auto& [name, t] : s.profiles[k].tensors) {
      SCORCH_CHECK(!t.is_floating_point() || torch::isfinite(t).all().item<bool>(),
                   "refusing to write EMA snapshot '{}' of step {}: profile {} (sigma_rel {}) tensor '{}' holds NaN or "
                   "Inf", path, s.step, k, s.profiles[k].sigma_rel, name);
    }
  }
  fs::create_directories(fs::path(path).parent_path());
  h5::write_atomically(path, [&](hid_t f) {
    h5::set_attr(f, "format", std::string(kSnapshotFormat));
    h5::set_attr(f, "version", kSnapshotVersion);
    h5::set_attr(f, "step", s.step);
    h5::set_attr(f, "images", s.images);
    h5::set_attr(f, "lineage", s.lineage);
    for (const auto& [k, v] : build_info()) h5::set_attr(f, "build_" + k, v);
    h5::write_checked_string(f, "config", s.config_toml);
    h5::write_tensors(f, "model/params", s.params);
    h5::write_tensors(f, "model/buffers", s.buffers);
    write_power_ema(f, "power_ema", s.profiles);
  });
}

EmaSnapshot load_ema_snapshot(const std::string& path, bool tensors) {
  auto f = h5::File::open_read(path);
  SCORCH_CHECK(h5::has_attr(f.id(), "format") && h5::get_attr_string(f.id(), "format", path) == kSnapshotFormat,
               "{} is not a scorch EMA snapshot (no format=\"{}\" attribute)", path, kSnapshotFormat);
  const int64_t version = h5::get_attr_int(f.id(), "version", path);
  SCORCH_CHECK(version >= 1 && version <= kSnapshotVersion,
               "{}: EMA snapshot version {} is not supported (this scorch reads 1 to {})", path, version,
               kSnapshotVersion);
  EmaSnapshot s;
  s.source = path;
  s.step = h5::get_attr_int(f.id(), "step", path);
  s.images = h5::get_attr_int(f.id(), "images", path);
  if (version >= 2) {
    s.lineage = h5::get_attr_string(f.id(), "lineage", path);
    check_lineage(s.lineage, path + ": attribute 'lineage'");
  }
  s.config_toml = h5::read_checked_string(f.id(), "config", path, /*crc_required=*/true);
  if (tensors) {
    s.params = h5::read_tensors(f.id(), "model/params", path);
    s.buffers = h5::read_tensors(f.id(), "model/buffers", path);
  }
  s.profiles = read_power_ema(f.id(), "power_ema", path, tensors);
  SCORCH_CHECK(!s.profiles.empty(), "{}: the EMA snapshot holds no profile", path);
  return s;
}

std::vector<std::pair<int64_t, std::string>> list_ema_snapshots(const std::string& workdir) {
  std::vector<std::pair<int64_t, std::string>> out;
  const fs::path dir = fs::path(workdir) / "ema";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  static const std::regex re(R"(snapshot_(\d+)\.h5)");
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::smatch m;
    const std::string name = e.path().filename().string();
    if (std::regex_match(name, m, re)) out.emplace_back(std::stoll(m[1]), e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> prune_ema_snapshots(const std::string& workdir, int64_t keep) {
  std::vector<std::string> removed;
  if (keep <= 0) return removed;
  const auto all = list_ema_snapshots(workdir);
  for (size_t i = 0; i + static_cast<size_t>(keep) < all.size(); ++i) {
    std::error_code ec;
    if (fs::remove(all[i].second, ec)) removed.push_back(all[i].second);
  }
  return removed;
}

}  // namespace scorch::io
