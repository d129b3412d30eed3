// The configuration keys, declared once: each binds a name to a Config member with its
// help text, range or choices (names from the registry, core/names.h) and whether it is
// fixed for a trained network. Defaults are the members' initialisers (config.h, the
// reference's values). Also the checks that span several keys (validate), the values that
// follow from others (derive), and the item shape.
#include <algorithm>
#include <cmath>

#include "config_schema.h"
#include "scorch/core/error.h"
#include "scorch/core/names.h"

namespace scorch {
namespace config_schema {

std::vector<Field> schema(Config& c) {
  std::vector<Field> f;
  auto add = [&f](std::string key, FieldPtr p, std::string help) -> Field& {
    f.push_back(Field{.key = std::move(key), .ptr = p, .help = std::move(help)});
    return f.back();
  };
  f.reserve(96);
  add("seed", &c.seed, "global random seed").min(0);

  add("training.sde", &c.training.sde, "SDE: " + names::joined(names::sdes())).one_of(names::sdes())
      .fix();
  add("training.loss", &c.training.loss,
      "continuous-time objective: dsm (denoising score matching) | ssm (sliced score matching)")
      .one_of(names::losses())
      .fix();
  add("training.ssm_projection", &c.training.ssm_projection, "ssm: projection vectors: rademacher | gaussian")
      .one_of({"rademacher", "gaussian"})
      .fix();
  add("training.label_dropout", &c.training.label_dropout,
      "with model.num_classes: probability of replacing a row's class by the null label (classifier-free guidance)")
      .min(0)
      .max(1);
  add("training.batch_size", &c.training.batch_size, "global batch size, split over ranks").min(1);
  add("training.n_iters", &c.training.n_iters, "number of optimiser steps").min(0);
  add("training.snapshot_freq", &c.training.snapshot_freq, "checkpoint every N steps").min(1);
  add("training.snapshot_sampling", &c.training.snapshot_sampling,
      "at each snapshot, draw samples with the EMA weights (sampling.*) into <workdir>/samples/snapshot_<step>.png "
      "and TensorBoard");
  add("training.snapshot_samples", &c.training.snapshot_samples,
      "samples per snapshot (the same noise every time: grids compare across steps)")
      .min(1);
  add("training.log_freq", &c.training.log_freq, "progress line every N steps").min(1);
  add("training.continuous", &c.training.continuous, "continuous-time DSM; false: SMLD (vesde) / DDPM (vpsde)")
      .fix();
  add("training.reduce_mean", &c.training.reduce_mean, "loss: mean over data dims (else 0.5*sum)")
      .fix();
  add("training.likelihood_weighting", &c.training.likelihood_weighting, "loss weight g(t)^2 instead of sigma^2")
      .fix();
  add("training.grad_accum", &c.training.grad_accum,
      "micro-batches per optimiser step: each rank computes its share of batch_size in this many passes")
      .min(1);
  add("training.precision", &c.training.precision, "fp32 | bf16 (autocast of the forward pass; norms and loss in fp32)")
      .one_of({"fp32", "bf16"});
  add("training.channels_last", &c.training.channels_last, "NHWC (channels-last) memory layout for image networks");
  add("training.tf32", &c.training.tf32, "TF32 tensor-core math for float32 on Ampere and later GPUs");
  add("training.snapshot_keep_freq", &c.training.snapshot_keep_freq,
      "with checkpoint.keep: never delete checkpoints whose step is a multiple of N (0: none)")
      .min(0);
  add("training.on_nonfinite", &c.training.on_nonfinite,
      "a step whose gradients hold NaN/Inf: skip (not applied, counted) | stop (the run fails naming the step)")
      .one_of({"skip", "stop"});
  add("training.max_nonfinite", &c.training.max_nonfinite,
      "on_nonfinite = skip: fail after this many non-finite steps in a row")
      .min(1);

  add("sampling.method", &c.sampling.method,
      "sampler: pc (predictor-corrector) | ode (probability flow, RK45) | ddim | dpm_solver (DPM-Solver++ 2M) | "
      "heun (EDM, VE only)")
      .one_of(names::methods());
  add("sampling.predictor", &c.sampling.predictor, "predictor: " + names::joined(names::predictors()))
      .one_of(names::predictors());
  add("sampling.corrector", &c.sampling.corrector, "corrector: " + names::joined(names::correctors()))
      .one_of(names::correctors());
  add("sampling.steps", &c.sampling.steps, "ddim | dpm_solver | heun: number of steps (NFE: steps; heun 2 steps)")
      .min(1);
  add("sampling.eta", &c.sampling.eta, "ddim: stochasticity (0: deterministic DDIM, 1: DDPM-like ancestral)").min(0);
  add("sampling.guidance_scale", &c.sampling.guidance_scale,
      "classifier-free guidance w: score = (1+w) s(x,t,c) - w s(x,t,null) (needs model.num_classes)")
      .min(0);
  add("sampling.class_label", &c.sampling.class_label,
      "class of conditional samples: a label 0..num_classes-1 (7 or \"7\"), 'balanced' (sample i gets i mod "
      "num_classes), or 'none' (unconditional)")
      .or_integer();
  add("sampling.classifier", &c.sampling.classifier,
      "classifier guidance: a noise-conditional classifier checkpoint (train-classifier --noise-conditional), or "
      "'exact' for analytic_gmm's posterior");
  add("sampling.classifier_scale", &c.sampling.classifier_scale,
      "classifier guidance: score + scale * grad_x log p(c | x_t, t)")
      .min(0);
  add("sampling.snr", &c.sampling.snr, "corrector signal-to-noise ratio").min(0, true);
  add("sampling.n_steps_each", &c.sampling.n_steps_each, "corrector steps per noise level").min(1);
  add("sampling.noise_removal", &c.sampling.noise_removal, "return the noise-free mean of the last step");
  add("sampling.probability_flow", &c.sampling.probability_flow, "predictor on the probability-flow ODE");
  add("sampling.rtol", &c.sampling.rtol, "relative tolerance of the ODE sampler (RK45)").min(0, true);
  add("sampling.atol", &c.sampling.atol, "absolute tolerance of the ODE sampler (RK45)").min(0, true);

  add("model.name", &c.model.name,
      "network: ncsnpp (NCSN++/DDPM++) | unet (small U-Net) | mlp (points) | analytic_gmm (exact score)")
      .one_of(names::models())
      .fix();
  add("model.num_classes", &c.model.num_classes,
      "class-conditional network with this many classes (0: unconditional); label num_classes is the null label")
      .min(0)
      .fix();
  add("model.nf", &c.model.nf, "base channel count / hidden width").min(1)
      .fix();
  add("model.ch_mult", &c.model.ch_mult, "channel multiplier per resolution").min(1)
      .fix();
  add("model.num_res_blocks", &c.model.num_res_blocks, "residual blocks per resolution").min(1)
      .fix();
  add("model.attn_resolutions", &c.model.attn_resolutions, "resolutions with self-attention").min(1)
      .fix();
  add("model.dropout", &c.model.dropout, "dropout probability").min(0).max(1, true);
  add("model.embedding_type", &c.model.embedding_type, "time embedding: positional | fourier")
      .one_of({"positional", "fourier"})
      .fix();
  add("model.fourier_scale", &c.model.fourier_scale, "std of the fixed Fourier features").min(0, true)
      .fix();
  add("model.scale_by_sigma", &c.model.scale_by_sigma, "VE: divide the network output by sigma")
      .fix();
  add("model.conditional", &c.model.conditional, "ncsnpp: condition residual blocks on the time embedding")
      .fix();
  add("model.resamp_with_conv", &c.model.resamp_with_conv, "ncsnpp: convolutions in up/down-sampling layers")
      .fix();
  add("model.fir", &c.model.fir, "ncsnpp: FIR-filtered up/down-sampling (StyleGAN2)")
      .fix();
  add("model.fir_kernel", &c.model.fir_kernel, "ncsnpp: 1-D FIR kernel, applied separably").min(0)
      .fix();
  add("model.skip_rescale", &c.model.skip_rescale, "ncsnpp: divide residual sums by sqrt(2)")
      .fix();
  add("model.resblock_type", &c.model.resblock_type, "ncsnpp: residual block: biggan | ddpm")
      .one_of({"biggan", "ddpm"})
      .fix();
  add("model.progressive", &c.model.progressive, "ncsnpp: output pyramid: none | output_skip | residual")
      .one_of({"none", "output_skip", "residual"})
      .fix();
  add("model.progressive_input", &c.model.progressive_input, "ncsnpp: input pyramid: none | input_skip | residual")
      .one_of({"none", "input_skip", "residual"})
      .fix();
  add("model.progressive_combine", &c.model.progressive_combine, "ncsnpp: input_skip combiner: sum | cat")
      .one_of({"sum", "cat"})
      .fix();
  add("model.init_scale", &c.model.init_scale, "ncsnpp: init scale of each block's last layer (0: 1e-10)").min(0);
  add("model.nonlinearity", &c.model.nonlinearity, "ncsnpp: activation: swish | relu | lrelu | elu")
      .one_of({"swish", "relu", "lrelu", "elu"})
      .fix();
  add("model.ema_rate", &c.model.ema_rate, "EMA decay of the weights").min(0).max(1);
  add("model.sigma_min", &c.model.sigma_min, "VE sigma_min").min(0, true)
      .fix();
  add("model.sigma_max", &c.model.sigma_max, "VE sigma_max").min(0, true)
      .fix();
  add("model.beta_min", &c.model.beta_min, "VP beta_min").min(0, true)
      .fix();
  add("model.beta_max", &c.model.beta_max, "VP beta_max").min(0, true)
      .fix();
  add("model.num_scales", &c.model.num_scales, "N: discretisation / sampler steps").min(2)
      .fix();
  add("model.gmm_means", &c.model.gmm_means, "analytic_gmm: component means [K][D]")
      .fix();
  add("model.gmm_stds", &c.model.gmm_stds, "analytic_gmm: component stds [K] (isotropic)").min(0, true)
      .fix();
  add("model.gmm_weights", &c.model.gmm_weights, "analytic_gmm: component weights [K]").min(0, true)
      .fix();

  add("optim.optimizer", &c.optim.optimizer, "optimiser: Adam").one_of({"Adam"});
  add("optim.lr", &c.optim.lr, "learning rate").min(0, true);
  add("optim.beta1", &c.optim.beta1, "Adam beta1").min(0).max(1, true);
  add("optim.beta2", &c.optim.beta2, "Adam beta2").min(0).max(1, true);
  add("optim.eps", &c.optim.eps, "Adam epsilon").min(0, true);
  add("optim.weight_decay", &c.optim.weight_decay, "L2 weight decay (Adam, coupled)").min(0);
  add("optim.warmup", &c.optim.warmup, "linear lr warm-up steps").min(0);
  add("optim.grad_clip", &c.optim.grad_clip, "gradient-norm clip (negative: off)");

  add("data.dataset", &c.data.dataset, "dataset name (informational)");
  add("data.path", &c.data.path, "training data file (HDF5)");
  add("data.eval_path", &c.data.eval_path, "evaluation data file (default: data.path)");
  add("data.image_size", &c.data.image_size, "image height = width").min(1)
      .fix();
  add("data.num_channels", &c.data.num_channels, "image channels").min(1)
      .fix();
  add("data.dim", &c.data.dim, "point-data dimension (0: image data)").min(0)
      .fix();
  add("data.centered", &c.data.centered, "scale images to [-1,1] instead of [0,1]")
      .fix();
  add("data.uniform_dequantization", &c.data.uniform_dequantization, "add U[0,1)/256 to 8-bit data in training");
  add("data.random_flip", &c.data.random_flip, "random horizontal flips in training");
  add("data.source", &c.data.source,
      "where the data live: memory (each rank a copy) | node_shared (one copy per node, MPI shared memory) | stream "
      "(read from the file batch by batch) | auto (by size)")
      .one_of(names::data_sources());
  add("data.cache_mb", &c.data.cache_mb, "stream: HDF5 chunk cache per rank (MiB)").min(0);
  add("data.prefetch", &c.data.prefetch, "batches a background thread prepares ahead (0: none)").min(0);

  add("eval.batch_size", &c.eval.batch_size, "items per farm batch: the unit of work one rank computes at once (sample, eval, encode/decode, inpaint)").min(1);
  add("eval.num_samples", &c.eval.num_samples, "samples generated by `scorch sample`").min(1);
  add("eval.bpd_num_images", &c.eval.bpd_num_images, "images for bits/dim (0: whole split)").min(0);
  add("eval.bpd_num_repeats", &c.eval.bpd_num_repeats, "bits/dim repeats to average").min(1);
  add("eval.rtol", &c.eval.rtol, "relative tolerance of the likelihood ODE (RK45)").min(0, true);
  add("eval.atol", &c.eval.atol, "absolute tolerance of the likelihood ODE (RK45)").min(0, true);
  add("eval.hutchinson", &c.eval.hutchinson, "Hutchinson-Skilling noise: rademacher | gaussian")
      .one_of({"rademacher", "gaussian"});
  add("eval.seed", &c.eval.seed, "seed of the samples' noise streams: sample i draws from stream (seed, i)");
  add("eval.seed_sets", &c.eval.seed_sets,
      "independent sample sets of eval.num_samples each (EDM's seeds 0-49999, 50000-99999, ...): set k holds "
      "samples k*n .. (k+1)*n-1, each its own resumable run; eval fid gives each set, their minimum, mean and "
      "standard deviation")
      .min(1);
  add("eval.balance", &c.eval.balance,
      "how the farm deals batches: dynamic (a static half, then claimed one by one) | static (all up front)")
      .one_of({"dynamic", "static"});
  add("eval.feature_net", &c.eval.feature_net,
      "FID/IS/KID feature network: a TorchScript file (.pt) or a `scorch train-classifier` checkpoint (.h5)");
  add("eval.is_splits", &c.eval.is_splits, "Inception Score splits").min(1);
  add("eval.kid_subsets", &c.eval.kid_subsets, "KID: number of random subsets").min(1);
  add("eval.kid_subset_size", &c.eval.kid_subset_size, "KID: subset size (capped at the smaller set)").min(2);

  add("classifier.nf", &c.classifier.nf, "classifier: channels of the first convolution").min(1);
  add("classifier.features", &c.classifier.features, "classifier: width of the feature (penultimate) layer").min(1);
  add("classifier.epochs", &c.classifier.epochs, "classifier: passes over the training data").min(1);
  add("classifier.batch_size", &c.classifier.batch_size, "classifier: global batch size").min(1);
  add("classifier.lr", &c.classifier.lr, "classifier: Adam learning rate").min(0, true);

  add("dist.device", &c.dist.device, "auto | cpu | cuda (one GPU per rank, chosen by the node-local rank)")
      .one_of({"auto", "cpu", "cuda"});
  add("dist.backend", &c.dist.backend, "gradient collectives: auto (NCCL for GPUs when built with it) | mpi | nccl")
      .one_of({"auto", "mpi", "nccl"});
  add("dist.bucket_mb", &c.dist.bucket_mb, "gradient bucket size in MiB").min(0, true);
  add("dist.first_bucket_mb", &c.dist.first_bucket_mb, "size of the first (earliest) gradient bucket in MiB")
      .min(0, true);
  add("dist.overlap", &c.dist.overlap, "all-reduce gradient buckets while backward runs (false: after it)");
  add("dist.check_every", &c.dist.check_every, "compare parameter checksums across ranks every N steps (0: never)")
      .min(0);
  add("dist.timeout_s", &c.dist.timeout_s,
      "seconds one collective may wait (MPI or NCCL) before the watchdog aborts the job (a dead, hung or unreachable "
      "rank); longer than any rank computes while another waits (a farm batch, a checkpoint)")
      .min(0, true);

  add("ema.sigma_rels", &c.ema.sigma_rels,
      "power-function EMA profiles (EDM2) kept besides model.ema_rate's, by relative width, e.g. [0.05, 0.10]; "
      "their snapshots let `scorch ema` reconstruct any profile after training (empty: none)")
      .fix();
  add("ema.snapshot_kimg", &c.ema.snapshot_kimg,
      "a snapshot of every ema.sigma_rels profile per this many thousand training images (EDM2: 8 Mi = 8388.608)")
      .min(0, true);
  add("ema.snapshot_keep", &c.ema.snapshot_keep, "keep the newest K EMA snapshots (0: all)").min(0);
  add("checkpoint.keep", &c.checkpoint.keep,
      "keep the newest K checkpoints (0: all), plus every training.snapshot_keep_freq-th step's")
      .min(0);
  add("checkpoint.async", &c.checkpoint.async,
      "write checkpoints in a background thread (training stalls only for the copy to host memory)");
  return f;
}

}  // namespace config_schema

using config_schema::Field;
using config_schema::FieldPtr;

std::vector<int64_t> Config::item_shape() const {
  if (data.dim > 0) return {data.dim};
  return {data.num_channels, data.image_size, data.image_size};
}

void derive(Config& cfg) {
  // analytic_gmm on point data: the dimension follows from the means when data.dim is unset.
  if (cfg.model.name == "analytic_gmm" && cfg.data.dim == 0 && !cfg.model.gmm_means.empty()) {
    cfg.data.dim = static_cast<int64_t>(cfg.model.gmm_means[0].size());
  }
}

void validate(const Config& c) {
  const auto& sc = c.sampling;
  // Every size derived from these keys is a product of them: refused here when it cannot be
  // represented (a wrapped product passed the disk check and grew without bound).
  int64_t item = 1;
  if (c.is_image_data()) {
    item = checked_mul(checked_mul(c.data.image_size, c.data.image_size,
                                   fmt::format("data.image_size = {} squared", c.data.image_size)),
                       c.data.num_channels, fmt::format("data.image_size^2 x data.num_channels = {}", c.data.num_channels));
  } else {
    item = std::max<int64_t>(c.data.dim, 1);
  }
  // Sample indices are noise-stream ids: all sets' samples must be addressable.
  const int64_t samples =
      checked_mul(c.eval.num_samples, c.eval.seed_sets,
                  fmt::format("eval.num_samples = {} x eval.seed_sets = {}", c.eval.num_samples, c.eval.seed_sets),
                  int64_t{1} << 53);
  checked_mul(samples, item,
              fmt::format("eval.num_samples = {} x eval.seed_sets = {} x {} values per sample", c.eval.num_samples,
                          c.eval.seed_sets, item));
  checked_mul(c.eval.batch_size, item, fmt::format("eval.batch_size = {} x {} values per item", c.eval.batch_size, item));
  checked_mul(c.training.batch_size, item,
              fmt::format("training.batch_size = {} x {} values per item", c.training.batch_size, item));
  checked_mul(c.eval.bpd_num_images, c.eval.bpd_num_repeats,
              fmt::format("eval.bpd_num_images = {} x eval.bpd_num_repeats = {}", c.eval.bpd_num_images,
                          c.eval.bpd_num_repeats));
  checked_mul(c.eval.kid_subsets, c.eval.kid_subset_size,
              fmt::format("eval.kid_subsets = {} x eval.kid_subset_size = {}", c.eval.kid_subsets,
                          c.eval.kid_subset_size));
  SCORCH_CHECK(c.training.loss == "dsm" || c.training.continuous,
               "training.loss = \"{}\" is a continuous-time objective: it needs training.continuous = true",
               c.training.loss);
  SCORCH_CHECK(c.training.label_dropout == 0 || c.model.num_classes > 0,
               "training.label_dropout = {} needs a class-conditional network (model.num_classes > 0)",
               c.training.label_dropout);
  if (sc.class_label != "none" && sc.class_label != "balanced") {
    int64_t label = -1;
    try {
      size_t used = 0;
      label = std::stoll(sc.class_label, &used);
      if (used != sc.class_label.size()) label = -1;
    } catch (const std::exception&) {
      label = -1;
    }
    const int64_t K = c.model.num_classes;
    SCORCH_CHECK(label >= 0 && (K == 0 || label < K),
                 "sampling.class_label = \"{}\": expected none, balanced or a label in [0, {}) (model.num_classes = {})",
                 sc.class_label, K, K);
  }
  SCORCH_CHECK(sc.guidance_scale == 0 || (c.model.num_classes > 0 && sc.class_label != "none"),
               "sampling.guidance_scale = {} (classifier-free guidance) needs model.num_classes > 0 and "
               "sampling.class_label (a label or balanced)",
               sc.guidance_scale);
  SCORCH_CHECK(sc.classifier.empty() || sc.class_label != "none",
               "sampling.classifier (classifier guidance) needs sampling.class_label (a label or balanced)");
  SCORCH_CHECK(sc.class_label == "none" || c.model.num_classes > 0 || !sc.classifier.empty(),
               "sampling.class_label = \"{}\" needs a class-conditional network (model.num_classes > 0) or a "
               "guiding classifier (sampling.classifier)",
               sc.class_label);
  SCORCH_CHECK(sc.method != "heun" || c.training.sde == "vesde",
               "sampling.method = \"heun\" integrates in sigma space and exists for training.sde = \"vesde\" (got "
               "\"{}\"); use ddim or dpm_solver for VP / sub-VP",
               c.training.sde);
  SCORCH_CHECK(c.training.continuous || c.training.sde != "subvpsde",
               "training.continuous = false trains SMLD (vesde) or DDPM (vpsde) models; subvpsde has no discrete form");
  SCORCH_CHECK(c.model.sigma_max > c.model.sigma_min, "model.sigma_max ({}) must exceed model.sigma_min ({})",
               c.model.sigma_max, c.model.sigma_min);
  SCORCH_CHECK(c.model.beta_max > c.model.beta_min, "model.beta_max ({}) must exceed model.beta_min ({})",
               c.model.beta_max, c.model.beta_min);
  SCORCH_CHECK(!c.model.ch_mult.empty(), "model.ch_mult must not be empty");
  for (size_t i = 0; i < c.ema.sigma_rels.size(); ++i) {
    // sigma_rel of a power-function profile peaks at 0.3003 (optim/power_ema.h).
    const double s = c.ema.sigma_rels[i];
    SCORCH_CHECK(s > 0 && s < 0.3, "ema.sigma_rels[{}] = {}: a profile's relative width lies in (0, 0.3) (EDM2 keeps "
                 "0.05 and 0.10)", i, s);
    for (size_t j = 0; j < i; ++j) {
      SCORCH_CHECK(c.ema.sigma_rels[j] != s, "ema.sigma_rels lists {} twice", s);
    }
  }
  SCORCH_CHECK(c.ema.sigma_rels.empty() || c.ema.snapshot_kimg > 0,
               "ema.snapshot_kimg = {}: the profiles of ema.sigma_rels need snapshots (a positive number)",
               c.ema.snapshot_kimg);
  if (c.model.name == "analytic_gmm") {
    const auto K = c.model.gmm_means.size();
    SCORCH_CHECK(K > 0, "model.name = \"analytic_gmm\" needs model.gmm_means ([K][D]), gmm_stds and gmm_weights");
    SCORCH_CHECK(c.data.dim > 0, "model.name = \"analytic_gmm\" works on point data: set data.dim = D > 0");
    for (size_t k = 0; k < K; ++k) {
      SCORCH_CHECK(static_cast<int64_t>(c.model.gmm_means[k].size()) == c.data.dim,
                   "model.gmm_means[{}] has {} coordinates but data.dim = {}", k, c.model.gmm_means[k].size(),
                   c.data.dim);
    }
    SCORCH_CHECK(c.model.gmm_stds.size() == K && c.model.gmm_weights.size() == K,
                 "model.gmm_stds ({}) and model.gmm_weights ({}) must have one entry per mean ({})",
                 c.model.gmm_stds.size(), c.model.gmm_weights.size(), K);
    SCORCH_CHECK(c.model.num_classes == 0 || c.model.num_classes == static_cast<int64_t>(K),
                 "model.name = \"analytic_gmm\": its classes are its components, so model.num_classes must be 0 or "
                 "{} (got {})",
                 K, c.model.num_classes);
  } else if (c.model.name == "ncsnpp") {
    SCORCH_CHECK(c.data.dim == 0, "model.name = \"ncsnpp\" works on images: data.dim must be 0 (got {})", c.data.dim);
    SCORCH_CHECK(c.model.embedding_type != "fourier" || c.training.continuous,
                 "model.embedding_type = \"fourier\" needs training.continuous = true (as in the reference)");
    const int64_t levels = static_cast<int64_t>(c.model.ch_mult.size());
    SCORCH_CHECK(c.data.image_size % (int64_t{1} << (levels - 1)) == 0,
                 "data.image_size = {} must be divisible by 2^(len(model.ch_mult)-1) = {}", c.data.image_size,
                 int64_t{1} << (levels - 1));
    SCORCH_CHECK(!c.model.fir_kernel.empty(), "model.fir_kernel must not be empty");
    SCORCH_CHECK(c.model.nf >= 4, "model.nf = {} is too small for GroupNorm(min(C/4, 32)) (need >= 4)", c.model.nf);
  } else if (c.model.name == "mlp") {
    SCORCH_CHECK(c.data.dim > 0, "model.name = \"mlp\" works on point data: set data.dim > 0");
  } else {
    SCORCH_CHECK(c.data.dim == 0, "model.name = \"{}\" works on images: data.dim must be 0 (got {})", c.model.name,
                 c.data.dim);
  }
}

}  // namespace scorch
