// Helpers of the farm suites (cli/test_farm.cpp, cli/test_farm_eval.cpp): the 2-D mixture
// the farm samples without training, a job file for it, numbers read from the binary's
// output and records, the index check of a sample run, and a small TorchScript feature net;
// and the headers both files use.
#pragma once
#include <ATen/CPUGeneratorImpl.h>
#include <torch/script.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>

#include "cli/cli_common.h"
#include "common.h"
#include "scorch/cli/evaluation.h"
#include "scorch/core/random.h"
#include "scorch/data/dataset.h"
#include "scorch/eval/metrics.h"
#include "scorch/io/hdf5.h"
#include "scorch/io/npz.h"
#include "scorch/likelihood/likelihood.h"
#include "scorch/models/analytic_gmm.h"
#include "scorch/sde/sde.h"

namespace scorch::test::farm_helpers {

// The 2-D mixture (no training needed, a per-sample exact score) sampled by the farm.
inline Config mixture(int64_t n, int64_t batch) {
  Config c = test::mixture_2d();
  c.model.num_scales = 50;
  c.eval.num_samples = n;
  c.eval.batch_size = batch;
  c.sampling.predictor = "reverse_diffusion";
  c.sampling.corrector = "langevin";  // its step uses batch means: the batch is the unit of work
  return c;
}

inline std::string job(const test::TempDir& d, const Config& c, const std::string& name = "job.toml") {
  test::write_file(d / name, to_toml(c));
  return " --config " + d / name;
}

inline double last_number(const std::string& out, const std::string& key) {
  std::smatch m;
  BOOST_REQUIRE_MESSAGE(std::regex_search(out, m, std::regex(key + R"( (-?[0-9.]+(e[-+]?[0-9]+)?))")), out);
  return std::stod(m[1]);
}

// A result at full precision from the JSON record an evaluation names ("provenance -> X").
inline double record_result(const std::string& out, const std::string& metric) {
  std::smatch m;
  BOOST_REQUIRE_MESSAGE(std::regex_search(out, m, std::regex(R"(provenance -> (\S+\.json))")), out);
  std::ifstream in(m[1].str());
  return nlohmann::json::parse(in)["results"][metric]["value"].get<double>();
}

// Every index of the newest run exactly once.
inline void check_unique_indices(const std::string& workdir, int64_t n) {
  auto idx = test::read_sample_run(workdir, "index");
  BOOST_TEST(idx.size(0) == n);
  BOOST_TEST(torch::equal(std::get<0>(idx.sort()), torch::arange(n, torch::kInt64)));
}

// A feature network in TorchScript, built here: [B,3,8,8] -> (tanh(x W^T) [B,12], logits [B,4]).
inline std::string feature_net(const test::TempDir& d) {
  torch::jit::Module m("FeatNet");
  auto g = at::make_generator<at::CPUGeneratorImpl>(3);
  m.register_parameter("w", torch::randn({12, 3 * 8 * 8}, g) * 0.1, false);
  m.register_parameter("v", torch::randn({4, 12}, g), false);
  m.define(R"(
def forward(self, x):
    f = torch.tanh(torch.matmul(torch.flatten(x, 1), self.w.t()))
    return (f, torch.matmul(f, self.v.t()))
)");
  m.save(d / "feat.pt");
  return d / "feat.pt";
}

}  // namespace scorch::test::farm_helpers
