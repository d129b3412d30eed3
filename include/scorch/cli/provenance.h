// Provenance on every number: what a FID / IS / KID / accuracy / bits/dim result was computed
// from, so that a reviewer can trace and rerun it. Each result is a row of
// <workdir>/eval_log.csv and each evaluation (the numbers of one command) a JSON record
// beside the run it evaluated, both carrying: the checkpoint and its SHA-256, the step, which
// weights, the sampler and all its settings, NFE mean/min/max, how many samples, the seeds,
// the feature network's SHA-256 and interface, the reference statistics' SHA-256 and size,
// and scorch's version and commit.
#pragma once
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "scorch/dist/communicator.h"

namespace scorch::cli {

struct Provenance {
  std::string checkpoint;         // the file, "analytic_gmm (exact score)", or "" (a data set)
  std::string checkpoint_sha256;  // "" without a file
  std::string checkpoint_identity;  // io/checkpoint.h's content identity ("" without a file)
  std::string weights;            // "EMA (decay 0.9999, 1200 updates)", "raw parameters ..."
  std::string sampler;            // every sampler setting, "key = value" per line (or the ODE's)
  double nfe_mean = std::numeric_limits<double>::quiet_NaN();  // score evaluations per sample
  double nfe_min = std::numeric_limits<double>::quiet_NaN();
  double nfe_max = std::numeric_limits<double>::quiet_NaN();
  int64_t n = 0;                  // samples generated or items evaluated
  std::string seeds;              // the noise streams, e.g. "eval.seed = 0: sample i from stream (0, i), i = 0..49999"
  std::string feature_net, feature_net_sha256, feature_net_interface;  // FID/IS/KID/acc
  std::string reference, reference_sha256;                             // FID/KID
  int64_t reference_n = -1;       // images behind the reference statistics (-1: the file does not say)
  std::string data, data_sha256;  // a data set evaluated (bpd's test set; eval fid --data)
  std::string settings;           // anything else, one line per setting (e.g. the ODE's tolerances)
};

struct Result {
  std::string metric;  // "fid", "is", "kid", "acc", "bpd"
  double value = 0;
  double se = std::numeric_limits<double>::quiet_NaN();  // standard error / std over splits; NaN: none
};

// The JSON record carries "checksum": the SHA-256 of its own text without that key (sorted
// keys, as nlohmann::json dumps them), so that a hand-edited result is not reported again.
// Appends one row per result to <workdir>/eval_log.csv (the file rewritten atomically, so a
// row is never torn; a file of the earlier 7-column layout keeps its rows, moved into the
// new columns), writes the JSON record to `record` (atomically), and adds "eval/<metric>" at
// `step` to <workdir>/tensorboard. Rank 0. `step` -1: a data set, no TensorBoard scalar.
// `sets_json`, when given, is a JSON array stored as the record's "seed_sets" (each set's
// results and record).
void log_results(const std::string& workdir, int64_t step, const std::vector<Result>& results, const Provenance& p,
                 const std::string& record, const std::string& sets_json = std::string());

// Whether rank 0 sees the JSON record `record` holding results, whose checksum verifies (a
// record edited by hand, or written before records carried one, is not trusted), made from
// the checkpoint of identity `identity` (unless ""), and, unless `key` is "", holding the
// setting `key` = `value` (under "settings"). Says why a record that is there is not reused.
// Collective: every rank takes the same branch (the sweep's reruns read finished results
// instead of computing them again).
bool record_exists(dist::Communicator& comm, const std::string& record, const std::string& key,
                   const std::string& value, const std::string& identity = "");
// Throws naming `record` unless its checksum verifies (rank 0's readers of a record's values).
void verify_record(const std::string& record);

// "EMA (decay D, U updates)" or "raw parameters (the checkpoint holds no EMA)" of a
// checkpoint's weights as load_score_model uses them.
std::string weights_description(bool has_ema, double decay, int64_t updates);

}  // namespace scorch::cli
