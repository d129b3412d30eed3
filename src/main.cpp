// scorch: score-based generative models on MPI ranks. main only parses the command line
// and dispatches to scorch::cli; errors are printed once, with the rank, and abort the job
// so that no other rank waits forever in a collective.
#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include <cstdlib>
#include <iostream>

#include "scorch/cli/commands.h"
#include "scorch/core/error.h"
#include "scorch/core/log.h"
#include "scorch/dist/communicator.h"

namespace {

void add_common(CLI::App* app, scorch::cli::Common& c, bool ckpt) {
  app->add_option("--config", c.config, "TOML job file (e.g. jobs/fashion_mnist.toml)")->check(CLI::ExistingFile);
  app->add_option("--workdir", c.workdir, "run directory: config.toml, checkpoints/, samples/, eval/");
  app->add_option("--set", c.sets,
                  "override one key: --set section.key=VALUE (a TOML value: 0.5, true, [1,2], \"s\"; bare words "
                  "are strings). Repeatable; applied after --config.")
      ->type_name("KEY=VALUE");
  if (ckpt) app->add_option("--ckpt", c.ckpt, "checkpoint file (default: the newest in --workdir/checkpoints)");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "scorch: train and evaluate score-based generative models (Song et al., SDEs) on MPI ranks.\n"
      "Run under mpirun/srun for data parallelism, or as a plain process. Configuration: defaults in code\n"
      "<- the checkpoint's config <- --config JOB.toml <- --set overrides. `scorch info --keys` lists every key."};
  app.require_subcommand(1);
  int threads = 0;
  app.add_option("--threads", threads, "intra-op CPU threads per rank (default: OMP_NUM_THREADS or all cores)");

  scorch::cli::Common common;
  bool list_keys = false;
  scorch::cli::PrepareOptions prep_opt;
  auto* prep = app.add_subcommand("prepare", "write a dataset in scorch's HDF5 schema (/images or /points, /labels)");
  prep->add_option("dataset", prep_opt.dataset,
                   "fashion-mnist (IDX files -> <out>/fashion_mnist_{train,test}.h5) | cifar10 (binary batches -> "
                   "<out>/cifar10_{train,test}.h5, or X.h5 and X_test.h5 for --out X.h5) | images (a folder of "
                   "PNG/JPEG -> the file <out>, centre-cropped and resized; parallel over ranks) | mixture (exact "
                   "draws of the analytic_gmm in --config -> the file <out>)")
      ->required()
      ->check(CLI::IsMember({"fashion-mnist", "cifar10", "images", "mixture"}));
  prep->add_option("--raw", prep_opt.raw,
                   "fashion-mnist: folder of the IDX files (default /usr/share/datasets/fashion-mnist); cifar10: "
                   "folder of data_batch_*.bin/test_batch.bin, or cifar-10-binary.tar.gz");
  prep->add_option("--dir", prep_opt.dir, "images: folder of .png/.jpg/.jpeg files (searched recursively)");
  prep->add_option("--resolution", prep_opt.resolution, "images: output height = width (e.g. 256)");
  prep->add_option("--out", prep_opt.out, "output folder or file (see dataset)")->required();
  prep->add_option("--config", prep_opt.config, "mixture: job file with model.name = \"analytic_gmm\"");
  prep->add_option("--count", prep_opt.count, "mixture: number of points")->capture_default_str();
  prep->footer("Every input is checked (record sizes, labels, image sizes) and files are written atomically: a "
               "failure leaves no partial output.");
  auto* tr = app.add_subcommand(
      "train", "train a score model; resumes from the newest checkpoint in --workdir (and takes its config as the base)");
  add_common(tr, common, false);
  tr->footer("Checkpoints every training.snapshot_freq steps and at the end; SIGTERM/SIGUSR1 checkpoint and stop.");

  auto* sa = app.add_subcommand("sample", "draw eval.num_samples samples (EMA weights) into <workdir>/samples/");
  add_common(sa, common, true);

  auto* ev = app.add_subcommand("eval", "evaluate a checkpoint");
  ev->require_subcommand(1);
  auto* bpd = ev->add_subcommand("bpd", "test-set bits/dim through the probability-flow ODE (Hutchinson trace)");
  add_common(bpd, common, true);

