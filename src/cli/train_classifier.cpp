// `scorch train-classifier`: the small CNN classifier whose penultimate layer gives FID/KID
// features and whose logits give the Inception Score, on the labelled data set of a job
// (train/classifier_training.h), or with --noise-conditional the time-conditioned classifier
// of classifier guidance. Data-parallel over the ranks like `train`.
#include <CLI/CLI.hpp>

#include <filesystem>

#include "scorch/cli/commands.h"
#include "scorch/cli/common.h"
#include "scorch/core/error.h"
#include "scorch/core/log.h"
#include "scorch/dist/backend.h"
#include "scorch/train/classifier_training.h"

namespace fs = std::filesystem;

namespace scorch::cli {

namespace {

struct ClassifierOptions {
  Common common;
  std::string out;
  bool noise_conditional = false;
};

int train_classifier(const ClassifierOptions& opt, dist::Communicator& comm) {
  auto r = resolve(opt.common, /*need_ckpt=*/false);
  std::string out = opt.out;
  if (out.empty()) {
    SCORCH_CHECK(!r.workdir.empty(), "train-classifier: pass --out FILE or --workdir DIR");
    out = r.workdir + (opt.noise_conditional ? "/noisy_classifier.h5" : "/classifier.h5");
  }
  if (comm.rank() == 0 && fs::path(out).has_parent_path()) fs::create_directories(fs::path(out).parent_path());
  auto device = dist::choose_device(r.cfg.dist.device, comm);
  auto res = train::train_classifier(r.cfg, comm, device, out, opt.noise_conditional);
  if (comm.rank() == 0) {
    fmt::print("classifier: {} steps in {:.0f} s, last epoch's loss {:.4f}{} -> {}\n", res.steps, res.seconds,
               res.train_loss,
               res.test_accuracy >= 0 ? fmt::format(", test accuracy {:.2f}%", 100 * res.test_accuracy) : "", out);
  }
  return 0;
}

}  // namespace

Command train_classifier_command() {
  return make_command<ClassifierOptions>(
      "train-classifier", "train the small CNN classifier used as a FID/IS/KID feature network (eval.feature_net)",
      [](CLI::App& app, ClassifierOptions& opt) {
        add_common(app, opt.common, false);
        app.add_option("--out", opt.out,
                       "checkpoint to write (default <workdir>/classifier.h5, or noisy_classifier.h5 with "
                       "--noise-conditional)");
        app.add_flag("--noise-conditional", opt.noise_conditional,
                     "learn p(c | x_t, t) on data perturbed by the job's SDE, for classifier guidance "
                     "(--set sampling.classifier=<out> sampling.class_label=...)");
        app.footer("Data: data.path with /labels (the test accuracy on data.eval_path is reported). Keys: "
                   "classifier.nf, classifier.features, classifier.epochs, classifier.batch_size, classifier.lr. Then "
                   "--set eval.feature_net=<out> for `scorch eval fid` and `fid-stats`.");
      },
      [](const ClassifierOptions& opt, dist::Communicator& comm) { return train_classifier(opt, comm); });
}

}  // namespace scorch::cli
