// What the subcommands share: the common options (--config, --workdir, --set, --ckpt),
// config resolution (defaults <- the checkpoint's config <- --config <- --set), the device
// choice, a score model ready to sample with, and the sample run (farm/farm.h) it fills.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "scorch/core/config.h"
#include "scorch/dist/communicator.h"
#include "scorch/farm/farm.h"
#include "scorch/models/analytic_gmm.h"
#include "scorch/models/model.h"
#include "scorch/models/classifier.h"
#include "scorch/models/score_fn.h"
#include "scorch/sampling/constraint.h"
#include "scorch/sampling/guidance.h"
#include "scorch/sde/sde.h"

namespace CLI {
class App;
}

namespace scorch::cli {

struct Common {
  std::string config;             // --config jobs/X.toml
  std::string workdir;            // --workdir DIR
  std::string ckpt;               // --ckpt FILE (default: newest in workdir)
  std::vector<std::string> sets;  // --set section.key=value
};

// Adds --config, --workdir, --set (and --ckpt when `ckpt`) to `app`, bound to `c`.
void add_common(CLI::App& app, Common& c, bool ckpt);

// The checkpoint to use (--ckpt, else newest in --workdir) and the config it resolves to.
// With `need_ckpt`, a missing checkpoint is an error unless the model is analytic_gmm.
struct Resolved {
  Config cfg;
  std::string ckpt;     // "" when none was given or found
  std::string workdir;  // --workdir, or the run directory holding --ckpt
  std::string ckpt_config;  // the checkpoint's own /config (TOML), "" without a checkpoint
  int64_t ckpt_step = 0;    // the step it holds
  std::string ckpt_identity;  // its content identity (io/checkpoint.h), "" without a checkpoint
  // Whether the checkpoint stores its identity (version 4). One of versions 1 to 3 (identity:
  // its file's SHA-256) keeps the names and settings its results had before identities were
  // recorded, so that an upgrade reuses them instead of computing them again.
  bool ckpt_identity_stored = false;
  // A checkpoint of version 1 to 3 (its results keep the names they had).
  bool legacy_identity() const { return !ckpt.empty() && !ckpt_identity_stored; }
};
// defaults <- `toml` (a checkpoint's /config or a workdir's config.toml), derived; `source`
// names it in errors.
Config config_of(const std::string& toml, const std::string& source);
// The 8 hex digits naming a folder of results of r's checkpoint made with `settings` (sample
// runs, bits/dim batches): a hash of the checkpoint's file name ("analytic" without one), its
// identity (not for legacy_identity(): the names those results had) and the settings.
std::string results_key(const Resolved& r, const std::string& settings);
// Throws naming the file when the newest checkpoint of --workdir cannot be read (with the
// newest one that verifies), or when the checkpoint's network keys differ from those of
// <workdir>/config.toml (a checkpoint of another model).
Resolved resolve(const Common& opt, bool need_ckpt);
// "the newest checkpoint that verifies is P (step S): pass --ckpt P ..." for a checkpoint
// `bad` of `workdir` that cannot be used, or that none other does.
std::string usable_checkpoint_hint(const std::string& workdir, const std::string& bad);

// A score function on this rank's device: a network with the EMA weights of a checkpoint,
// or the exact analytic_gmm model (no checkpoint; step 0). Chooses the device (collective:
// rank 0 logs the placement).
struct Loaded {
  Resolved r;
  torch::Device device{torch::kCPU};
  int64_t step = 0;
  std::unique_ptr<sde::SDE> sde;
  models::ScoreNetPtr net;
  std::unique_ptr<models::AnalyticGMM> gmm;
  models::ScoreFn score;            // unconditional (a class-conditional network's null label)
  models::Classifier classifier{nullptr};  // sampling.classifier (a checkpoint)
  sampling::Guidance guidance;      // sampling.class_label / guidance_scale / classifier
  int64_t num_classes = 0;          // of the network, the mixture or the classifier
  std::string weights;              // which weights (cli/provenance.h's weights_description), or the analytic score
  // The score for the samples with these global indices and their class labels (int64 [B];
  // undefined when sampling.class_label = none). The function refers to this object.
  std::pair<models::ScoreFn, torch::Tensor> score_for(const std::vector<int64_t>& index) const;
};
Loaded load_score_model(const Common& opt, dist::Communicator& comm);

// A sample run of the farm: <workdir>/samples/<name>, name "s<step, 9 digits>-<sampler>-<hash>"
// where the hash covers the sampler settings (sampling::settings), the checkpoint's file name
// and its content identity (so that another checkpoint of the same step, after
// --discard-newer or a file replaced by hand, never finds these samples; a checkpoint of
// version 1 to 3 keeps the name it had before, without the identity); `settings` is what
// each batch file and the manifest record, `identity` what they record of the checkpoint.
struct SampleRun {
  std::string name;
  std::string dir;
  std::string settings;
  farm::Plan plan;
  int64_t set = 0;          // seed set k of eval.seed_sets: its batch b holds samples first_index + b's indices
  int64_t first_index = 0;  // k * eval.num_samples
  std::string seeds;        // "eval.seed = S: sample i draws all its noise from stream (S, i), i = a..b"
  std::string identity;     // the checkpoint's content identity ("" for the analytic score)
  bool legacy = false;      // a checkpoint of version 1 to 3: its batches carry no identity
};
// Set 0's name and settings do not depend on eval.seed_sets (a run of one set is set 0 of
// many); set k > 0 adds "eval.seed_set = k" to the settings, so it is a run of its own.
SampleRun sample_run(const Resolved& r, int64_t step, int64_t set = 0);
inline SampleRun sample_run(const Loaded& l, int64_t set = 0) { return sample_run(l.r, l.step, set); }

// Controllable generation through the farm (cli/controlled.cpp), for inpaint and colorize.
struct Controlled {
  std::string kind;     // "inpaint" | "colorize"
  std::string data;     // the data file (scorch schema)
  std::string out;      // output file ("" = <workdir>/samples/<kind>_<step>-<sampler>[-<tag>].h5)
  std::string mask_id;  // what the settings record of the mask (its file and hash)
  std::string tag;      // in the default output name (inpaint: "mask" + the mask's hash), or ""
  int64_t count = 0;    // rows to complete (0: all)
  // The constraint of a batch x0 [B,...] (model space, on the device).
  std::function<sampling::Constraint(const torch::Tensor& x0)> make;
  // The grid's "input" column from the originals [k,C,H,W] in [0,1].
  std::function<torch::Tensor(const torch::Tensor& x01)> show_input;
};
int run_controlled(const Common& common, dist::Communicator& comm, const Controlled& c);

// Rank 0: when `dir` (a run about to be computed) does not exist yet, logs each sibling in
// its folder of the same step and kind (a folder named `prefix`..., e.g. "s000000015-pc-")
// whose JSON `meta` file (inside the sibling, e.g. "manifest.json", or with a leading '.'
// beside it, e.g. ".json") names another checkpoint identity ("checkpoint_identity" or
// "checkpoint": {"identity"}): its results are of another checkpoint, computed again here.
void note_other_checkpoint_runs(const std::string& dir, const std::string& prefix, const std::string& meta,
                                const std::string& identity);

// Whether a farm run was stopped by a signal before finishing; if so rank 0 prints how far
// it got in `dir` (the caller then exits with kStoppedExitCode).
bool stopped(const dist::Communicator& comm, const farm::Report& report, const std::string& dir);

// The PNG written beside an output file: X.h5 -> X.png (any other name: name + ".png").
std::string png_beside(const std::string& out);

// [b, item...]
std::vector<int64_t> with_batch(int64_t b, const std::vector<int64_t>& item);

}  // namespace scorch::cli