  std::string enc_data, enc_out, dec_latents, dec_out;
  auto* en = app.add_subcommand("encode", "data -> latents through the probability-flow ODE (eps -> T)");
  add_common(en, common, true);
  en->add_option("--data", enc_data, "dataset HDF5 file (/images or /points)")->required()->check(CLI::ExistingFile);
  en->add_option("--out", enc_out, "output HDF5 file: /latents float32 in model-input layout, e.g. [N,C,H,W]")
      ->required();
  auto* de = app.add_subcommand("decode", "latents -> data through the probability-flow ODE (T -> eps)");
  add_common(de, common, true);
  de->add_option("--latents", dec_latents, "HDF5 file with /latents (from scorch encode)")
      ->required()
      ->check(CLI::ExistingFile);
  de->add_option("--out", dec_out, "output file (default <workdir>/samples/decoded_<step>.h5), written like sample");

  auto* in = app.add_subcommand("info", "parameter count, checkpoint step and resolved config");
  add_common(in, common, true);
  in->add_flag("--keys", list_keys, "list every configuration key with its meaning");

  std::string imp_from, imp_src, imp_out;
  auto* im = app.add_subcommand("import", "convert a published checkpoint into a scorch checkpoint");
  im->add_option("checkpoint", imp_src, "the reference checkpoint (e.g. checkpoint_26.pth)")
      ->required()
      ->check(CLI::ExistingFile);
  im->add_option("--from", imp_from, "its format: score-sde-pytorch (torch.save of {model, ema, optimizer, step})")
      ->required();
  add_common(im, common, false);
  im->add_option("--out", imp_out,
                 "scorch checkpoint to write (default with --workdir: <workdir>/checkpoints/ckpt_<9-digit step>.h5, "
                 "which train resumes from and sample/eval pick up)");
  im->footer(
      "The network is built from --config (e.g. jobs/cifar10_ve_ncsnpp_deep_continuous.toml); every tensor of the "
      "file must match it by name and shape, or nothing is written.");
  scorch::cli::BenchOptions bench_opt;
  auto* be = app.add_subcommand("bench", "time forward+backward of the job's network on the DSM loss (and peak memory)");
  add_common(be, common, false);
  be->add_option("--batch", bench_opt.batch, "images per step")->capture_default_str();
  be->add_option("--steps", bench_opt.steps, "timed steps")->capture_default_str();
  be->add_option("--warmup", bench_opt.warmup, "untimed steps first")->capture_default_str();
  be->add_option("--device", bench_opt.device, "cpu, cuda or cuda:N")->capture_default_str();
  be->add_option("--precision", bench_opt.precision, "fp32, or bf16 (autocast)")
      ->check(CLI::IsMember({"fp32", "bf16"}))
      ->capture_default_str();
  std::string preview_file;
  int64_t preview_count = 4;
  auto* pv = app.add_subcommand("preview", "print images of a samples or dataset HDF5 file as text");
  pv->add_option("file", preview_file, "HDF5 file with /images (e.g. <workdir>/samples/samples_*.h5)")->required();
  pv->add_option("--count", preview_count, "how many images, side by side")->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  scorch::dist::MpiSession mpi(&argc, &argv);
  auto comm = scorch::dist::mpi_world();
  scorch::init_logging(comm->rank(), comm->size());
  if (threads > 0) torch::set_num_threads(threads);

  try {
    if (*prep) return scorch::cli::prepare(prep_opt, *comm);
    if (*tr) return scorch::cli::train(common, *comm);
    if (*sa) return scorch::cli::sample(common, *comm);
    if (*bpd) return scorch::cli::eval_bpd(common, *comm);
    if (*in) return scorch::cli::info(common, list_keys, *comm);
    if (*en) return scorch::cli::encode(common, enc_data, enc_out, *comm);
    if (*de) return scorch::cli::decode(common, dec_latents, dec_out, *comm);
    if (*be) return scorch::cli::bench(common, bench_opt, *comm);
    if (*im) return scorch::cli::import_checkpoint(imp_from, imp_src, common, imp_out, *comm);
    if (*pv) return comm->rank() == 0 ? scorch::cli::preview(preview_file, preview_count) : 0;
  } catch (const std::exception& e) {
    auto* c10e = dynamic_cast<const c10::Error*>(&e);
    std::string msg = c10e ? c10e->what_without_backtrace() : e.what();
    if (msg.rfind("[rank", 0) != 0) msg = fmt::format("[rank {}] {}", comm->rank(), msg);
    std::cerr << "scorch: error: " << msg << std::endl;
    if (comm->size() > 1) comm->abort(1);
    return 1;
  }
  return 0;
}
