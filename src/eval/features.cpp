// Features through the farm and their moments (see eval/features.h).
#include "scorch/eval/features.h"

#include "scorch/core/error.h"
#include "scorch/core/log.h"
#include "scorch/io/hdf5.h"

namespace scorch::eval {

Features compute_features(dist::Communicator& comm, FeatureNet& net, const torch::Device& device, int64_t n,
                          int64_t batch_size, const std::string& dir, const std::string& balance,
                          const ImageReader& read) {
  Features out;
  out.plan.dir = dir;
  out.plan.num_items = n;
  out.plan.batch_size = batch_size;
  out.plan.balance = balance;
  out.plan.what = "feature images";
  const std::string id = net.id();
  out.report = farm::run(
      comm, out.plan, [&](const farm::Batch& b) { return farm::batch_file_complete(b, "net", id); },
      [&](const farm::Batch& b) {
        auto x = read(b.begin, b.count);
        SCORCH_CHECK(x.dim() == 4 && x.size(0) == b.count, "features: images {}..{} came back as {}", b.begin,
                     b.begin + b.count - 1, c10::str(x.sizes()));
        auto [f, l] = net.forward(x.to(device));
        f = f.cpu().contiguous();
        SCORCH_CHECK(torch::isfinite(f).all().item<bool>(), "{}: features of images {}..{} hold NaN or Inf",
                     net.describe(), b.begin, b.begin + b.count - 1);
        farm::write_batch(b, "net", id, [&](hid_t file) {
          h5::write_tensor(file, "features", f);
          if (l.defined()) h5::write_tensor(file, "logits", l.cpu().contiguous());
          h5::set_attr(file, "feature_net", net.describe());
        });
        return farm::Outcome{1};
      });
  SCORCH_CHECK(out.report.complete(), "features: stopped by a signal before all {} batches were done",
               out.report.batches);
  // Moments: rank r sums the batch files r, r + world, ...
  const auto all = farm::batches(out.plan);
  int64_t F = 0, logits = 0;
  for (size_t i = static_cast<size_t>(comm.rank()); i < all.size(); i += static_cast<size_t>(comm.size())) {
    auto f = h5::File::open_read(all[i].path);
    auto feat = h5::read_tensor(f.id(), "features", all[i].path);
    out.moments.add(feat);
    F = feat.size(1);
    logits = h5::exists(f.id(), "logits") ? 1 : 0;
  }
  auto meta = comm.all_gather(torch::tensor({F, logits}, torch::kInt64));
  out.dim = meta.select(1, 0).max().item<int64_t>();
  out.has_logits = meta.select(1, 1).max().item<int64_t>() > 0;
  out.moments.allreduce(comm, out.dim);
  SCORCH_CHECK(out.moments.n == n, "features: {} rows in the batch files of {}, expected {}", out.moments.n, dir, n);
  return out;
}

}  // namespace scorch::eval
