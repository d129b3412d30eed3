// The resolved configuration of a job. Defaults live in the member initialisers below; a
// TOML job file and `--set section.key=value` overrides are applied on top, each checked
// against one schema (key, type, range), so a typo fails before any work starts.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace scorch {

struct TrainingConfig {
  std::string sde = "vpsde";         // vesde | vpsde | subvpsde
  int64_t batch_size = 128;          // global: every rank takes batch_size / world_size
  int64_t n_iters = 1300001;         // optimiser steps to train for
  int64_t snapshot_freq = 50000;     // checkpoint every this many steps (and at the end)
  int64_t log_freq = 50;             // progress line every this many steps (rank 0)
  bool continuous = true;            // continuous-time DSM; false: SMLD (vesde) / DDPM (vpsde)
  bool reduce_mean = false;          // mean over data dims, else 0.5 * sum
  bool likelihood_weighting = false; // lambda = g^2 instead of sigma^2
  int64_t grad_accum = 1;            // micro-batches per optimiser step (batch_size stays global)
  std::string precision = "fp32";    // fp32 | bf16 (autocast of the forward pass)
  bool channels_last = false;        // NHWC memory layout for image networks
  bool tf32 = true;                  // TF32 matmuls/convolutions on Ampere+ GPUs
  int64_t snapshot_keep_freq = 0;    // with checkpoint.keep: also keep every N-th step's checkpoint (0: none)
  std::string on_nonfinite = "skip"; // skip | stop: a step whose gradients hold NaN/Inf
  int64_t max_nonfinite = 10;        // skip: stop after this many non-finite steps in a row
  std::string loss = "dsm";          // dsm | ssm (core/names.h; losses/loss.h)
  std::string ssm_projection = "rademacher";  // ssm: rademacher | gaussian projection vectors
  double label_dropout = 0.0;        // with model.num_classes: P(class -> null label)
  bool snapshot_sampling = false;    // at each snapshot, sample with the EMA weights (a PNG grid + TensorBoard)
  int64_t snapshot_samples = 64;     // how many (fixed noise, so grids compare across steps)
};

// How checkpoints are written and kept (see io/checkpoint.h, train/checkpoint_writer.h).
// Power-function EMA profiles kept besides model.ema_rate's exponential EMA, for choosing
// the EMA after training (EDM2; optim/power_ema.h, train/ema_snapshots.h, `scorch ema`).
struct EmaConfig {
  std::vector<double> sigma_rels;  // profile widths, e.g. [0.05, 0.10]; empty: none kept
  double snapshot_kimg = 8388.608; // a snapshot of every profile per this many thousand images (EDM2: 8 Mi)
  int64_t snapshot_keep = 0;       // keep the newest K snapshots (0: all, what reconstruction wants)
};

struct CheckpointConfig {
  int64_t keep = 0;     // keep the newest K checkpoints (0: all) plus every snapshot_keep_freq-th
  bool async = true;    // write in a background thread while training goes on
};

struct SamplingConfig {
  std::string method = "pc";
  std::string predictor = "euler_maruyama";
  std::string corrector = "none";
  double snr = 0.16;
  int64_t n_steps_each = 1;
  bool noise_removal = true;
  bool probability_flow = false;
  double rtol = 1e-5;  // ODE sampler (method = "ode") tolerances
  double atol = 1e-5;
  int64_t steps = 20;                // ddim | dpm_solver | heun: steps over the time schedule
  double eta = 0.0;                  // ddim: 0 deterministic, 1 ancestral (DDPM-like)
  double guidance_scale = 0.0;       // classifier-free guidance w (model.num_classes > 0)
  std::string class_label = "none";  // none | <label> | balanced (sample i: i mod num_classes)
  std::string classifier;            // classifier guidance: checkpoint path, or "exact" (analytic_gmm)
  double classifier_scale = 1.0;     // classifier guidance lambda
};

