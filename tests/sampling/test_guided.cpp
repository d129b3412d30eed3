// Guided, controllable and fast generation against closed forms (suite `guided`):
//  - classifier-free guidance at scale 0 and classifier guidance with the exact posterior at
//    scale 1 reproduce one component of a mixture whose components are the classes;
//  - with Gaussian classes the guided probability-flow ODE is linear, so the spread of the
//    guided samples has a closed form for every scale (a 1-D quadrature); the samples match it;
//  - inpainting keeps the known coordinate exactly and the free one follows the mixture's
//    exact conditional; colourisation keeps the grey channel exactly;
//  - DDIM, DPM-Solver++ and Heun reach the mixture's moments at 10-20 NFE where
//    Euler-Maruyama at the same NFE does not;
// Sliced score matching, class-conditional networks, label dropout and the guidance keys are
// in sampling/test_guided_training.cpp (same suite).
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "common.h"
#include "scorch/losses/loss.h"
#include "scorch/losses/ssm.h"
#include "scorch/models/analytic_gmm.h"
#include "scorch/models/model.h"
#include "scorch/sampling/constraint.h"
#include "scorch/sampling/guidance.h"
#include "scorch/sampling/sampler.h"
#include "scorch/sde/variants.h"
#include "scorch/train/batches.h"

using namespace scorch;

