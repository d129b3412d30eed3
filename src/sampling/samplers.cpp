// The PC and ODE sampling loops and the config-driven entry point.
#include "scorch/core/error.h"
#include "scorch/sampling/sampler.h"

namespace scorch::sampling {

SampleResult pc_sample(const std::string& predictor_name, const std::string& corrector_name, const sde::SDE& s,
                       const models::ScoreFn& score, at::IntArrayRef shape, const SamplingConfig& cfg, double eps,
                       at::Generator& gen, const Progress& progress) {
  torch::NoGradGuard ng;
  int64_t calls = 0;
  models::ScoreFn counted = [&](const torch::Tensor& x, const torch::Tensor& t) {
    ++calls;
    return score(x, t);
  };
  auto predictor = make_predictor(predictor_name, s, counted, cfg.probability_flow);
  auto corrector = make_corrector(corrector_name, s, counted, cfg.snr, cfg.n_steps_each);
  const int64_t N = s.N();
  auto x = s.prior_sampling(shape, gen);
  // The time grid on the host (score_sde's linspace(T, eps, N)); each t on x's device.
  auto ts = torch::linspace(s.T(), eps, N, torch::kFloat64);
  const auto* grid = ts.data_ptr<double>();
  torch::Tensor x_mean = x;
  for (int64_t i = 0; i < N; ++i) {
    auto t = torch::full({shape[0]}, grid[i], x.options().dtype(torch::kFloat32));
    auto c = corrector->step(x, t, gen);
    auto p = predictor->step(c.x, t, gen);
    x = p.x;
    x_mean = p.x_mean;
    if (progress) progress(i + 1, N);
  }
  return {cfg.noise_removal ? x_mean : x, calls};
}

SampleResult ode_flow(const sde::SDE& s, const models::ScoreFn& score, const torch::Tensor& x0, double t0, double t1,
                      const OdeOptions& opt) {
  torch::NoGradGuard ng;
  const int64_t B = x0.size(0);
  OdeRhs rhs = [&](double t, const OdeState& y) {
    auto tt = torch::full({B}, t, y[0].options().dtype(torch::kFloat32));
    return OdeState{s.reverse_drift(y[0], tt, score(y[0], tt), /*probability_flow=*/true)};
  };
  OdeStats stats;
  auto x = rk45(rhs, {x0.to(torch::kFloat32)}, t0, t1, opt, &stats)[0];
  return {x, stats.nfe};
}

SampleResult ode_sample(const sde::SDE& s, const models::ScoreFn& score, at::IntArrayRef shape, const OdeOptions& opt,
                        double eps, bool denoise, at::Generator& gen) {
  torch::NoGradGuard ng;
  auto flow = ode_flow(s, score, s.prior_sampling(shape, gen), s.T(), eps, opt);
  auto x = flow.x;
  int64_t nfe = flow.nfe;
  if (denoise) {
    auto t = torch::full({shape[0]}, eps, x.options().dtype(torch::kFloat32));
    auto [f, G] = s.reverse_discretize(x, t, score(x, t), /*probability_flow=*/false);
    x = x - f;
    ++nfe;
  }
  return {x, nfe};
}

SampleResult sample(const Config& cfg, const sde::SDE& s, const models::ScoreFn& score, at::IntArrayRef shape,
                    at::Generator& gen, const Progress& progress) {
  const auto& sc = cfg.sampling;
  if (sc.method == "ode") {
    return ode_sample(s, score, shape, {sc.rtol, sc.atol}, s.sampling_eps(), sc.noise_removal, gen);
  }
  SCORCH_CHECK(sc.method == "pc", "sampler '{}' not found (sampling.method): valid are pc, ode", sc.method);
  return pc_sample(sc.predictor, sc.corrector, s, score, shape, sc, s.sampling_eps(), gen, progress);
}

}  // namespace scorch::sampling