struct ModelConfig {
  std::string name = "unet";            // ncsnpp (NCSN++/DDPM++) | unet (small) | mlp (points) | analytic_gmm
  int64_t nf = 128;                     // base channels (unet) or hidden width (mlp)
  std::vector<int64_t> ch_mult{1, 2, 2, 2};
  int64_t num_res_blocks = 2;           // per resolution (unet) or residual blocks (mlp)
  std::vector<int64_t> attn_resolutions{16};
  double dropout = 0.1;
  std::string embedding_type = "positional";  // positional (of the label) | fourier (of log label)
  double fourier_scale = 16.0;
  bool scale_by_sigma = false;          // VE: divide the output by sigma(t)
  // NCSN++ / DDPM++ (model.name = "ncsnpp"); names and meanings as in score_sde_pytorch.
  bool conditional = true;              // time embedding feeds every residual block
  bool resamp_with_conv = true;         // convolutions in the up/down-sampling layers
  bool fir = false;                     // FIR-filtered resampling (StyleGAN2) instead of naive
  std::vector<int64_t> fir_kernel{1, 3, 3, 1};
  bool skip_rescale = true;             // residual sums divided by sqrt(2)
  std::string resblock_type = "biggan"; // biggan | ddpm
  std::string progressive = "none";     // output path: none | output_skip | residual
  std::string progressive_input = "none";  // input path: none | input_skip | residual
  std::string progressive_combine = "sum"; // input_skip combiner: sum | cat
  double init_scale = 0.0;              // scale of the last conv in each block (0: 1e-10)
  std::string nonlinearity = "swish";   // swish | relu | lrelu | elu
  int64_t num_classes = 0;              // class-conditional when > 0 (label num_classes = null)
  double ema_rate = 0.9999;
  double sigma_min = 0.01;
  double sigma_max = 50.0;
  double beta_min = 0.1;
  double beta_max = 20.0;
  int64_t num_scales = 1000;            // N: discretisation and sampler steps
  // analytic_gmm: the data distribution sum_k w_k N(mu_k, s_k^2 I); the score is exact.
  std::vector<std::vector<double>> gmm_means;  // [K][D]
  std::vector<double> gmm_stds;                // [K]
  std::vector<double> gmm_weights;             // [K] (normalised)
};

struct OptimConfig {
  std::string optimizer = "Adam";
  double lr = 2e-4;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  int64_t warmup = 5000;   // linear lr warm-up steps (0: none)
  double grad_clip = 1.0;  // global gradient-norm clip (negative: none)
};

struct DataConfig {
  std::string dataset = "";     // a name for humans and logs
  std::string path = "";        // training split (HDF5, scorch schema)
  std::string eval_path = "";   // evaluation split; empty means `path`
  int64_t image_size = 32;      // H = W of image data
  int64_t num_channels = 3;     // C of image data
  int64_t dim = 0;              // D of point data; 0 means the data are images
  bool centered = false;        // images in [-1, 1] instead of [0, 1]
  bool uniform_dequantization = false;
  bool random_flip = true;
  std::string source = "auto";  // where the data live: auto | memory | node_shared | stream (data/source.h)
  double cache_mb = 64;         // stream: HDF5 chunk cache per rank, MiB
  int64_t prefetch = 2;         // local batches prepared ahead by a background thread (0: none)
};

struct EvalConfig {
  int64_t batch_size = 1024;      // per-rank chunk for sampling and likelihood
  int64_t num_samples = 50000;    // how many samples `scorch sample` generates
  int64_t bpd_num_images = 0;     // 0 = the whole evaluation split
  int64_t bpd_num_repeats = 5;    // dequantisation / Hutchinson repeats, averaged
  double rtol = 1e-5;             // RK45 tolerances of the likelihood ODE
  double atol = 1e-5;
  std::string hutchinson = "rademacher";  // trace-estimator noise: rademacher | gaussian
  int64_t seed = 0;               // sample i's noise: stream (eval.seed, i) (sampling/noise.h)
  int64_t seed_sets = 1;          // independent sample sets: set k holds samples k*n .. (k+1)*n-1
  std::string balance = "dynamic";  // farm dealing: dynamic | static (farm/farm.h)
  std::string feature_net;        // FID/IS/KID features: TorchScript .pt, or a scorch classifier .h5
  int64_t is_splits = 10;         // Inception Score splits
  int64_t kid_subsets = 100;      // KID: subsets and their size (polynomial kernel)
  int64_t kid_subset_size = 1000;
};