namespace {

at::Generator gen(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

Config mixture(const std::string& sde_name, std::vector<std::vector<double>> means, std::vector<double> stds,
               std::vector<double> weights, int64_t num_scales = 1000) {
  Config c;
  c.training.sde = sde_name;
  c.model.name = "analytic_gmm";
  c.model.gmm_means = std::move(means);
  c.model.gmm_stds = std::move(stds);
  c.model.gmm_weights = std::move(weights);
  c.model.num_scales = num_scales;
  c.data.dim = static_cast<int64_t>(c.model.gmm_means[0].size());
  validate(c);
  return c;
}

// The test mixture of the samplers suite: weights 0.3 / 0.7, stds 0.5 / 0.3, means (-2, 0), (2, 1).
Config two_classes(const std::string& sde_name, int64_t num_scales = 1000) {
  auto c = mixture(sde_name, {{-2.0, 0.0}, {2.0, 1.0}}, {0.5, 0.3}, {0.3, 0.7}, num_scales);
  c.model.num_classes = 2;
  validate(c);
  return c;
}

// Errors of samples x [n,D] against the mixture's mean, covariance and share of component
// 0, each as a multiple of its allowed error: 5 standard errors plus a small allowance
// (0.05 in the mean, 5% of the covariance scale, 0.02 in the share). Pass: all < 1.
struct Fit {
  double mean, cov, share, spread;
  double sd0 = 0, sd1 = 0, share0 = 0;  // the modes' spreads and the share of mode 0, as measured
  double want0 = 0, want1 = 0, want_share = 0;
  bool ok() const { return mean < 1 && cov < 1 && share < 1 && spread < 1; }
};
Fit fit(const Config& c, const torch::Tensor& x_in) {
  auto x = x_in.to(torch::kFloat64);
  const int64_t D = x.size(1);
  const double n = static_cast<double>(x.size(0));
  auto mean = torch::zeros({D}, torch::kFloat64), second = torch::zeros({D, D}, torch::kFloat64);
  double wsum = 0;
  for (double w : c.model.gmm_weights) wsum += w;
  for (size_t k = 0; k < c.model.gmm_means.size(); ++k) {
    auto mu = torch::tensor(c.model.gmm_means[k], torch::kFloat64);
    const double w = c.model.gmm_weights[k] / wsum, s = c.model.gmm_stds[k];
    mean += w * mu;
    second += w * (s * s * torch::eye(D, torch::kFloat64) + torch::outer(mu, mu));
  }
  auto cov = second - torch::outer(mean, mean);
  auto diag = cov.diagonal();
  auto sm = x.mean(0);
  auto xc = x - sm;
  auto scov = xc.t().mm(xc) / (n - 1);
  auto scale = (diag.unsqueeze(0) * diag.unsqueeze(1)).sqrt();
  auto cov_se = ((scale * scale + cov * cov) / n).sqrt();
  Fit f{};
  f.mean = ((sm - mean).abs() / (5 * (diag / n).sqrt() + 0.05)).max().item<double>();
  f.cov = ((scov - cov).abs() / (5 * cov_se + 0.05 * scale.max())).max().item<double>();
  auto m0 = torch::tensor(c.model.gmm_means[0], torch::kFloat64), m1 = torch::tensor(c.model.gmm_means[1], torch::kFloat64);
  const double share = ((x - m0).pow(2).sum(1) < (x - m1).pow(2).sum(1)).to(torch::kFloat64).mean().item<double>();
  const double w0 = c.model.gmm_weights[0] / wsum;
  f.share = std::abs(share - w0) / (5 * std::sqrt(w0 * (1 - w0) / n) + 0.02);
  f.share0 = share;
  f.want_share = w0;
  // The spread of each mode: the std of the samples nearest each mean (pooled over the
  // coordinates) against the component's std, allowed 5 standard errors plus 3%. Modes
  // 4 stds apart: nearest-mean assignment misplaces a negligible share.
  auto near0 = (x - m0).pow(2).sum(1) < (x - m1).pow(2).sum(1);
  f.spread = 0;
  for (int k = 0; k < 2; ++k) {
    auto part = x.index({k == 0 ? near0 : near0.logical_not()});
    const double nk = static_cast<double>(part.size(0));
    const double sd = (part - part.mean(0)).pow(2).sum().item<double>() / ((nk - 1) * static_cast<double>(D));
    const double want = c.model.gmm_stds[static_cast<size_t>(k)];
    f.spread = std::max(f.spread, std::abs(std::sqrt(sd) / want - 1) / (5 / std::sqrt(2 * nk * D) + 0.03));
    (k == 0 ? f.sd0 : f.sd1) = std::sqrt(sd);
    (k == 0 ? f.want0 : f.want1) = want;
  }
  return f;
}

std::string describe(const Fit& f) {
  return fmt::format("mean {:.2f}, cov {:.2f}, share {:.2f}, spread {:.2f} (of the allowed error); mode stds {:.4f} "
                     "{:.4f} (exact {:.2f}, {:.2f}), share of mode 0 {:.4f} ({:.2f})",
                     f.mean, f.cov, f.share, f.spread, f.sd0, f.sd1, f.want0, f.want1, f.share0, f.want_share);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(guided)

// Guidance scale 0 (the conditional score) and classifier guidance with the exact posterior
// at scale 1 (mixture score + grad log p(c | x, t) = the component's score) both give class
// 0 exactly: N((-2, 0), 0.25 I), although the mixture puts only 30% there.
BOOST_AUTO_TEST_CASE(scale_zero_and_exact_classifier_reproduce_the_class) {
  for (const char* sde_name : {"vpsde", "vesde"}) {
    auto cfg = two_classes(sde_name);
    auto s = sde::make_sde(cfg);
    models::AnalyticGMM gmm(cfg.model);
    sampling::Guidance cf, clf;
    cf.unconditional = clf.unconditional = [&](const torch::Tensor& x, const torch::Tensor& t) {
      return gmm.score(*s, x, t);
    };
    cf.conditional = [&](const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& c) {
      return gmm.class_score(*s, x, t, c);
    };
    cf.num_classes = clf.num_classes = 2;
    clf.classifier = [&](const torch::Tensor& x, const torch::Tensor& t) { return gmm.log_posterior(*s, x, t); };
    clf.classifier_scale = 1.0;
    const int64_t n = 4000;
    auto labels = torch::zeros({n}, torch::kInt64);
    for (auto* g : {&cf, &clf}) {
      auto score = sampling::guided_score(*g, labels);
      auto sc = cfg.sampling;
      auto gg = gen(3);
      auto res = sampling::pc_sample("reverse_diffusion", "langevin", *s, score, {n, 2}, sc, s->sampling_eps(), gg);
      auto x = res.x.to(torch::kFloat64);
      auto mean = x.mean(0), std = x.std(0);
      const double in_class = ((x - torch::tensor({-2.0, 0.0}, torch::kFloat64)).pow(2).sum(1) <
                               (x - torch::tensor({2.0, 1.0}, torch::kFloat64)).pow(2).sum(1))
                                  .to(torch::kFloat64)
                                  .mean()
                                  .item<double>();
      const std::string what = std::string(sde_name) + (g == &cf ? " guidance scale 0" : " exact classifier, scale 1");
      BOOST_TEST_MESSAGE(what << ": mean " << mean[0].item<double>() << ", " << mean[1].item<double>() << "; std "
                              << std[0].item<double>() << ", " << std[1].item<double>() << "; in class 0: " << in_class);
      BOOST_TEST_CONTEXT(what) {
        // 5 standard errors of the mean (0.5 / sqrt(4000) = 0.008) and of the std, plus 0.01.
        BOOST_TEST(std::abs(mean[0].item<double>() + 2.0) < 0.05);
        BOOST_TEST(std::abs(mean[1].item<double>()) < 0.05);
        BOOST_TEST(std::abs(std[0].item<double>() - 0.5) < 0.04);
        BOOST_TEST(std::abs(std[1].item<double>() - 0.5) < 0.04);
        BOOST_TEST(in_class > 0.995);
      }
    }
  }
}

// Gaussian classes N(0, s_c^2) and null N(0, s_u^2) in 1-D under VP: every score is linear,
// s = -x / v(t) with v = alpha^2 s^2 + sigma^2, so the guided score is -k(t) x with
// k = (1 + w) / v_c - w / v_u and the probability-flow ODE dx/dt = beta/2 (k - 1) x is
// solved by ln std(eps) = ln std(T) - int_eps^T beta/2 (k - 1) dt. Larger w shrinks the
// samples exactly as that integral says.
BOOST_AUTO_TEST_CASE(guidance_concentrates_as_the_closed_form_predicts) {
  Config cfg;
  cfg.training.sde = "vpsde";
  auto s = sde::make_sde(cfg);
  const double sc2 = 0.25, su2 = 2.25, eps = s->sampling_eps();
  auto v = [&](const torch::Tensor& t, double s2) {
    auto a = s->alpha(t), sg = s->sigma(t);
    return a * a * s2 + sg * sg;
  };
  sampling::Guidance g;
  g.num_classes = 1;
  g.conditional = [&](const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& c) {
    auto var = torch::where(c == 1, v(t, su2), v(t, sc2));
    return -x / sde::per_item(var, x);
  };
  g.unconditional = [&](const torch::Tensor& x, const torch::Tensor& t) { return -x / sde::per_item(v(t, su2), x); };
  const int64_t n = 20000;
  double last = 1e9;
  for (double w : {0.0, 1.0, 3.0}) {
    g.guidance_scale = w;
    // Closed form by Simpson's rule on [eps, T] in float64.
    const int64_t m = 20000;
    double integral = 0;
    for (int64_t i = 0; i <= m; ++i) {
      const double t = eps + (s->T() - eps) * static_cast<double>(i) / static_cast<double>(m);
      const double a = s->alpha_at(t), sg = s->sigma_at(t);
      const double vc = a * a * sc2 + sg * sg, vu = a * a * su2 + sg * sg;
      const double beta = cfg.model.beta_min + t * (cfg.model.beta_max - cfg.model.beta_min);
      const double f = 0.5 * beta * ((1 + w) / vc - w / vu - 1);
      integral += f * (i == 0 || i == m ? 1 : (i % 2 ? 4 : 2));
    }
    integral *= (s->T() - eps) / static_cast<double>(m) / 3.0;
    const double expected = std::exp(-integral);  // prior std 1 at T
    auto score = sampling::guided_score(g, torch::zeros({n}, torch::kInt64));
    auto gg = gen(11);
    auto res = sampling::ode_sample(*s, score, {n, 1}, {1e-6, 1e-6}, eps, /*denoise=*/false, gg);
    const double got = res.x.to(torch::kFloat64).std().item<double>();
    BOOST_TEST_MESSAGE("guidance scale " << w << ": sample std " << got << ", closed form " << expected << ", NFE "
                                         << res.nfe);
    // Standard error of a std over 20000 draws: 0.5%; allowed 2%.
    BOOST_TEST(std::abs(got / expected - 1) < 0.02);
    BOOST_TEST(expected < last);
    last = expected;
  }
  // Scale 0 is the class itself: std sqrt(alpha(eps)^2 s_c^2 + sigma(eps)^2) ~ 0.5.
}

// Known x_1 = c: x_2 should follow p(x_2 | x_1 = c) of the mixture 0.5 N((-1,-1), 0.36 I) +
// 0.5 N((1,1.5), 0.36 I), a two-component mixture with weights w_k N(c; m_k1, 0.36) and
// components N(m_k2, 0.36). Every sampler keeps x_1 = c exactly. Replacement (the paper's
// method) conditions only through the noised x_1, so it is exact only in the limit:
//  - c = 1 (the conditional is almost all one component): PC matches it to 0.06;
//  - c = 0.3 (both components matter): PC with 5 Langevin steps per level lands within
//    0.15 of the exact mean, against 0.85 for no conditioning (figures in the log);
//  - the probability-flow ODE keeps x_1 but, being deterministic, commits to a mode before
//    x_1 is informative: its x_2 stays close to the unconditional (only logged).
BOOST_AUTO_TEST_CASE(inpainting_keeps_the_known_part_and_follows_the_conditional) {
  auto cfg = mixture("vpsde", {{-1.0, -1.0}, {1.0, 1.5}}, {0.6, 0.6}, {0.5, 0.5});
  auto s = sde::make_sde(cfg);
  models::AnalyticGMM gmm(cfg.model);
  models::ScoreFn score = [&](const torch::Tensor& x, const torch::Tensor& t) { return gmm.score(*s, x, t); };
  const double s2 = 0.36, unconditional_mean = 0.25;
  const int64_t n = 4000;
  for (double c : {1.0, 0.3}) {
    const double l0 = std::exp(-(c + 1) * (c + 1) / (2 * s2)), l1 = std::exp(-(c - 1) * (c - 1) / (2 * s2));
    const double p0 = l0 / (l0 + l1), p1 = 1 - p0;
    const double mean = p0 * -1.0 + p1 * 1.5, sd = std::sqrt(p0 * (s2 + 1.0) + p1 * (s2 + 2.25) - mean * mean);
    auto known = torch::zeros({n, 2});
    known.select(1, 0).fill_(c);
    auto constraint = sampling::Constraint::inpainting(known, torch::tensor({1.0f, 0.0f}).expand({n, 2}));
    for (const std::string method : {"pc", "ode"}) {
      auto g = gen(5);
      sampling::SampleResult res;
      if (method == "pc") {
        auto sc = cfg.sampling;
        sc.n_steps_each = c == 1.0 ? 1 : 5;
        res = sampling::pc_sample("reverse_diffusion", "langevin", *s, score, {n, 2}, sc, s->sampling_eps(), g, {},
                                  &constraint);
      } else {
        res = sampling::ode_sample(*s, score, {n, 2}, {1e-5, 1e-5}, s->sampling_eps(), true, g, &constraint);
      }
      auto x2 = res.x.select(1, 1).to(torch::kFloat64);
      const double m = x2.mean().item<double>(), v = x2.std().item<double>();
      BOOST_TEST_MESSAGE(method << " inpainting at x1 = " << c << ": x2 mean " << m << " (exact " << mean << "), std "
                                << v << " (exact " << sd << "), NFE " << res.nfe);
      BOOST_TEST_CONTEXT(method << " x1 = " << c) {
        BOOST_TEST(torch::equal(res.x.select(1, 0), known.select(1, 0)));
        BOOST_TEST(torch::isfinite(res.x).all().item<bool>());
        if (method == "pc" && c == 1.0) {
          BOOST_TEST(std::abs(m - mean) < 0.06);
          BOOST_TEST(std::abs(v - sd) < 0.06);
        } else if (method == "pc") {
          BOOST_TEST(std::abs(m - mean) < 0.15);
          BOOST_TEST(std::abs(m - mean) < 0.25 * std::abs(unconditional_mean - mean));
        }
      }
    }
  }
}

// Colourisation of 3x2x2 "images" of a 12-D mixture: the grey level (channel mean) of every
// pixel is the input's exactly, the colours vary from sample to sample.
BOOST_AUTO_TEST_CASE(colorization_keeps_the_grey_levels) {
  std::vector<double> a(12), b(12);
  for (int i = 0; i < 12; ++i) {
    a[static_cast<size_t>(i)] = 0.3 + 0.05 * i;
    b[static_cast<size_t>(i)] = 0.8 - 0.04 * i;
  }
  auto cfg = mixture("vesde", {a, b}, {0.1, 0.1}, {0.5, 0.5}, 200);
  auto s = sde::make_sde(cfg);
  models::AnalyticGMM gmm(cfg.model);
  models::ScoreFn score = [&](const torch::Tensor& x, const torch::Tensor& t) {
    return gmm.score(*s, x.reshape({x.size(0), 12}), t).reshape(x.sizes());
  };
  auto gg = gen(9);
  auto data = gmm.sample(64, gg).first.reshape({64, 3, 2, 2});
  auto constraint = sampling::Constraint::colorization(data);
  auto g = gen(10);
  auto res = sampling::pc_sample("reverse_diffusion", "none", *s, score, {64, 3, 2, 2}, cfg.sampling, s->sampling_eps(),
                                 g, {}, &constraint);
  const double grey_err = (res.x.mean(1) - data.mean(1)).abs().max().item<double>();
  const double colour_change = (res.x - data).abs().max().item<double>();
  BOOST_TEST_MESSAGE("colorization: grey error " << grey_err << ", largest colour change " << colour_change);
  BOOST_TEST(grey_err < 1e-5);
  BOOST_TEST(colour_change > 0.01);
  BOOST_TEST(torch::isfinite(res.x).all().item<bool>());
}

// Narrow modes (stds 0.2 and 0.1, 4 apart) at 10-20 NFE. Fit = the mixture's mean,
// covariance and mode share within the samplers suite's tolerances and each mode's spread
// within 5 standard errors + 3%. Euler-Maruyama at NFE 10 (N = 10) misses on every SDE;
// DPM-Solver++ fits at 10 steps (VP, VE) and 20 (all three; sub-VP spans a wider log-SNR
// range, sigma = 1 - alpha^2 being tiny at eps), DDIM at 20 (VP, VE). Heun (VE, 10 steps =
// 20 NFE) fits the mean, covariance and share; its modes come out ~10% wide, still far
// closer than Euler-Maruyama's at 10 NFE (its convergence is checked against the ODE below).
BOOST_AUTO_TEST_CASE(fast_samplers_reach_the_moments_where_euler_maruyama_does_not) {
  const int64_t n = 4000;
  for (const char* sde_name : {"vpsde", "subvpsde", "vesde"}) {
    const std::string sn = sde_name;
    auto cfg = mixture(sde_name, {{-2.0, 0.0}, {2.0, 1.0}}, {0.2, 0.1}, {0.3, 0.7}, 10);
    auto s = sde::make_sde(cfg);
    models::AnalyticGMM gmm(cfg.model);
    models::ScoreFn score = [&](const torch::Tensor& x, const torch::Tensor& t) { return gmm.score(*s, x, t); };
    Fit em10{};
    for (int64_t N : {10, 20}) {
      auto cN = mixture(sde_name, {{-2.0, 0.0}, {2.0, 1.0}}, {0.2, 0.1}, {0.3, 0.7}, N);
      auto sN = sde::make_sde(cN);
      auto g = gen(21);
      auto em = sampling::pc_sample("euler_maruyama", "none", *sN, score, {n, 2}, cN.sampling, sN->sampling_eps(), g);
      const auto f = fit(cfg, em.x);
      BOOST_TEST_MESSAGE(sde_name << " euler_maruyama, NFE " << em.nfe << ": " << describe(f));
      BOOST_TEST(em.nfe == N);
      if (N == 10) em10 = f;
    }
    BOOST_TEST(!em10.ok(), sn << ": Euler-Maruyama at NFE 10 should miss");
    std::vector<std::pair<std::string, int64_t>> runs{{"dpm_solver", 20}};
    if (sn != "subvpsde") runs.insert(runs.end(), {{"dpm_solver", 10}, {"ddim", 20}});
    if (sn == "vesde") runs.emplace_back("heun", 10);
    for (const auto& [method, steps] : runs) {
      auto sc = cfg.sampling;
      sc.method = method;
      sc.steps = steps;
      auto gg = gen(22);
      auto res = sampling::fast_sample(sc, *s, score, {n, 2}, s->sampling_eps(), gg);
      const auto f = fit(cfg, res.x);
      BOOST_TEST_MESSAGE(sde_name << " " << method << " " << steps << " steps, NFE " << res.nfe << ": " << describe(f));
      BOOST_TEST_CONTEXT(sde_name << " " << method << " " << steps) {
        BOOST_TEST(res.nfe == (method == "heun" ? 2 * steps : steps));
        if (method == "heun") {
          BOOST_TEST((f.mean < 1 && f.cov < 1 && f.share < 1));
          BOOST_TEST(f.spread < 0.2 * em10.spread);
        } else {
          BOOST_TEST(f.ok());
        }
      }
    }
  }
}

// With the same prior draws, each deterministic solver approaches the probability-flow ODE's
// solution (DDIM with 2000 steps) as its steps grow, DPM-Solver++ and Heun (second order)
// faster than DDIM (first order): their errors at 20 and 40 steps are several times smaller.
BOOST_AUTO_TEST_CASE(dpm_solver_converges_faster_than_ddim) {
  for (const char* sde_name : {"vpsde", "vesde"}) {
    auto cfg = two_classes(sde_name);
    auto s = sde::make_sde(cfg);
    models::AnalyticGMM gmm(cfg.model);
    models::ScoreFn score = [&](const torch::Tensor& x, const torch::Tensor& t) { return gmm.score(*s, x, t); };
    auto run = [&](const std::string& method, int64_t steps) {
      auto sc = cfg.sampling;
      sc.method = method;
      sc.steps = steps;
      auto g = gen(51);
      return sampling::fast_sample(sc, *s, score, {2000, 2}, s->sampling_eps(), g).x.to(torch::kFloat64);
    };
    auto truth = run("ddim", 2000);
    for (int64_t steps : {10, 20, 40}) {
      const double e_ddim = (run("ddim", steps) - truth).abs().mean().item<double>();
      const double e_dpm = (run("dpm_solver", steps) - truth).abs().mean().item<double>();
      const double e_heun = std::string(sde_name) == "vesde" ? (run("heun", steps) - truth).abs().mean().item<double>() : 0;
      BOOST_TEST_MESSAGE(sde_name << " " << steps << " steps: mean |x - x_ODE| DDIM " << e_ddim << ", DPM-Solver++ "
                                  << e_dpm << ", Heun " << e_heun);
      if (steps >= 20) BOOST_TEST(e_dpm * 3 < e_ddim);
      if (steps >= 20 && e_heun > 0) BOOST_TEST(e_heun * 3 < e_ddim);  // second order too (at twice the NFE)
    }
  }
}

// DDIM with eta = 1 is stochastic and still fits at 50 steps; two draws differ.
BOOST_AUTO_TEST_CASE(stochastic_ddim_fits_and_draws_noise) {
  auto cfg = two_classes("vpsde");
  auto s = sde::make_sde(cfg);
  models::AnalyticGMM gmm(cfg.model);
  models::ScoreFn score = [&](const torch::Tensor& x, const torch::Tensor& t) { return gmm.score(*s, x, t); };
  auto sc = cfg.sampling;
  sc.method = "ddim";
  sc.eta = 1.0;
  sc.steps = 50;
  auto g = gen(31);
  auto res = sampling::fast_sample(sc, *s, score, {4000, 2}, s->sampling_eps(), g);
  const auto f = fit(cfg, res.x);
  BOOST_TEST_MESSAGE("ddim eta 1, 50 steps: " << describe(f));
  BOOST_TEST(f.ok());
  sc.eta = 0.0;
  auto g1 = gen(31), g2 = gen(31);
  auto a = sampling::fast_sample(sc, *s, score, {8, 2}, s->sampling_eps(), g1).x;
  sc.eta = 1.0;
  auto b = sampling::fast_sample(sc, *s, score, {8, 2}, s->sampling_eps(), g2).x;
  BOOST_TEST(!torch::allclose(a, b));
}

BOOST_AUTO_TEST_SUITE_END()
