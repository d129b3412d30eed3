// FID, IS and KID (see eval/metrics.h).
#include "scorch/eval/metrics.h"

#include <cmath>

#include "scorch/core/error.h"
#include "scorch/core/log.h"
#include "scorch/core/random.h"

namespace scorch::eval {

void Moments::add(const torch::Tensor& f_in) {
  SCORCH_CHECK(f_in.dim() == 2, "feature statistics: features must be [B,F], got {}", c10::str(f_in.sizes()));
  auto f = f_in.to(torch::kCPU, torch::kFloat64);
  if (!sum.defined()) {
    sum = torch::zeros({f.size(1)}, torch::kFloat64);
    outer = torch::zeros({f.size(1), f.size(1)}, torch::kFloat64);
  }
  SCORCH_CHECK(f.size(1) == sum.size(0), "feature statistics: {} features per row after {}", f.size(1), sum.size(0));
  n += f.size(0);
  sum += f.sum(0);
  outer.addmm_(f.t(), f);
}

void Moments::allreduce(dist::Communicator& comm, int64_t F) {
  if (!sum.defined()) {
    sum = torch::zeros({F}, torch::kFloat64);
    outer = torch::zeros({F, F}, torch::kFloat64);
  }
  auto cnt = torch::tensor({n}, torch::kInt64);
  comm.allreduce_sum(cnt);
  comm.allreduce_sum(sum);
  comm.allreduce_sum(outer);
  n = cnt.item<int64_t>();
}

torch::Tensor Moments::mean() const {
  SCORCH_CHECK(n >= 1, "feature statistics of no items");
  return sum / static_cast<double>(n);
}

torch::Tensor Moments::covariance() const {
  SCORCH_CHECK(n >= 2, "a covariance needs at least 2 items (have {})", n);
  auto mu = mean();
  auto c = (outer - static_cast<double>(n) * torch::outer(mu, mu)) / static_cast<double>(n - 1);
  return (c + c.t()) / 2;  // exactly symmetric
}

namespace {

// tr sqrt(S1 S2) through the symmetric sqrt(S1) S2 sqrt(S1); also the largest imaginary part.
std::pair<double, double> trace_sqrt_product(const torch::Tensor& s1, const torch::Tensor& s2) {
  auto [w, v] = at::linalg_eigh(s1, "L");
  auto root = v.mm(torch::diag(w.clamp_min(0).sqrt())).mm(v.t());
  auto m = root.mm(s2).mm(root);
  auto lam = at::linalg_eigvalsh((m + m.t()) / 2, "L");
  const double tr = lam.clamp_min(0).sqrt().sum().item<double>();
  const double imag = std::sqrt(std::max(0.0, -lam.min().item<double>()));
  return {tr, imag};
}

}  // namespace

Frechet frechet_distance(const torch::Tensor& mu1_in, const torch::Tensor& sigma1_in, const torch::Tensor& mu2_in,
                         const torch::Tensor& sigma2_in, double eps) {
  auto mu1 = mu1_in.to(torch::kCPU, torch::kFloat64).flatten(), mu2 = mu2_in.to(torch::kCPU, torch::kFloat64).flatten();
  auto s1 = sigma1_in.to(torch::kCPU, torch::kFloat64), s2 = sigma2_in.to(torch::kCPU, torch::kFloat64);
  SCORCH_CHECK(mu1.sizes() == mu2.sizes(), "FID: the two means have different lengths ({} and {})", mu1.size(0),
               mu2.size(0));
  const int64_t F = mu1.size(0);
  SCORCH_CHECK(s1.dim() == 2 && s2.dim() == 2 && s1.size(0) == F && s1.size(1) == F && s2.size(0) == F && s2.size(1) == F,
               "FID: covariances must be [{0},{0}] (got {1} and {2})", F, c10::str(s1.sizes()), c10::str(s2.sizes()));
  SCORCH_CHECK(torch::isfinite(mu1).all().item<bool>() && torch::isfinite(mu2).all().item<bool>() &&
               torch::isfinite(s1).all().item<bool>() && torch::isfinite(s2).all().item<bool>(),
               "FID: the statistics hold NaN or Inf");
  Frechet out;
  double tr = 0, imag = 0;
  bool ok = true;
  try {
    std::tie(tr, imag) = trace_sqrt_product(s1, s2);
    ok = std::isfinite(tr);
  } catch (const std::exception&) {
    ok = false;
  }
  if (!ok) {
    spdlog::warn("FID: the product of the covariances is singular; adding {} to the diagonals (as pytorch-fid)", eps);
    auto off = torch::eye(F, torch::kFloat64) * eps;
    std::tie(tr, imag) = trace_sqrt_product(s1 + off, s2 + off);
    out.used_eps = true;
  }
  SCORCH_CHECK(imag <= 1e-3, "FID: the square root of the covariance product has an imaginary component {} (above "
               "1e-3, where pytorch-fid also refuses)", imag);
  out.max_imaginary = imag;
  const auto diff = mu1 - mu2;
  out.value = diff.dot(diff).item<double>() + s1.trace().item<double>() + s2.trace().item<double>() - 2 * tr;
  return out;
}

MeanStd inception_score(const torch::Tensor& logits, int64_t splits) {
  SCORCH_CHECK(logits.dim() == 2 && logits.size(0) >= splits && splits >= 1,
               "Inception Score: logits must be [N,K] with N >= splits ({}), got {}", splits, c10::str(logits.sizes()));
  auto lp = torch::log_softmax(logits.to(torch::kCPU, torch::kFloat64), 1);
  const int64_t N = lp.size(0);
  std::vector<double> scores;
  for (int64_t k = 0; k < splits; ++k) {
    auto part = lp.slice(0, k * N / splits, (k + 1) * N / splits);
    auto p = part.exp();
    auto log_py = p.mean(0).log();
    auto kl = (p * (part - log_py)).sum(1).mean();
    scores.push_back(std::exp(kl.item<double>()));
  }
  auto t = torch::tensor(scores, torch::kFloat64);
  return {t.mean().item<double>(), splits > 1 ? t.std(/*unbiased=*/false).item<double>() : 0.0};
}

MeanStd kernel_inception_distance(const torch::Tensor& a_in, const torch::Tensor& b_in, int64_t subsets,
                                  int64_t subset_size, uint64_t seed) {
  auto a = a_in.to(torch::kCPU, torch::kFloat64), b = b_in.to(torch::kCPU, torch::kFloat64);
  SCORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(1), "KID: features must be [N,F] and [M,F] (got {} "
               "and {})", c10::str(a.sizes()), c10::str(b.sizes()));
  const int64_t m = std::min({subset_size, a.size(0), b.size(0)});
  SCORCH_CHECK(m >= 2, "KID needs at least 2 items on each side");
  const double d = static_cast<double>(a.size(1));
  auto kernel = [&](const torch::Tensor& x, const torch::Tensor& y) { return (x.mm(y.t()) / d + 1).pow(3); };
  auto gen = make_generator(derive_seed(seed, Stream::kKid));
  std::vector<double> v;
  for (int64_t s = 0; s < subsets; ++s) {
    auto x = a.index_select(0, torch::randperm(a.size(0), gen).slice(0, 0, m));
    auto y = b.index_select(0, torch::randperm(b.size(0), gen).slice(0, 0, m));
    auto kxx = kernel(x, x), kyy = kernel(y, y), kxy = kernel(x, y);
    const double md = static_cast<double>(m);
    const double xx = (kxx.sum() - kxx.diagonal().sum()).item<double>() / (md * (md - 1));
    const double yy = (kyy.sum() - kyy.diagonal().sum()).item<double>() / (md * (md - 1));
    v.push_back(xx + yy - 2 * kxy.sum().item<double>() / (md * md));
  }
  auto t = torch::tensor(v, torch::kFloat64);
  return {t.mean().item<double>(), subsets > 1 ? t.std(/*unbiased=*/false).item<double>() : 0.0};
}

}  // namespace scorch::eval
