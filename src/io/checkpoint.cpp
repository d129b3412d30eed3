// Checkpoint files: TrainState <-> HDF5, with an atomic commit on write and a full,
// checksum-verified read before the caller touches any model.
#include "scorch/io/checkpoint.h"

#include <filesystem>
#include <regex>

#include "scorch/core/error.h"
#include "scorch/io/hdf5.h"

namespace fs = std::filesystem;

namespace scorch::io {

namespace {

void write_map(hid_t f, const std::string& group, const TensorMap& m) {
  for (const auto& [name, t] : m) h5::write_tensor(f, group + "/" + name, t);
}

TensorMap read_map(hid_t f, const std::string& group, const std::string& path) {
  TensorMap m;
  for (const auto& name : h5::list(f, group)) m[name] = h5::read_tensor(f, group + "/" + name, path);
  return m;
}

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
  st.config_toml = h5::read_string(f.id(), "config", path);
  return st;
}

}  // namespace

void save_checkpoint(const std::string& path, const TrainState& st) {
  h5::write_atomically(path, [&](hid_t f) {
    h5::set_attr(f, "format", std::string(kCheckpointFormat));
    h5::set_attr(f, "version", kCheckpointVersion);
    h5::set_attr(f, "step", st.step);
    h5::set_attr(f, "world_size", st.world_size);
    h5::set_attr(f, "epoch", st.epoch);
    h5::set_attr(f, "batch_in_epoch", st.batch_in_epoch);
    h5::write_string(f, "config", st.config_toml);
    write_map(f, "model/params", st.params);
    write_map(f, "model/buffers", st.buffers);
    write_map(f, "ema", st.ema);
    write_map(f, "optimizer/exp_avg", st.exp_avg);
    write_map(f, "optimizer/exp_avg_sq", st.exp_avg_sq);
    h5::Handle g(H5Gopen2(f, "ema", H5P_DEFAULT), H5Gclose);
    h5::set_attr(g.id(), "decay", st.ema_decay);
    h5::set_attr(g.id(), "num_updates", st.ema_updates);
    h5::Handle o(H5Gopen2(f, "optimizer", H5P_DEFAULT), H5Gclose);
    h5::set_attr(o.id(), "step", st.adam_steps);
    if (st.rng.defined()) h5::write_tensor(f, "rng/default", st.rng);
    if (st.rng_cuda.defined()) h5::write_tensor(f, "rng/cuda", st.rng_cuda);
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
  st.params = read_map(f.id(), "model/params", path);
  st.buffers = read_map(f.id(), "model/buffers", path);
  st.ema = read_map(f.id(), "ema", path);
  st.exp_avg = read_map(f.id(), "optimizer/exp_avg", path);
  st.exp_avg_sq = read_map(f.id(), "optimizer/exp_avg_sq", path);
  {
    h5::Handle g(H5Gopen2(f.id(), "ema", H5P_DEFAULT), H5Gclose);
    st.ema_decay = h5::get_attr_double(g.id(), "decay", path);
    st.ema_updates = h5::get_attr_int(g.id(), "num_updates", path);
    h5::Handle o(H5Gopen2(f.id(), "optimizer", H5P_DEFAULT), H5Gclose);
    st.adam_steps = h5::get_attr_int(o.id(), "step", path);
  }
  if (h5::exists(f.id(), "rng/default")) st.rng = h5::read_tensor(f.id(), "rng/default", path);
  if (h5::exists(f.id(), "rng/cuda")) st.rng_cuda = h5::read_tensor(f.id(), "rng/cuda", path);
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

std::string latest_checkpoint(const std::string& workdir) {
  fs::path dir = fs::path(workdir) / "checkpoints";
  if (!fs::is_directory(dir)) return "";
  static const std::regex re(R"(ckpt_(\d+)\.h5)");
  int64_t best = -1;
  std::string out;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::smatch m;
    std::string name = e.path().filename().string();
    if (std::regex_match(name, m, re)) {
      int64_t s = std::stoll(m[1]);
      if (s > best) {
        best = s;
        out = e.path().string();
      }
    }
  }
  return out;
}

}  // namespace scorch::io
