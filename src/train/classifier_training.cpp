// The classifier's training loop (see train/classifier_training.h).
#include "scorch/train/classifier_training.h"

#include <chrono>

#include "scorch/core/error.h"
#include "scorch/core/log.h"
#include "scorch/core/random.h"
#include "scorch/data/dataset.h"
#include "scorch/dist/reducer.h"
#include "scorch/dist/sharding.h"
#include "scorch/io/checkpoint.h"
#include "scorch/models/classifier.h"
#include "scorch/sde/sde.h"

namespace scorch::train {

namespace {

// Accuracy of `net` on the labelled images of `ds` (this rank's contiguous share, summed).
double accuracy(models::Classifier& net, const data::Dataset& ds, dist::Communicator& comm, const torch::Device& dev,
                const Config& cfg, const sde::SDE* sde) {
  torch::NoGradGuard ng;
  net->eval();
  auto mine = dist::shard_range(ds.size(), comm.rank(), comm.size());
  auto right = torch::zeros({2}, torch::kInt64);
  for (int64_t b = mine.begin; b < mine.end; b += 512) {
    const int64_t e = std::min(mine.end, b + 512);
    auto x = data::images_to_unit(ds.images.slice(0, b, e)).to(dev);
    torch::Tensor t;
    if (sde) {  // clean data at the samplers' last time
      t = torch::full({e - b}, sde->sampling_eps(), x.options());
      x = data::scale(x, cfg.data.centered);
    }
    auto pred = net->forward(x, t).second.argmax(1).cpu();
    right[0] += (pred == ds.labels.slice(0, b, e)).sum().item<int64_t>();
    right[1] += e - b;
  }
  comm.allreduce_sum(right);
  net->train();
  return static_cast<double>(right[0].item<int64_t>()) / static_cast<double>(std::max<int64_t>(right[1].item<int64_t>(), 1));
}

}  // namespace

ClassifierResult train_classifier(const Config& cfg, dist::Communicator& comm, const torch::Device& device,
                                  const std::string& out, bool noise_conditional) {
  const auto t0 = std::chrono::steady_clock::now();
  SCORCH_CHECK(cfg.is_image_data(), "train-classifier: the classifier is for image data (data.dim = {})", cfg.data.dim);
  const auto info = data::inspect(cfg.data.path);
  data::check_matches(info, cfg);
  auto ds = data::load(info);
  SCORCH_CHECK(ds.labels.defined(), "{}: no /labels: the classifier needs a labelled data set", cfg.data.path);
  const int64_t classes = ds.labels.max().item<int64_t>() + 1;
  SCORCH_CHECK(ds.labels.min().item<int64_t>() >= 0, "{}: negative class labels", cfg.data.path);
  const auto& cc = cfg.classifier;
  const auto share = dist::batch_share(cc.batch_size, comm.rank(), comm.size());
  torch::manual_seed(derive_seed(static_cast<uint64_t>(cfg.seed), Stream::kClassifier, {0}));  // initial weights
  models::Classifier net(models::ClassifierShape{cfg.data.num_channels, cc.nf, cc.features, classes, noise_conditional});
  std::unique_ptr<sde::SDE> sde;
  if (noise_conditional) {
    sde = sde::make_sde(cfg);
    sde->to(device);
  }
  {
    std::vector<torch::Tensor> ps;
    for (auto& p : net->parameters()) ps.push_back(p.data());
    dist::broadcast_tensors(comm, ps);
  }
  net->to(device);
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(cc.lr));
  dist::Reducer reducer(net->named_parameters().pairs(), comm, dist::ReducerOptions{});
  const int64_t steps_per_epoch = ds.size() / cc.batch_size;
  SCORCH_CHECK(steps_per_epoch > 0, "{}: {} images, fewer than one batch of classifier.batch_size = {}", cfg.data.path,
               ds.size(), cc.batch_size);
  if (comm.rank() == 0) {
    spdlog::info("{}classifier: {} classes, {} images of {}, {} epoch(s) of {} steps (batch {} = {} per rank), nf {}, "
                 "{} features, on {}",
                 noise_conditional ? fmt::format("noise-conditional ({}) ", cfg.training.sde) : "", classes, ds.size(), cfg.data.path, cc.epochs, steps_per_epoch, cc.batch_size, share.size(), cc.nf,
                 cc.features, device.str());
  }
  ClassifierResult res;
  Progress prog("classifier training (steps)", cc.epochs * steps_per_epoch);
  for (int64_t epoch = 0; epoch < cc.epochs; ++epoch) {
    auto gen = make_generator(derive_seed(static_cast<uint64_t>(cfg.seed), Stream::kClassifier, {static_cast<uint64_t>(epoch + 1)}));
    auto perm = torch::randperm(ds.size(), gen);
    double loss_sum = 0;
    for (int64_t s = 0; s < steps_per_epoch; ++s) {
      auto rows = perm.slice(0, s * cc.batch_size + share.begin, s * cc.batch_size + share.end);
      auto x = data::images_to_unit(ds.images.index_select(0, rows)).to(device);
      auto y = ds.labels.index_select(0, rows).to(device);
      torch::Tensor t;
      if (sde) {  // x_t = alpha(t) x_0 + sigma(t) z, t ~ U(1e-5, T), drawn from this step's stream
        auto g = make_generator(derive_seed(static_cast<uint64_t>(cfg.seed), Stream::kClassifier,
                                            {static_cast<uint64_t>(epoch + 1), static_cast<uint64_t>(s + 1),
                                             static_cast<uint64_t>(comm.rank())}));
        t = (torch::rand({x.size(0)}, g) * (sde->T() - 1e-5) + 1e-5).to(device);
        auto z = torch::randn(x.sizes(), g).to(device);
        auto [mean, std] = sde->marginal_prob(data::scale(x, cfg.data.centered), t);
        x = mean + sde::per_item(std, z) * z;
      }
      reducer.zero_grad();
      auto loss = torch::nn::functional::cross_entropy(net->forward(x, t).second, y);
      loss.backward();
      reducer.finish();  // gradients averaged over ranks
      opt.step();
      loss_sum += loss.item<double>();
      ++res.steps;
      if (comm.rank() == 0) prog.tick(res.steps);
    }
    res.train_loss = loss_sum / static_cast<double>(steps_per_epoch);
    if (comm.rank() == 0) spdlog::info("classifier epoch {}: mean loss {:.4f}", epoch + 1, res.train_loss);
  }
  const std::string& test = cfg.data.eval_path;
  if (!test.empty() && test != cfg.data.path) {
    auto tinfo = data::inspect(test);
    data::check_matches(tinfo, cfg);
    auto tds = data::load(tinfo);
    if (tds.labels.defined()) res.test_accuracy = accuracy(net, tds, comm, device, cfg, sde.get());
  }
  if (comm.rank() == 0) {
    io::TrainState st;
    st.step = res.steps;
    st.world_size = comm.size();
    st.config_toml = to_toml(cfg);
    for (const auto& p : net->named_parameters()) st.params[p.key()] = p.value().detach().cpu().contiguous();
    io::save_checkpoint(out, st);
  }
  comm.barrier();
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace scorch::train
