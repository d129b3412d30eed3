// `scorch bench sample`: samplers (PC, fast solvers, RK45) on a job's network with random
// weights: images/s, NFE and time per score evaluation; a long schedule can be timed over its
// first steps and scaled.
#include <CLI/CLI.hpp>
#include <chrono>

#include "scorch/cli/bench.h"
#include "scorch/cli/commands.h"
#include "scorch/cli/common.h"
#include "scorch/core/error.h"
#include "scorch/core/random.h"
#include "scorch/core/torch_compat.h"
#include "scorch/dist/backend.h"
#include "scorch/models/model.h"
#include "scorch/sampling/sampler.h"

namespace scorch::cli {

namespace {

using namespace bench;

struct SampleOptions {
  Common common;
  int64_t batch = 16, max_steps = 0;
  std::string methods, precision = "fp32", json;
};

// Thrown from the progress callback once --max-steps steps are timed.
struct EnoughSteps {};

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char ch : s + ",") {
    if (ch == ',') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else if (ch != ' ') {
      cur += ch;
    }
  }
  return out;
}

int bench_sample(const SampleOptions& o, dist::Communicator& comm) {
  SCORCH_CHECK(o.batch > 0 && o.max_steps >= 0, "bench sample: --batch must be positive, --max-steps >= 0");
  Config cfg = load_config(o.common.config, o.common.sets);
  const auto device = dist::choose_device(cfg.dist.device, comm);
  if (device.is_cuda()) compat::set_tf32(o.precision == "tf32");
  RandomScoreModel m(cfg, device);
  int64_t calls = 0;
  models::ScoreFn counted = [&](const torch::Tensor& x, const torch::Tensor& t) {
    ++calls;
    return m.score(x, t);
  };
  const auto methods = o.methods.empty() ? std::vector<std::string>{cfg.sampling.method} : split_list(o.methods);
  const auto shape = with_batch(o.batch, cfg.item_shape());
  if (comm.rank() == 0) {
    fmt::print("# scorch bench sample: {} ({}, {} parameters, random weights), batch {}, {} on {}\n",
               o.common.config.empty() ? "defaults" : o.common.config, cfg.model.name, models::count_parameters(*m.net),
               o.batch, o.precision, dist::describe_device(device));
    fmt::print("# images/s of the whole sampler; with --max-steps K a longer schedule is timed over its first K steps "
               "(median step after the first) and scaled to all its steps\n");
    fmt::print("{:<34} {:>7} {:>7} {:>10} {:>10} {:>11} {:>9}\n", "sampler", "steps", "timed", "NFE/item", "s/batch",
               "images/s", "ms/NFE");
  }
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& method : methods) {
    Config c = cfg;
    c.sampling.method = method;
    std::vector<clock_type::time_point> stamps;
    int64_t total = 0;
    sampling::Progress progress = [&](int64_t done, int64_t of) {
      if (device.is_cuda()) torch::cuda::synchronize();
      stamps.push_back(clock_type::now());
      total = of;
      if (o.max_steps > 0 && done >= o.max_steps && done < of) throw EnoughSteps{};
    };
    torch::NoGradGuard no_grad;
    sampling::Noise noise(make_generator(device, static_cast<uint64_t>(cfg.eval.seed)));
    calls = 0;
    comm.barrier();
    const auto t0 = clock_type::now();
    bool whole = true;
    int64_t nfe = 0;
    try {
      nfe = sampling::sample(c, *m.sde, counted, shape, noise, progress).nfe;
    } catch (const EnoughSteps&) {
      whole = false;
    }
    if (device.is_cuda()) torch::cuda::synchronize();
    double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
    const int64_t timed = static_cast<int64_t>(stamps.size());
    if (!whole) {
      std::vector<double> steps;
      for (size_t i = 1; i < stamps.size(); ++i) steps.push_back(std::chrono::duration<double>(stamps[i] - stamps[i - 1]).count());
      secs = median(steps) * static_cast<double>(total);
      nfe = calls * total / std::max<int64_t>(timed, 1);
    }
    secs = slowest(comm, secs);
    const std::string name = sampling::short_name(c);
    const double ips = static_cast<double>(o.batch) / secs;
    if (comm.rank() == 0) {
      fmt::print("{:<34} {:>7} {:>7} {:>10} {:>10.2f} {:>11.2f} {:>9.2f}\n", name, total > 0 ? fmt::format("{}", total) : "adaptive",
                 whole ? "all" : fmt::format("{}", timed), nfe, secs, ips, nfe > 0 ? secs / static_cast<double>(nfe) * 1e3 : 0.0);
    }
    rows.push_back({{"sampler", name}, {"method", method}, {"steps", total}, {"timed_steps", whole ? total : timed},
                    {"extrapolated", !whole}, {"nfe_per_item", nfe}, {"seconds_per_batch", secs}, {"images_per_s", ips}});
  }
  write_figures(o.json,
                {{"bench", "sample"}, {"config", o.common.config}, {"model", cfg.model.name},
                 {"parameters", models::count_parameters(*m.net)}, {"batch", o.batch}, {"precision", o.precision},
                 {"device", dist::describe_device(device)}, {"samplers", rows},
                 {"peak_gpu_mib", compat::cuda_peak_allocated(device) / 1048576.0}},
                comm);
  return 0;
}

}  // namespace

Command bench_sample_command() {
  return make_command<SampleOptions>(
      "sample", "images/s, NFE and time per score evaluation of samplers on a job's network",
      [](CLI::App& app, SampleOptions& o) {
        add_common(app, o.common, false);
        app.add_option("--batch", o.batch, "images per batch")->capture_default_str();
        app.add_option("--method", o.methods, "comma-separated sampling.method values (default: the job's)");
        app.add_option("--max-steps", o.max_steps,
                       "time a longer schedule over its first K steps and scale to all its steps (0: run all)")
            ->capture_default_str();
        app.add_option("--precision", o.precision, "fp32, or tf32 (TF32 tensor cores, CUDA)")
            ->check(CLI::IsMember({"fp32", "tf32"}))
            ->capture_default_str();
        app.add_option("--json", o.json, "also write the figures to this JSON file");
        app.footer("The network has random weights (no checkpoint needed): step counts and times are those of a trained "
                   "network, but an adaptive solver's (ode) NFE is not. Set sampler keys with --set sampling.*, "
                   "e.g. --set model.num_scales=1000 --set sampling.steps=20.");
      },
      bench_sample);
}

}  // namespace scorch::cli
