// Samplers against ground truth. The forward SDE simulated in small Euler-Maruyama steps
// must match the closed-form marginals; every predictor x corrector pair and the ODE
// sampler, driven by the exact score of a Gaussian mixture, must reproduce its mean,
// covariance and mode proportions; the ODE likelihood must match the mixture's density.
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "common.h"
#include "scorch/likelihood/likelihood.h"
#include "scorch/models/analytic_gmm.h"
#include "scorch/sampling/sampler.h"
#include "scorch/sde/sde.h"

using namespace scorch;

namespace {

at::Generator gen(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

// Two components, weights 0.3 / 0.7, stds 0.5 / 0.3, means -m and +m with m = 0.75 per
// coordinate (2-D: m = (2, 1) and (-2, 0) instead, well apart).
Config mixture_config(const std::string& sde_name, int64_t D) {
  Config c;
  c.training.sde = sde_name;
  c.model.name = "analytic_gmm";
  c.data.dim = D;
  if (D == 2) {
    c.model.gmm_means = {{-2.0, 0.0}, {2.0, 1.0}};
  } else {
    c.model.gmm_means = {std::vector<double>(static_cast<size_t>(D), -0.75), std::vector<double>(static_cast<size_t>(D), 0.75)};
  }
  c.model.gmm_stds = {0.5, 0.3};
  c.model.gmm_weights = {0.3, 0.7};
  c.model.num_scales = 1000;
  validate(c);
  return c;
}

// Exact mixture mean [D] and covariance [D,D].
std::pair<torch::Tensor, torch::Tensor> mixture_moments(const Config& c) {
  const int64_t D = c.data.dim;
  auto mean = torch::zeros({D}, torch::kFloat64);
  auto second = torch::zeros({D, D}, torch::kFloat64);
  for (size_t k = 0; k < c.model.gmm_means.size(); ++k) {
    auto mu = torch::tensor(c.model.gmm_means[k], torch::kFloat64);
    double w = c.model.gmm_weights[k] / 1.0, s = c.model.gmm_stds[k];
    mean += w * mu;
    second += w * (s * s * torch::eye(D, torch::kFloat64) + torch::outer(mu, mu));
  }
  return {mean, second - torch::outer(mean, mean)};
}

// A mixture problem: its config, SDE, exact model and score function.
struct Mixture {
  Mixture(const std::string& sde_name, int64_t D)
      : cfg(mixture_config(sde_name, D)), sde(sde::make_sde(cfg)), gmm(cfg.model) {
    score = [this](const torch::Tensor& x, const torch::Tensor& t) { return gmm.score(*sde, x, t); };
  }
  Mixture(const Mixture&) = delete;  // `score` points at this object
  Config cfg;
  std::unique_ptr<sde::SDE> sde;
  models::AnalyticGMM gmm;
  models::ScoreFn score;
};

struct Check {
  double mean_err, mean_tol, cov_err, cov_tol, share, share_tol;
};

// Compares samples x [n,D] with the mixture. Tolerances: 5 standard errors of each
// statistic for n samples (mean: sqrt(C_ii/n); covariance entry: sqrt((C_ii C_jj + C_ij^2)/n);
// mode share: sqrt(w(1-w)/n)) plus a discretisation allowance of 0.05 (mean, in units of
// the smallest component std times 0.1... see below), 5% of the scale of C, and 0.02.
Check compare(const Config& c, const torch::Tensor& x_in) {
  auto x = x_in.to(torch::kFloat64);
  const double n = static_cast<double>(x.size(0));
  auto [mean, cov] = mixture_moments(c);
  auto sm = x.mean(0);
  auto centered = x - sm;
  auto scov = centered.t().mm(centered) / (n - 1);
  auto diag = cov.diagonal();
  auto mean_z = ((sm - mean).abs() / (diag / n).sqrt()).max().item<double>();
  auto scale = (diag.unsqueeze(0) * diag.unsqueeze(1)).sqrt();
  auto cov_se = ((scale * scale + cov * cov) / n).sqrt();
  auto cov_excess = ((scov - cov).abs() - 5 * cov_se).max().item<double>();
  auto m0 = torch::tensor(c.model.gmm_means[0], torch::kFloat64), m1 = torch::tensor(c.model.gmm_means[1], torch::kFloat64);
  auto first = ((x - m0).pow(2).sum(1) < (x - m1).pow(2).sum(1)).to(torch::kFloat64).mean().item<double>();
  const double w0 = 0.3;
  return {mean_z, 5.0 + 0.05 * std::sqrt(n / diag.min().item<double>()),
          cov_excess, 0.05 * scale.max().item<double>(),
          std::abs(first - w0), 5 * std::sqrt(w0 * (1 - w0) / n) + 0.02};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(samplers)

// 20000 paths from x0 = 1.5 in 2000 Euler-Maruyama steps: mean within 5 standard errors
// (std / sqrt(n)) plus 1% of the std for the O(dt) bias; std within 5 SE (std / sqrt(2n)) + 1%.
BOOST_AUTO_TEST_CASE(forward_sde_matches_closed_form_marginals) {
  for (const char* name : {"vesde", "vpsde", "subvpsde"}) {
    Config c;
    c.training.sde = name;
    auto s = sde::make_sde(c);
    auto g = gen(1);
    const int64_t n = 20000, steps = 2000;
    auto x = torch::full({n, 1}, 1.5, torch::kFloat64);
    const double dt = 1.0 / steps;
    for (int64_t i = 0; i < steps; ++i) {
      auto t = torch::full({n}, (static_cast<double>(i)) * dt, torch::kFloat64);
      auto [f, gdiff] = s->sde(x, t);
      x = x + f * dt + gdiff.unsqueeze(1) * std::sqrt(dt) * torch::randn({n, 1}, g, torch::kFloat64);
      if (i + 1 == steps / 2 || i + 1 == steps) {
        auto tt = torch::full({1}, static_cast<double>(i + 1) * dt, torch::kFloat64);
        auto [m, sd] = s->marginal_prob(torch::full({1, 1}, 1.5, torch::kFloat64), tt);
        double mean = x.mean().item<double>(), std = x.std().item<double>();
        double em = m.item<double>(), es = sd.item<double>();
        BOOST_TEST_MESSAGE(name << " t=" << tt.item<double>() << ": mean " << mean << " vs " << em << ", std " << std
                                << " vs " << es);
        BOOST_TEST(std::abs(mean - em) < 5 * es / std::sqrt(n) + 0.01 * es);
        BOOST_TEST(std::abs(std - es) < 5 * es / std::sqrt(2.0 * n) + 0.01 * es);
      }
    }
  }
}

// Every predictor x corrector pair (none x none is no sampler) and the ODE sampler, for
// VE, VP and sub-VP (ancestral sampling exists for VE and VP only), in 2-D and 16-D, with
// 4000 samples and N = 1000 steps (snr 0.16, one corrector step).
BOOST_AUTO_TEST_CASE(every_sampler_reproduces_the_mixture) {
  const int64_t n = 4000;
  for (int64_t D : {2, 16}) {
    for (const char* sde_name : {"vpsde", "vesde", "subvpsde"}) {
      Mixture mix(sde_name, D);
      const auto& cfg = mix.cfg;
      const auto& s = mix.sde;
      const auto& score = mix.score;
      std::vector<std::pair<std::string, std::string>> pairs;
      for (const char* p : {"euler_maruyama", "reverse_diffusion", "ancestral_sampling", "none"})
        for (const char* c : {"langevin", "ald", "none"})
          if (!(std::string(p) == "none" && std::string(c) == "none") &&
              !(std::string(p) == "ancestral_sampling" && std::string(sde_name) == "subvpsde"))
            pairs.emplace_back(p, c);
      pairs.emplace_back("ode", "");
      uint64_t seed = 100;
      for (const auto& [p, c] : pairs) {
        auto g = gen(++seed);
        sampling::SampleResult res;
        if (p == "ode") {
          res = sampling::ode_sample(*s, score, {n, D}, {1e-5, 1e-5}, s->sampling_eps(), true, g);
        } else {
          // Corrector-only sampling needs several Langevin steps per noise level to converge
          // (one step per level, as in the PC pairs, leaves a visible bias): 5 here.
          auto sc = cfg.sampling;
          if (p == "none") sc.n_steps_each = 5;
          res = sampling::pc_sample(p, c, *s, score, {n, D}, sc, s->sampling_eps(), g);
          int64_t expect = (p == "none" ? 0 : 1000) + (c == "none" ? 0 : 1000 * sc.n_steps_each);
          BOOST_TEST(res.nfe == expect);
        }
        auto ck = compare(cfg, res.x);
        BOOST_TEST_MESSAGE(sde_name << " D=" << D << " " << p << "+" << c << ": mean z " << ck.mean_err << " (tol "
                                    << ck.mean_tol << "), cov excess " << ck.cov_err << " (tol " << ck.cov_tol
                                    << "), mode share err " << ck.share << " (tol " << ck.share_tol << "), NFE "
                                    << res.nfe);
        BOOST_TEST_CONTEXT(sde_name << " D=" << D << " " << p << "+" << c) {
          BOOST_TEST(torch::isfinite(res.x).all().item<bool>());
          BOOST_TEST(ck.mean_err < ck.mean_tol);
          BOOST_TEST(ck.cov_err < ck.cov_tol);
          BOOST_TEST(ck.share < ck.share_tol);
        }
      }
    }
  }
}

// The ODE likelihood of mixture samples equals the exact log-density at eps within 0.01
// bits/dim on average. The Hutchinson estimate is unbiased but noisy, relatively more so in
// 2-D (its variance is 2 sum_{i!=j} J_ij^2 against tr(J)^2): 4000 points average it out.
BOOST_AUTO_TEST_CASE(likelihood_matches_the_mixture_density) {
  for (int64_t D : {2, 16}) {
    for (const char* sde_name : {"vpsde", "vesde", "subvpsde"}) {
      Mixture mix(sde_name, D);
      const auto& s = mix.sde;
      const auto& gmm = mix.gmm;
      const auto& score = mix.score;
      auto g = gen(7);
      const int64_t n = 4000;
      auto x = gmm.sample(n, g).first;
      auto res = likelihood::logp_ode(score, *s, x, likelihood::rademacher({n, D}, g), {1e-5, 1e-5});
      auto exact = gmm.logp(*s, x, torch::full({n}, likelihood::kLikelihoodEps));
      double est_bpd = likelihood::bits_per_dim(res.logp, D, 0).mean().item<double>();
      double exact_bpd = likelihood::bits_per_dim(exact, D, 0).mean().item<double>();
      BOOST_TEST_MESSAGE(sde_name << " D=" << D << ": ODE " << est_bpd << " bits/dim, exact " << exact_bpd
                                  << ", NFE " << res.nfe);
      BOOST_TEST(std::abs(est_bpd - exact_bpd) < 0.01);
    }
  }
}

BOOST_AUTO_TEST_CASE(unknown_names_list_the_valid_ones) {
  Config c;
  auto s = sde::make_sde(c);
  models::ScoreFn score = [](const torch::Tensor& x, const torch::Tensor&) { return -x; };
  auto msg = test::error_of([&] { sampling::make_predictor("heun", *s, score, false); });
  BOOST_TEST(msg.find("heun") != std::string::npos);
  BOOST_TEST(msg.find("reverse_diffusion") != std::string::npos);
  msg = test::error_of([&] { sampling::make_corrector("hmc", *s, score, 0.1, 1); });
  BOOST_TEST(msg.find("langevin, ald, none") != std::string::npos);
  c.training.sde = "subvpsde";
  auto sub = sde::make_sde(c);
  msg = test::error_of([&] { sampling::make_predictor("ancestral_sampling", *sub, score, false); });
  BOOST_TEST(msg.find("vesde and vpsde only") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
