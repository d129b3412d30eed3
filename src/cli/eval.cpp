// `scorch eval`: its subcommands and their options; each runs in a file of its own.
//  - bpd (cli/eval_bpd.cpp): test-set bits/dim through the probability-flow ODE;
//  - fid-stats, fid (cli/eval_fid.cpp): reference statistics, and FID / IS / KID of samples;
//  - sweep (cli/eval_sweep.cpp): a metric against step or against post-hoc EMA profiles.
#include <CLI/CLI.hpp>

#include <array>
#include <memory>

#include "scorch/cli/commands.h"
#include "scorch/cli/common.h"
#include "scorch/cli/evaluation.h"
#include "scorch/core/stop.h"

namespace scorch::cli {

Command eval_command() {
  auto opt = std::make_shared<Common>();
  auto fo = std::make_shared<FidOptions>();
  auto so = std::make_shared<SweepOptions>();
  auto subs = std::make_shared<std::array<CLI::App*, 4>>();
  Command c;
  c.name = "eval";
  c.help = "evaluate a checkpoint or its samples: bits/dim, FID / IS / KID, a sweep over checkpoints";
  c.declare = [opt, fo, so, subs](CLI::App& app) {
    app.require_subcommand(1);
    auto* bpd = app.add_subcommand("bpd", "test-set bits/dim through the probability-flow ODE (Hutchinson trace)");
    add_common(*bpd, *opt, true);
    bpd->footer(fmt::format(
        "Data: data.eval_path (default data.path), eval.bpd_num_images (0: all), eval.bpd_num_repeats, eval.rtol / "
        "eval.atol, eval.hutchinson (rademacher | gaussian). Images are dealt over ranks in batches of eval.batch_size "
        "(eval.balance); per-image results go to <workdir>/eval/bpd-<run>/batch_<id>.h5 (/index, /bpd [b,repeats], "
        "/latents) and a rerun skips finished batches. Then <workdir>/eval/bpd_<step>.h5 (/bpd [repeats,N], mean, "
        "standard error), a row of <workdir>/eval_log.csv and a JSON record <workdir>/eval/bpd-<run>.json with the "
        "provenance (checkpoint and data by SHA-256, ODE settings, NFE, seeds, version), and a last line `bpd <mean>`. "
        "Exit status {} if stopped by a signal.",
        kStoppedExitCode));
    auto* stats = app.add_subcommand("fid-stats", "pytorch-fid-compatible statistics (mu, sigma) of a data set file");
    add_feature_options(*stats, *fo);
    stats->add_option("--data", fo->data, "HDF5 data set with /images")->required()->check(CLI::ExistingFile);
    stats->add_option("--out", fo->out, "output .npz: mu, sigma (float64), n, and the features (float32) for KID")
        ->required();
    stats->footer("Features per batch of eval.batch_size are kept in <out>.parts-<net>/ until the .npz is written, so "
                  "a killed run resumes.");
    auto* fidc = app.add_subcommand("fid", "FID (and IS, KID) of the samples in --workdir against reference statistics");
    add_feature_options(*fidc, *fo);
    fidc->add_option("--ref", fo->ref, "reference statistics .npz: scorch eval fid-stats', pytorch-fid's or EDM's (mu, sigma), or "
                    "score_sde's (pool_3 features; moments computed in float64)")
        ->required()
        ->check(CLI::ExistingFile);
    fidc->add_option("--data", fo->data, "compare this data set file instead of the samples")->check(CLI::ExistingFile);
    fidc->add_option("--run", fo->run, "sample run under <workdir>/samples/ (default: the one of this checkpoint and "
                     "these sampler settings)");
    fidc->footer("The samples' features are cached per batch in <run>/features-<net>/ and their statistics in "
                 "<run>/fid_stats-<net>.npz. IS needs a network with logits; KID needs reference features (in the "
                 ".npz from scorch eval fid-stats). Prints a last line `fid <value> [is <value>] [kid <value>]`. "
                 "With eval.seed_sets = K > 1 each set is evaluated (a line `seed set k: fid ...` each) and the last "
                 "line gives, per metric, the mean, minimum and standard deviation: `fid <mean> fid_min <v> fid_std "
                 "<v> ...`. Every result is a row of <workdir>/eval_log.csv and the evaluation a JSON record beside the "
                 "run (checkpoint, feature network and reference by SHA-256, sampler settings, NFE, seeds, version).");
    auto* sweep = app.add_subcommand("sweep", "a metric against training step: every N-th checkpoint sampled and "
                                     "evaluated, a table and a plot, the best marked");
    add_common(*sweep, so->fid.common, false);
    sweep->add_option("--feature-net", so->fid.feature_net, "feature network for FID (as eval fid --feature-net)");
    sweep->add_option("--every", so->every, "every N-th checkpoint, counted back from the newest (default 1: all)")
        ->check(CLI::PositiveNumber);
    sweep->add_option("--metric", so->metric, "fid | bpd | both (default fid)")
        ->check(CLI::IsMember({"fid", "bpd", "both"}));
    sweep->add_option("--ref", so->fid.ref, "reference statistics for FID (as eval fid --ref)")
        ->check(CLI::ExistingFile);
    sweep->add_option("--sigma-rel", so->sigma_rels, "post-hoc EMA profiles to sweep instead of checkpoints, e.g. "
                      "0.04,0.07,0.10,0.13 (each reconstructed once by scorch ema at --ema-step)")
        ->delimiter(',');
    sweep->add_option("--ema-step", so->step, "the EMA snapshot step of --sigma-rel (default: the newest)");
    sweep->footer(fmt::format(
        "Each chosen checkpoint is sampled (eval.num_samples x eval.seed_sets, as scorch sample) and evaluated as "
        "scorch eval fid / eval bpd evaluate it: rows with provenance in <workdir>/eval_log.csv and TensorBoard, a JSON "
        "record per evaluation. Then a table, <workdir>/eval/sweep-<metric>.csv and <workdir>/eval/sweep-<fid|bpd>.png "
        "(the best, lowest, checkpoint marked), and a last line `best_fid <v> best_fid_step <s> [best_bpd ...]`. With "
        "--sigma-rel the rows are post-hoc EMA profiles at one step (sweep-sigma_rel-<metric>.csv, "
        "sweep-sigma_rel-<fid|bpd>.png, `best_fid <v> best_fid_sigma_rel <s>`). "
        "Resumable: rerun the same command (e.g. a requeued Slurm job): finished batches are skipped and a checkpoint "
        "whose record exists is read from it. Exit status {} if stopped by a signal.",
        kStoppedExitCode));
    (*subs)[0] = bpd;
    (*subs)[1] = stats;
    (*subs)[2] = fidc;
    (*subs)[3] = sweep;
  };
  c.run = [opt, fo, so, subs](dist::Communicator& comm) {
    if (*(*subs)[0]) return eval_bpd(*opt, comm);
    if (*(*subs)[1]) return eval_fid_stats(*fo, comm);
    if (*(*subs)[3]) return eval_sweep(*so, comm);
    return eval_fid(*fo, comm);
  };
  return c;
}

}  // namespace scorch::cli