// The small image classifier `scorch train-classifier` trains (models/classifier.h): FID
// features from its penultimate layer, Inception-Score logits from its last.
struct ClassifierConfig {
  int64_t nf = 16;          // channels of the first convolution (x2, x4 after each pooling)
  int64_t features = 128;   // width of the penultimate (feature) layer
  int64_t epochs = 3;
  int64_t batch_size = 128; // global
  double lr = 3e-3;
};

// Where ranks compute and how they communicate (see dist/backend.h, dist/reducer.h).
struct DistConfig {
  std::string device = "auto";   // auto | cpu | cuda (one GPU per rank, by node-local rank)
  std::string backend = "auto";  // auto | mpi | nccl (gradients; MPI is always the control plane)
  double bucket_mb = 25.0;       // gradient bucket size
  double first_bucket_mb = 1.0;  // size of the first bucket (communication starts early)
  bool overlap = true;           // all-reduce buckets during backward
  int64_t check_every = 1000;    // compare parameter checksums across ranks every N steps (0: never)
  double timeout_s = 600;        // a collective waiting longer than this aborts the job (MPI and NCCL watchdogs)
};

struct Config {
  int64_t seed = 42;
  TrainingConfig training;
  SamplingConfig sampling;
  ModelConfig model;
  OptimConfig optim;
  DataConfig data;
  EvalConfig eval;
  DistConfig dist;
  CheckpointConfig checkpoint;
  ClassifierConfig classifier;
  EmaConfig ema;

  // Where each layer came from, for messages ("defaults", "jobs/x.toml", "--set").
  std::vector<std::string> sources;

  bool is_image_data() const { return data.dim == 0; }
  const std::string& eval_data_path() const { return data.eval_path.empty() ? data.path : data.eval_path; }
  // Shape of one data item as the network sees it: {C, H, W} or {D}.
  std::vector<int64_t> item_shape() const;
};

// Applies a TOML document on top of `cfg`. `source` names it in errors (a path or "--set").
// Throws scorch::Error naming the key and source for unknown keys, wrong types, bad values.
void apply_toml_file(Config& cfg, const std::string& path);
void apply_toml_string(Config& cfg, const std::string& toml_text, const std::string& source);
// Applies one "section.key=value" override; value is a TOML value (bare words are strings).
void apply_override(Config& cfg, const std::string& assignment);

// Fills keys that follow from others when unset (analytic_gmm: data.dim from model.gmm_means).
void derive(Config& cfg);
// Checks the cross-key invariants (ranges are checked as keys are set).
void validate(const Config& cfg);

// The full resolved configuration as a TOML document (every key, defaults included).
std::string to_toml(const Config& cfg);

// The keys that change what a trained network means (its architecture, its SDE and the SDE's
// parameters, training.continuous and the loss, model.num_classes, the data's shape and
// scaling) whose values differ between `before` (a checkpoint's config) and `after`, with
// both values as TOML text. A resumed run refuses any; the rest (learning rate, iterations,
// logging, checkpoint policy, dropout, EMA rate, ...) may change.
struct KeyChange {
  std::string key, before, after;
};
std::vector<KeyChange> fixed_key_changes(const Config& before, const Config& after);

// All keys "section.key" with their one-line descriptions, for --help and errors.
std::vector<std::pair<std::string, std::string>> config_keys();

// defaults <- job file <- overrides, validated. `job` may be empty.
Config load_config(const std::string& job, const std::vector<std::string>& overrides);

}  // namespace scorch
