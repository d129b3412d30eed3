// `scorch sample`: eval.num_samples samples with the EMA weights, sharded over ranks in
// fixed chunks of eval.batch_size whose random seeds depend only on the chunk index, so the
// output does not depend on the number of ranks; rank 0 gathers and writes the files.
#include <CLI/CLI.hpp>

#include "scorch/cli/commands.h"
#include "scorch/cli/common.h"
#include "scorch/core/error.h"
#include "scorch/core/log.h"
#include "scorch/core/random.h"
#include "scorch/data/dataset.h"
#include "scorch/dist/sharding.h"
#include "scorch/sampling/sampler.h"

namespace scorch::cli {

namespace {

int sample(const Common& opt, dist::Communicator& comm) {
  auto l = load_score_model(opt, comm);
  const auto& cfg = l.r.cfg;
  const int64_t n = cfg.eval.num_samples, chunk = cfg.eval.batch_size;
  const int64_t chunks = (n + chunk - 1) / chunk;
  auto mine = dist::shard_range(chunks, comm.rank(), comm.size());
  const int64_t N = cfg.model.num_scales;
  const std::string sampler = cfg.sampling.method == "ode"
                                  ? fmt::format("ode:rk45(rtol {}, atol {})", cfg.sampling.rtol, cfg.sampling.atol)
                                  : fmt::format("pc:{}:{}", cfg.sampling.predictor, cfg.sampling.corrector);
  spdlog::info("sampling {} items with {}, N = {}, {} ranks, chunks of {}", n, sampler, N, comm.size(), chunk);
  std::vector<torch::Tensor> out;
  int64_t nfe = 0;
  Progress prog(fmt::format("sampling (rank 0: {} chunks)", mine.size()), std::max<int64_t>(mine.size() * N, 1));
  for (int64_t c = mine.begin; c < mine.end; ++c) {
    const int64_t b = std::min(chunk, n - c * chunk);
    auto gen = make_generator(l.device, derive_seed(static_cast<uint64_t>(cfg.seed), Stream::kSampleChunk,
                                                    {static_cast<uint64_t>(c)}));
    auto res = sampling::sample(cfg, *l.sde, l.score, with_batch(b, cfg.item_shape()), gen,
                                [&](int64_t i, int64_t) { prog.tick((c - mine.begin) * N + i); });
    nfe = res.nfe;
    out.push_back(res.x.cpu());
  }
  auto local = out.empty() ? torch::empty(with_batch(0, cfg.item_shape())) : torch::cat(out);
  if (cfg.is_image_data()) local = data::unscale(local, cfg.data.centered);
  auto all = comm.gather_rows(local.to(torch::kFloat32).contiguous(), 0);
  if (comm.rank() == 0) {
    const auto bad = (~torch::isfinite(all.reshape({all.size(0), -1})).all(1)).sum().item<int64_t>();
    SCORCH_CHECK(bad == 0, "{} of {} samples hold NaN or Inf (the model at {} diverged or the sampler is unstable): "
                 "nothing written", bad, all.size(0), l.r.ckpt.empty() ? "step 0" : l.r.ckpt);
    write_samples(fmt::format("{}/samples/samples_{:09d}.h5", l.r.workdir, l.step), all, cfg, l.step, nfe, sampler);
  }
  return 0;
}

}  // namespace

Command sample_command() {
  return make_command<Common>(
      "sample", "draw eval.num_samples samples (EMA weights) into <workdir>/samples/",
      [](CLI::App& app, Common& opt) {
        add_common(app, opt, true);
        app.footer("Sampler: sampling.method = pc (sampling.predictor, sampling.corrector, sampling.snr) or ode "
                   "(sampling.rtol, sampling.atol); eval.batch_size items per chunk, whose seed depends only on the chunk "
                   "index: the output is the same on any number of ranks (of one device type).");
      },
      [](const Common& opt, dist::Communicator& comm) { return sample(opt, comm); });
}

}  // namespace scorch::cli
