// What belongs to the steps after S in a run directory, moved aside together when training
// goes on from step S's checkpoint and the newer history is dropped (`scorch train --ckpt
// OLDER --discard-newer`): nothing of the dropped branch may be found again by step number
// and reported for the new branch's weights. Nothing is deleted.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace scorch::train {

// Moves into `dir` (created; checkpoints at its top, the rest in the same subfolders as in the
// workdir) everything of `workdir` that the steps after `step` made:
//   checkpoints/ckpt_<s>.h5, ema/snapshot_<s>.h5, ema/phema_<s>_sigma*.h5,
//   samples/s<s>-*/ (sample runs with their features, statistics and records),
//   samples/snapshot_<s>.png, samples/{inpaint,colorize}_<s>-*,
//   eval/bpd-s<s>-*/ and .json (bits/dim batches and records), eval/bpd_<s>.h5,
//   eval/sweep-* (tables and plots that include the dropped steps),
// and the rows of train_log.csv and eval_log.csv of those steps (to dir/train_log.csv and
// dir/eval_log.csv, under the same header; the files keep the other rows). Returns the paths
// moved (a CSV's rows count as one entry, "train_log.csv (N rows)"). Rank 0, holding the
// workdir lock. TensorBoard event files are append-only and keep their scalars.
std::vector<std::string> discard_after(const std::string& workdir, int64_t step, const std::string& dir);

}  // namespace scorch::train
