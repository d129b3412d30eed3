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
// With `noise_conditional`, the classifier learns p(c | x_t, t) on data perturbed by the
// config's SDE (training.sde, model.beta_* / sigma_*) at t ~ U(1e-5, T), for classifier
// guidance (sampling.classifier); its test accuracy is measured at t = eps on clean data.
ClassifierResult train_classifier(const Config& cfg, dist::Communicator& comm, const torch::Device& device,
                                  const std::string& out, bool noise_conditional = false);

}  // namespace scorch::train
