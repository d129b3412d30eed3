// Features through the farm and their moments (see eval/features.h).
#include "scorch/eval/features.h"

#include "scorch/core/error.h"
#include "scorch/core/log.h"
#include "scorch/core/stop.h"
#include "scorch/data/dataset.h"
#include "scorch/io/hdf5.h"

namespace scorch::eval {

double moments_bytes(int64_t F, int64_t ranks_on_node) {
  // Each rank's sum of outer products (all-reduced in place), and on rank 0 the covariance
  // (outer - n mu mu^T, symmetrised: two temporaries) and frechet_distance's sqrt(S1) and
  // sqrt(S1) S2 sqrt(S1) with eigh's workspace: about four more.
  return 8.0 * static_cast<double>(F) * static_cast<double>(F) * static_cast<double>(ranks_on_node + 4);
}

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
  {
    // The moments hold F x F float64 sums: from the features of one image (rank 0), refused
    // before any batch is computed when they cannot fit (see moments_bytes).
    auto probe = torch::zeros({2}, torch::kInt64);
    if (comm.rank() == 0 && n > 0) {
      const auto first = farm::batches(out.plan).front();
      if (farm::batch_file_complete(first, "net", id)) {
        auto f = h5::File::open_read(first.path);
        const auto shape = h5::shape(f.id(), "features");
        probe[0] = shape.size() == 2 ? shape[1] : -1;
      } else {
        // Readers deal in whole batches: the first one, of which one image goes through the net.
        auto x = read(first.begin, first.count);
        SCORCH_CHECK(x.dim() == 4 && x.size(0) == first.count, "features: images {}..{} came back as {}", first.begin,
                     first.begin + first.count - 1, c10::str(x.sizes()));
        auto f = net.forward(x.narrow(0, 0, 1).to(device)).first;
        probe[0] = f.dim() == 2 ? f.size(1) : -1;
      }
    }
    comm.broadcast(probe, 0);
    const int64_t F = probe[0].item<int64_t>();
    SCORCH_CHECK(n == 0 || F > 0, "{}: its features of one image are not [1,F]", net.describe());
    const double need = moments_bytes(F, comm.local_size()), avail = data::available_memory();
    SCORCH_CHECK(avail <= 0 || need <= 0.8 * avail,
                 "{}: {} features per image: their float64 moments need about {} on this node ({} F x F "
                 "accumulator(s) of {} each, one per rank here, and rank 0's covariance and Frechet square roots), but "
                 "{} is available: use a feature network with fewer features (Inception's pool3 has 2048) or fewer ranks "
                 "per node (nothing was computed)",
                 net.describe(), F, format_bytes(need), comm.local_size(), format_bytes(8.0 * F * F),
                 format_bytes(avail));
  }
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
  int64_t F = 0, logits = 0, stopped = 0;
  for (size_t i = static_cast<size_t>(comm.rank()); i < all.size(); i += static_cast<size_t>(comm.size())) {
    if (stop_requested()) {
      stopped = 1;  // within one batch of the signal
      break;
    }
    auto f = h5::File::open_read(all[i].path);
    auto feat = h5::read_tensor(f.id(), "features", all[i].path);
    out.moments.add(feat);
    F = feat.size(1);
    logits = h5::exists(f.id(), "logits") ? 1 : 0;
  }
  auto meta = comm.all_gather(torch::tensor({F, logits, stopped}, torch::kInt64));
  SCORCH_CHECK(meta.select(1, 2).max().item<int64_t>() == 0,
               "features: stopped by a signal while summing the moments of {} (the features stay cached; nothing was "
               "written)", dir);
  out.dim = meta.select(1, 0).max().item<int64_t>();
  out.has_logits = meta.select(1, 1).max().item<int64_t>() > 0;
  out.moments.allreduce(comm, out.dim);
  SCORCH_CHECK(out.moments.n == n, "features: {} rows in the batch files of {}, expected {}", out.moments.n, dir, n);
  return out;
}

}  // namespace scorch::eval
