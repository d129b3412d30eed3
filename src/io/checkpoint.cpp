// Checkpoint files: TrainState <-> HDF5, with an atomic commit on write and a full,
// checksum-verified read before the caller touches any model.
#include "scorch/io/checkpoint.h"

#include "scorch/core/version.h"

#include <algorithm>
#include <filesystem>
#include <regex>
#include <sstream>


#include "scorch/core/error.h"
#include "scorch/core/hash.h"
#include "scorch/core/log.h"
#include "scorch/io/ema_snapshots.h"
#include "scorch/io/hdf5.h"

namespace fs = std::filesystem;

namespace scorch::io {

namespace {

TrainState read_header(const h5::File& f, const std::string& path) {
  SCORCH_CHECK(h5::has_attr(f.id(), "format") && h5::get_attr_string(f.id(), "format", path) == kCheckpointFormat,
               "{} is not a scorch checkpoint (no format=\"{}\" attribute)", path, kCheckpointFormat);
  int64_t version = h5::get_attr_int(f.id(), "version", path);
  SCORCH_CHECK(version >= kOldestCheckpointVersion && version <= kCheckpointVersion,
               "{}: checkpoint version {} is not supported (this scorch reads versions {} to {})", path, version,
               kOldestCheckpointVersion, kCheckpointVersion);
  TrainState st;
  st.step = h5::get_attr_int(f.id(), "step", path);
  st.world_size = h5::get_attr_int(f.id(), "world_size", path);
  st.epoch = h5::get_attr_int(f.id(), "epoch", path);
  st.batch_in_epoch = h5::get_attr_int(f.id(), "batch_in_epoch", path);
  // Version 3 added the CRC-32 of /config; versions 1 and 2 load unchecked.
  st.config_toml = h5::read_checked_string(f.id(), "config", path, /*crc_required=*/version >= 3);
  st.source = path;
  if (version >= 4) {
    st.identity = h5::get_attr_string(f.id(), "identity", path);
    SCORCH_CHECK(st.identity.size() == 64 && st.identity.find_first_not_of("0123456789abcdef") == std::string::npos,
                 "{}: attribute 'identity' is not a SHA-256 (64 hex digits): '{}'", path, st.identity);
    st.lineage = h5::get_attr_string(f.id(), "lineage", path);
    check_lineage(st.lineage, path + ": attribute 'lineage'");
  }
  return st;
}

// Length-prefixed pieces, so that no two different states feed the hash the same bytes.
void hash_text(Sha256& h, const std::string& s) {
  h.add(fmt::format("{}:", s.size()));
  h.add(s);
}

void hash_tensor(Sha256& h, const std::string& name, const torch::Tensor& t) {
  hash_text(h, name);
  if (!t.defined()) {
    hash_text(h, "undefined");
    return;
  }
  const auto c = t.cpu().contiguous();
  hash_text(h, fmt::format("{} {}", c10::toString(c.scalar_type()), c10::str(c.sizes())));
  hash_text(h, std::to_string(c.nbytes()));
  if (c.nbytes() > 0) h.add(c.data_ptr(), c.nbytes());
}

void hash_map(Sha256& h, const std::string& group, const TensorMap& m) {
  hash_text(h, fmt::format("{} {}", group, m.size()));
  for (const auto& [name, t] : m) hash_tensor(h, name, t);
}

}  // namespace

std::string first_nonfinite(const TrainState& st) {
  for (const auto& [group, m] : {std::pair{"model/params", &st.params}, std::pair{"model/buffers", &st.buffers},
                                 std::pair{"ema", &st.ema}, std::pair{"optimizer/exp_avg", &st.exp_avg},
                                 std::pair{"optimizer/exp_avg_sq", &st.exp_avg_sq}}) {
    for (const auto& [name, t] : *m) {
      if (t.is_floating_point() && !torch::isfinite(t).all().item<bool>()) return fmt::format("{}/{}", group, name);
    }
  }
  for (size_t k = 0; k < st.power_ema.size(); ++k) {
    for (const auto& [name, t] : st.power_ema[k].tensors) {
      if (t.is_floating_point() && !torch::isfinite(t).all().item<bool>()) return fmt::format("power_ema/{}/{}", k, name);
    }
  }
  return "";
}

std::string content_identity(const TrainState& st) {
  Sha256 h;
  hash_text(h, "scorch-checkpoint-identity 1");
  hash_text(h, fmt::format("step {} world_size {} epoch {} batch_in_epoch {}", st.step, st.world_size, st.epoch,
                           st.batch_in_epoch));
  hash_text(h, st.config_toml);
  hash_map(h, "model/params", st.params);
  hash_map(h, "model/buffers", st.buffers);
  hash_map(h, "ema", st.ema);
  hash_text(h, fmt::format("ema {:a} {} {}", st.ema_decay, st.ema_updates, st.ema_profile));
  hash_map(h, "optimizer/exp_avg", st.exp_avg);
  hash_map(h, "optimizer/exp_avg_sq", st.exp_avg_sq);
  hash_text(h, fmt::format("adam {}", st.adam_steps));
  hash_text(h, fmt::format("power_ema {}", st.power_ema.size()));
  for (const auto& p : st.power_ema) {
    hash_text(h, fmt::format("{:a} {:a} {}", p.sigma_rel, p.gamma, p.num_updates));
    hash_map(h, "power_ema", p.tensors);
  }
  hash_tensor(h, "rng/default", st.rng);
  hash_tensor(h, "rng/cuda", st.rng_cuda);
  hash_map(h, "imported", st.imported);
  return h.hex();
}

std::string checkpoint_identity(const std::string& path) {
  const auto st = load_checkpoint_header(path);
  return st.identity.empty() ? file_sha256_hex(path) : st.identity;
}

void check_lineage(const std::string& lineage, const std::string& what) {
  std::istringstream in(lineage);
  std::string seg;
  int64_t last = -1;
  while (in >> seg) {
    const auto at = seg.find('@');
    bool ok = at != std::string::npos && at > 0 && at + 1 < seg.size() &&
              seg.find_first_not_of("0123456789abcdef") == at &&
              seg.find_first_not_of("0123456789", at + 1) == std::string::npos && seg.size() - at - 1 <= 18;
    int64_t step = ok ? std::stoll(seg.substr(at + 1)) : -1;
    SCORCH_CHECK(ok && step > last,
                 "{}: '{}' is not a lineage (\"ID@STEP ...\", hex ids, steps increasing): '{}'", what, lineage, seg);
    last = step;
  }
}

std::string lineage_with_branch(const std::string& lineage, int64_t step) {
  return fmt::format("{}{}{}@{}", lineage, lineage.empty() ? "" : " ", random_hex_id(16), step);
}

std::string lineage_branch_at(const std::string& lineage, int64_t step) {
  std::istringstream in(lineage);
  std::string seg, id;
  while (in >> seg) {
    const auto at = seg.find('@');
    const int64_t from = std::stoll(seg.substr(at + 1));
    if (id.empty() || from < step) id = seg.substr(0, at);
  }
  return id;
}

void save_checkpoint(const std::string& path, const TrainState& st) {
  const auto bad = first_nonfinite(st);
  SCORCH_CHECK(bad.empty(), "refusing to write checkpoint '{}' of step {}: tensor '{}' holds NaN or Inf", path, st.step,
               bad);
  check_lineage(st.lineage, fmt::format("checkpoint '{}' of step {}", path, st.step));
  const std::string identity = content_identity(st);
  h5::write_atomically(path, [&](hid_t f) {
    h5::set_attr(f, "format", std::string(kCheckpointFormat));
    h5::set_attr(f, "version", kCheckpointVersion);
    h5::set_attr(f, "identity", identity);
    h5::set_attr(f, "lineage", st.lineage);
    h5::set_attr(f, "step", st.step);
    h5::set_attr(f, "world_size", st.world_size);
    h5::set_attr(f, "epoch", st.epoch);
    h5::set_attr(f, "batch_in_epoch", st.batch_in_epoch);
    // What wrote it (core/version.h): build_scorch, build_commit, build_libtorch, ...
    for (const auto& [k, v] : build_info()) h5::set_attr(f, "build_" + k, v);
    h5::write_checked_string(f, "config", st.config_toml);
    h5::write_tensors(f, "model/params", st.params);
    h5::write_tensors(f, "model/buffers", st.buffers);
    h5::write_tensors(f, "ema", st.ema);
    h5::write_tensors(f, "optimizer/exp_avg", st.exp_avg);
    h5::write_tensors(f, "optimizer/exp_avg_sq", st.exp_avg_sq);
    h5::Handle g(H5Gopen2(f, "ema", H5P_DEFAULT), H5Gclose);
    h5::set_attr(g.id(), "decay", st.ema_decay);
    h5::set_attr(g.id(), "num_updates", st.ema_updates);
    if (!st.ema_profile.empty()) h5::set_attr(g.id(), "ema_profile", st.ema_profile);
    write_power_ema(f, "power_ema", st.power_ema);
    h5::Handle o(H5Gopen2(f, "optimizer", H5P_DEFAULT), H5Gclose);
    h5::set_attr(o.id(), "step", st.adam_steps);
    if (st.rng.defined()) h5::write_tensor(f, "rng/default", st.rng);
    if (st.rng_cuda.defined()) h5::write_tensor(f, "rng/cuda", st.rng_cuda);
    if (!st.imported.empty()) h5::write_tensors(f, "imported", st.imported);
  });
}

TrainState load_checkpoint_header(const std::string& path) {
  auto f = h5::File::open_read(path);
  return read_header(f, path);
}

TrainState load_checkpoint(const std::string& path) {
  auto f = h5::File::open_read(path);
  TrainState st = read_header(f, path);
  for (const char* g : {"model/params", "ema", "optimizer/exp_avg", "optimizer/exp_avg_sq"}) {
    SCORCH_CHECK(h5::exists(f.id(), g), "{}: group '/{}' is missing: the checkpoint is incomplete", path, g);
  }
  st.params = h5::read_tensors(f.id(), "model/params", path);
  st.buffers = h5::read_tensors(f.id(), "model/buffers", path);
  st.ema = h5::read_tensors(f.id(), "ema", path);
  st.exp_avg = h5::read_tensors(f.id(), "optimizer/exp_avg", path);
  st.exp_avg_sq = h5::read_tensors(f.id(), "optimizer/exp_avg_sq", path);
  {
    h5::Handle g(H5Gopen2(f.id(), "ema", H5P_DEFAULT), H5Gclose);
    st.ema_decay = h5::get_attr_double(g.id(), "decay", path);
    st.ema_updates = h5::get_attr_int(g.id(), "num_updates", path);
    if (h5::has_attr(g.id(), "ema_profile")) st.ema_profile = h5::get_attr_string(g.id(), "ema_profile", path);
    h5::Handle o(H5Gopen2(f.id(), "optimizer", H5P_DEFAULT), H5Gclose);
    st.adam_steps = h5::get_attr_int(o.id(), "step", path);
  }
  if (h5::exists(f.id(), "rng/default")) st.rng = h5::read_tensor(f.id(), "rng/default", path);
  if (h5::exists(f.id(), "rng/cuda")) st.rng_cuda = h5::read_tensor(f.id(), "rng/cuda", path);
  if (h5::exists(f.id(), "imported")) st.imported = h5::read_tensors(f.id(), "imported", path);
  st.power_ema = read_power_ema(f.id(), "power_ema", path);
  const std::string content = content_identity(st);
  if (!st.identity.empty()) {  // stored (version 4; read_header checked its form)
    SCORCH_CHECK(content == st.identity, "{}: its content does not match the identity recorded when scorch wrote it "
                 "({} recorded, {} now): the file was changed afterwards (by hand or another tool); what was derived "
                 "from it would not be this file's", path, st.identity.substr(0, 16), content.substr(0, 16));
  } else {
    st.identity = file_sha256_hex(path);  // versions 1 to 3: the file's SHA-256
  }
  return st;
}

TensorMap weights(const TrainState& st, bool use_ema) {
  TensorMap w = st.params;
  if (use_ema) {
    for (const auto& [name, t] : st.ema) w[name] = t;
  }
  return w;
}

std::string checkpoint_path(const std::string& workdir, int64_t step) {
  return fmt::format("{}/checkpoints/ckpt_{:09d}.h5", workdir, step);
}

std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& workdir) {
  std::vector<std::pair<int64_t, std::string>> out;
  fs::path dir = fs::path(workdir) / "checkpoints";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  static const std::regex re(R"(ckpt_(\d+)\.h5)");
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::smatch m;
    std::string name = e.path().filename().string();
    if (std::regex_match(name, m, re)) out.emplace_back(std::stoll(m[1]), e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string latest_checkpoint(const std::string& workdir) {
  auto all = list_checkpoints(workdir);
  return all.empty() ? "" : all.back().second;
}

CheckpointProblem checkpoint_problem(const TrainState& st, const std::string& path) {
  static const std::regex re(R"(ckpt_(\d+)\.h5)");
  std::smatch m;
  const std::string name = fs::path(path).filename().string();
  if (std::regex_match(name, m, re) && std::stoll(m[1]) != st.step) {
    return {fmt::format("its name says step {} but it holds step {} (renamed or copied from another run)",
                        std::stoll(m[1]), st.step),
            ".misnamed"};
  }
  const auto bad = first_nonfinite(st);
  if (!bad.empty()) {
    return {fmt::format("tensor '{}' holds NaN or Inf (the run had diverged when it was written)", bad), ".nonfinite"};
  }
  return {};
}

Resumable newest_loadable_checkpoint(const std::string& workdir) {
  Resumable r;
  auto all = list_checkpoints(workdir);
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    std::string why, suffix = ".corrupt";
    try {
      r.state = load_checkpoint(it->second);
      const auto problem = checkpoint_problem(r.state, it->second);
      if (problem.empty()) {
        r.path = it->second;
        return r;
      }
      // It verifies, but resuming from it would fail at the next snapshot (non-finite) or
      // mislabel every later step (a name that disagrees with its step).
      why = problem.why;
      suffix = problem.suffix;
      r.state = TrainState{};
    } catch (const std::exception& e) {
      why = e.what();
    }
    std::string aside = it->second + suffix;
    for (int i = 1; fs::exists(aside); ++i) aside = fmt::format("{}{}.{}", it->second, suffix, i);
    std::error_code ec;
    fs::rename(it->second, aside, ec);
    spdlog::error("checkpoint {} cannot be used and is set aside as {}{}: {}", it->second, aside,
                  ec ? fmt::format(" (rename failed: {})", ec.message()) : "", why);
    r.set_aside.push_back(aside);
    r.reasons.push_back(why);
  }
  return r;
}

std::string Resumable::failure(const std::string& workdir) const {
  if (!path.empty() || set_aside.empty()) return "";
  return fmt::format("no usable checkpoint in '{}/checkpoints': {} set aside as unusable ({}); the newest failed with: {}. "
                     "Nothing was loaded: check the files (a new run in this workdir would start from step 0), or "
                     "pass --ckpt FILE",
                     workdir, set_aside.size(), fmt::join(set_aside, ", "), reasons.front());
}

std::vector<std::string> prune_checkpoints(const std::string& workdir, int64_t keep, int64_t keep_every) {
  std::vector<std::string> removed;
  if (keep <= 0) return removed;
  auto all = list_checkpoints(workdir);
  const int64_t n = static_cast<int64_t>(all.size());
  for (int64_t i = 0; i + keep < n; ++i) {
    const auto& [step, path] = all[static_cast<size_t>(i)];
    if (keep_every > 0 && step % keep_every == 0) continue;
    std::error_code ec;
    if (fs::remove(path, ec)) removed.push_back(path);
  }
  return removed;
}

}  // namespace scorch::io
