// Euler-Maruyama predictor on the reverse SDE, as in score_sde's EulerMaruyamaPredictor
// (including its dt = -1/N with N time points from T to eps).
#include <cmath>

#include "scorch/sampling/sampler.h"

namespace scorch::sampling {

SampleResult euler_maruyama(const models::ScoreFn& score, const sde::SDE& s, at::IntArrayRef shape,
                            int64_t N, double eps, bool noise_removal, at::Generator& gen, const Progress& progress) {
  torch::NoGradGuard ng;
  auto x = s.prior_sampling(shape, gen);
  auto ts = torch::linspace(s.T(), eps, N, torch::kFloat64);
  const double dt = -1.0 / static_cast<double>(N);
  torch::Tensor x_mean = x;
  for (int64_t i = 0; i < N; ++i) {
    auto t = torch::full({shape[0]}, ts[i].item<double>(), torch::kFloat32);
    auto drift = s.reverse_drift(x, t, score(x, t), /*probability_flow=*/false);
    auto g = s.sde(x, t).second;
    x_mean = x + drift * dt;
    x = x_mean + sde::per_item(g, x) * std::sqrt(-dt) * torch::randn(shape, gen, torch::kFloat32);
    if (progress) progress(i + 1, N);
  }
  return {noise_removal ? x_mean : x, N};
}

}  // namespace scorch::sampling
