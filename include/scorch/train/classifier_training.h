// Data-parallel training of the small image classifier (models/classifier.h) on a labelled
// data set (`/labels`): every rank takes its rows of each global batch of the epoch's
// permutation (stream (seed, epoch)), gradients are averaged over ranks (dist::Reducer), Adam steps
// (classifier.* keys). The result is a scorch checkpoint (io/checkpoint.h) that
// eval.feature_net can name.
#pragma once
#include <string>

#include "scorch/core/config.h"
#include "scorch/dist/communicator.h"

namespace scorch::train {

struct ClassifierResult {
  int64_t steps = 0;
  double train_loss = 0;      // mean over the last epoch's batches (this rank's rows)
  double test_accuracy = -1;  // on data.eval_path when it has labels (else -1)
  double seconds = 0;
};

// Trains on cfg.data.path and writes the checkpoint to `out` (rank 0). Collective.
ClassifierResult train_classifier(const Config& cfg, dist::Communicator& comm, const torch::Device& device,
                                  const std::string& out);

}  // namespace scorch::train
