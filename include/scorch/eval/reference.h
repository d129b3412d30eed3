// Reference statistics for FID / KID, read from any of the files users have (see
// read_reference_stats); each is checked to be what it claims before any number is computed.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>

namespace scorch::eval {

// Reference statistics from any of the files users have: scorch's and pytorch-fid's / EDM's
// .npz (`mu`, `sigma`; scorch's also `features` for KID), or score_sde's statistics files
// (score_sde/evaluation.py writes `pool_3` features [N,F] and, where computed, `logits`):
// their moments are computed here in float64 (np.cov's unbiased covariance), and the
// features serve KID.
// `mu` [F] and `sigma` [F,F] come back float64; sigma must be symmetric (to 1e-6 of its largest
// entry) with a non-negative diagonal, everything finite: otherwise an error naming the file.
std::map<std::string, torch::Tensor> read_reference_stats(const std::string& path);

}  // namespace scorch::eval
