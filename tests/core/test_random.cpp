// Random streams: Philox4x32-10 reproduces Random123's published known-answer vectors; the
// counter-based row streams have the right moments, are independent across rows, lanes and
// keys, and do not depend on how much of a lane is drawn.
#include "common.h"
#include "scorch/core/random.h"

using namespace scorch;

BOOST_AUTO_TEST_SUITE(random_streams)

BOOST_AUTO_TEST_CASE(philox_known_answers) {
  using A4 = std::array<uint32_t, 4>;
  BOOST_TEST((philox4x32_10({0, 0, 0, 0}, {0, 0}) == A4{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}));
  BOOST_TEST((philox4x32_10({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff}) ==
              A4{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}));
  BOOST_TEST((philox4x32_10({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}) ==
              A4{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}));
}

BOOST_AUTO_TEST_CASE(row_streams_have_the_right_moments_and_are_independent) {
  const int64_t rows = 2000, D = 784;
  auto z = torch::empty({rows, D});
  auto u = torch::empty({rows, D});
  for (int64_t r = 0; r < rows; ++r) {
    CounterRng rng(derive_seed(42, Stream::kTrainRow, {7}), static_cast<uint64_t>(r));
    rng.normal(z[r].data_ptr<float>(), D, 1);
    rng.uniform(u[r].data_ptr<float>(), D, 2);
  }
  const double n = static_cast<double>(rows * D);
  // Means within 5 standard errors, variances within 5 standard errors.
  BOOST_TEST(std::abs(z.mean().item<double>()) < 5 / std::sqrt(n));
  BOOST_TEST(std::abs(z.var().item<double>() - 1.0) < 5 * std::sqrt(2.0 / n));
  BOOST_TEST(std::abs((z.pow(4).mean().item<double>()) - 3.0) < 5 * std::sqrt(96.0 / n));  // kurtosis of N(0,1)
  BOOST_TEST(std::abs(u.mean().item<double>() - 0.5) < 5 * std::sqrt(1.0 / 12 / n));
  BOOST_TEST(u.min().item<double>() >= 0.0);
  BOOST_TEST(u.max().item<double>() < 1.0);
  // Correlations between neighbouring rows, between lanes of a row, and between the
  // Box-Muller partners inside a row are those of independent draws.
  auto zc = z - z.mean(1, true);
  auto zn = zc / zc.norm(2, 1, true);
  auto adjacent = (zn.slice(0, 0, -1) * zn.slice(0, 1)).sum(1);
  BOOST_TEST(std::abs(adjacent.mean().item<double>()) < 5 / std::sqrt(static_cast<double>(D * (rows - 1))));
  auto lanes = torch::corrcoef(torch::stack({z.flatten(), u.flatten()}))[0][1].item<double>();
  BOOST_TEST(std::abs(lanes) < 5 / std::sqrt(n));
  auto partners = torch::corrcoef(torch::stack({z.select(1, 0), z.select(1, 1)}))[0][1].item<double>();
  BOOST_TEST(std::abs(partners) < 5 / std::sqrt(static_cast<double>(rows)));
  // A histogram of the normals against the exact bin probabilities (chi-square, 20 bins).
  auto hist = torch::histc(z, 20, -4, 4);
  double chi2 = 0;
  for (int k = 0; k < 20; ++k) {
    const double a = -4 + 0.4 * k, b = a + 0.4;
    const double p = 0.5 * (std::erf(b / std::sqrt(2.0)) - std::erf(a / std::sqrt(2.0)));
    const double e = p * n;
    chi2 += std::pow(hist[k].item<double>() - e, 2) / e;
  }
  BOOST_TEST_INFO("chi2 = " << chi2);
  BOOST_TEST(chi2 < 50);  // 19 degrees of freedom: P(chi2 > 50) < 1e-4
}

BOOST_AUTO_TEST_CASE(streams_are_functions_of_key_row_lane_and_index) {
  CounterRng a(123, 5), b(123, 5), other_row(123, 6), other_key(124, 5);
  std::vector<float> x(10), y(3), w(10), v(10);
  a.normal(x.data(), 10, 1);
  b.normal(y.data(), 3, 1);  // a shorter draw is a prefix of the longer one
  for (int i = 0; i < 3; ++i) BOOST_TEST(x[static_cast<size_t>(i)] == y[static_cast<size_t>(i)]);
  other_row.normal(w.data(), 10, 1);
  other_key.normal(v.data(), 10, 1);
  BOOST_TEST(x != w);
  BOOST_TEST(x != v);
  BOOST_TEST(a.bits(0, 2) == b.bits(0, 2));
  BOOST_TEST(a.bits(0, 2) != a.bits(1, 2));
  // below(n) covers [0, n) evenly: 1000 levels, 100000 draws.
  std::vector<int64_t> count(10, 0);
  for (uint64_t r = 0; r < 100000; ++r) ++count[static_cast<size_t>(CounterRng(9, r).below(1000, 0, 2) / 100)];
  for (auto c : count) BOOST_TEST(std::abs(c - 10000) < 500);
}

BOOST_AUTO_TEST_SUITE_END()
