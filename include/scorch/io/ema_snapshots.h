// Snapshots of the power-function EMA profiles (ema.sigma_rels), written during training
// every ema.snapshot_kimg thousand images for `scorch ema` to combine after training (EDM2,
// section 3). One HDF5 file per snapshot, written atomically like a checkpoint (every
// dataset Fletcher-32 checksummed, /config CRC-32), pruned by ema.snapshot_keep:
//   <workdir>/ema/snapshot_<step, 9 digits>.h5
//   /            attrs: format="scorch-ema-snapshot", version, step, images, lineage (version 2:
//                the training history that wrote it, as in io/checkpoint.h; "" unrecorded)
//   /config      the run's resolved TOML (attr crc32)
//   /model/params/<name>, /model/buffers/<name>   the raw weights at that step
//   /power_ema/<k>/<name>  profile k (attrs sigma_rel, gamma, num_updates)
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "scorch/io/checkpoint.h"
#include "scorch/io/hdf5.h"

namespace scorch::io {

struct EmaSnapshot {
  int64_t step = 0;
  int64_t images = 0;  // training images seen at `step`
  std::string config_toml;
  TensorMap params, buffers;
  std::vector<PowerEmaState> profiles;
  std::string source;  // the file it was read from
  std::string lineage;  // "ID@STEP ..." (io/checkpoint.h); "" in a version 1 file
};

// <workdir>/ema/snapshot_<step>.h5
std::string ema_snapshot_path(const std::string& workdir, int64_t step);
void save_ema_snapshot(const std::string& path, const EmaSnapshot& s);
// Reads and verifies everything; with `tensors` false only the attributes, the config and
// each profile's attributes (fast: listing what a reconstruction can use).
EmaSnapshot load_ema_snapshot(const std::string& path, bool tensors = true);
// (step, path) of <workdir>/ema/snapshot_*.h5, by step.
std::vector<std::pair<int64_t, std::string>> list_ema_snapshots(const std::string& workdir);
// Deletes all but the newest `keep` snapshots (0: none deleted); returns the deleted paths.
std::vector<std::string> prune_ema_snapshots(const std::string& workdir, int64_t keep);

// Profiles under `group` (<group>/<k>/<name>, attrs on <group>/<k>), shared by checkpoints
// and snapshots; reading checks that the groups are exactly 0..K-1.
void write_power_ema(hid_t f, const std::string& group, const std::vector<PowerEmaState>& profiles);
std::vector<PowerEmaState> read_power_ema(hid_t f, const std::string& group, const std::string& path,
                                          bool tensors = true);

}  // namespace scorch::io
