// Dealing batches of global indices over ranks, skipping finished ones (see farm/farm.h).
#include "scorch/farm/farm.h"

#include <algorithm>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <unordered_set>

#include "scorch/core/error.h"
#include "scorch/core/log.h"
#include "scorch/core/stop.h"
#include "scorch/dist/sharding.h"
#include "scorch/io/files.h"
#include "scorch/io/hdf5.h"

namespace fs = std::filesystem;

namespace scorch::farm {

std::string batch_path(const std::string& dir, int64_t id) { return fmt::format("{}/batch_{:06d}.h5", dir, id); }

std::vector<Batch> batches(const Plan& plan) {
  SCORCH_CHECK(plan.batch_size > 0, "farm: batch size must be positive (got {})", plan.batch_size);
  SCORCH_CHECK(plan.num_items >= 0, "farm: negative item count {}", plan.num_items);
  std::vector<Batch> out;
  for (int64_t b = 0, id = 0; b < plan.num_items; b += plan.batch_size, ++id) {
    out.push_back({id, b, std::min(plan.batch_size, plan.num_items - b), batch_path(plan.dir, id)});
  }
  return out;
}

bool batch_file_complete(const Batch& b, const std::string& attr, const std::string& value) {
  if (!fs::exists(b.path)) return false;
  try {
    auto f = h5::File::open_read(b.path);
    if (!attr.empty() && (!h5::has_attr(f.id(), attr) || h5::get_attr_string(f.id(), attr, b.path) != value)) {
      spdlog::warn("{} was made with other settings: it will be computed again", b.path);
      return false;
    }
    auto idx = h5::read_tensor(f.id(), "index", b.path);
    if (!(idx.scalar_type() == torch::kInt64 && idx.dim() == 1 && idx.size(0) == b.count &&
          idx.equal(torch::arange(b.begin, b.begin + b.count, torch::kInt64)))) {
      return false;
    }
    f.close();
    // A right index says nothing of the data: read every dataset back (checksums verified),
    // so that a damaged batch is computed again here, not found by the next reader.
    h5::verify_file(b.path);
    return true;
  } catch (const std::exception& e) {
    spdlog::warn("{} cannot be read ({}): it will be computed again", b.path, e.what());
    return false;
  }
}

void write_batch(const Batch& b, const std::string& attr, const std::string& value,
                 const std::function<void(hid_t file)>& fill) {
  h5::write_atomically(b.path, [&](hid_t f) {
    h5::write_tensor(f, "index", torch::arange(b.begin, b.begin + b.count, torch::kInt64));
    h5::set_attr(f, attr, value);
    fill(f);
  });
}

torch::Tensor read_batches(const Plan& plan, const std::string& name, int64_t limit) {
  std::vector<torch::Tensor> parts;
  int64_t rows = 0;
  for (const auto& b : batches(plan)) {
    if (limit >= 0 && rows >= limit) break;
    SCORCH_CHECK(fs::exists(b.path), "{}: batch {} of the run (items {}..{}) is missing: run the command again to "
                 "finish it", b.path, b.id, b.begin, b.begin + b.count - 1);
    auto f = h5::File::open_read(b.path);
    auto t = h5::read_tensor(f.id(), name, b.path);
    SCORCH_CHECK(t.dim() >= 1 && t.size(0) == b.count, "{}: /{} has {} rows, the batch {}", b.path, name,
                 t.dim() ? t.size(0) : 0, b.count);
    if (limit >= 0) t = t.slice(0, 0, std::min(t.size(0), limit - rows));
    rows += t.size(0);
    parts.push_back(t);
  }
  SCORCH_CHECK(!parts.empty(), "{}: the run has no batches", plan.dir);
  return torch::cat(parts);
}

void assemble(const Plan& plan, const std::string& path, const std::vector<std::string>& names,
              const std::function<void(hid_t file)>& extra) {
  const auto all = batches(plan);
  SCORCH_CHECK(!all.empty(), "{}: nothing to assemble", plan.dir);
  h5::write_atomically(path, [&](hid_t out) {
    for (const auto& name : names) {
      std::vector<int64_t> shape;
      torch::ScalarType type;
      {
        auto f = h5::File::open_read(all[0].path);
        auto first = h5::read_rows(f.id(), name, 0, 1, all[0].path);
        shape = first.sizes().vec();
        type = first.scalar_type();
      }
      shape[0] = plan.num_items;
      h5::create_dataset(out, name, type, shape);
      for (const auto& b : all) {
        auto f = h5::File::open_read(b.path);
        auto t = h5::read_tensor(f.id(), name, b.path);
        SCORCH_CHECK(t.size(0) == b.count, "{}: /{} has {} rows, the batch {}", b.path, name, t.size(0), b.count);
        h5::write_rows(out, name, b.begin, t);
      }
    }
    if (extra) extra(out);
  });
}

std::string Report::summary(const std::string& what) const {
  std::string ranks;
  for (auto c : per_rank) ranks += fmt::format(" {}", c);
  return fmt::format("{} batches ({} already done), {} computed in {:.1f} s: {:.2f} {}/s, NFE per item {:.1f} (min {}, "
                     "max {}); batches per rank:{}",
                     batches, skipped, done, seconds, items_per_s(), what, nfe_mean, nfe_min, nfe_max, ranks);
}

std::string Report::stopped_message(const std::string& dir) const {
  return fmt::format("stopped by a signal: {} of {} batches done in {}; run the same command to finish", skipped + done,
                     batches, dir);
}

Report run(dist::Communicator& comm, const Plan& plan, const std::function<bool(const Batch&)>& complete,
           const std::function<Outcome(const Batch&)>& work) {
  SCORCH_CHECK(plan.balance == "dynamic" || plan.balance == "static",
               "eval.balance = \"{}\": valid are dynamic, static", plan.balance);
  const auto all = batches(plan);
  const int64_t B = static_cast<int64_t>(all.size());
  const int rank = comm.rank(), world = comm.size();
  // One run per run directory: a second identical command would compute every batch again
  // beside the first. Rank 0 holds <dir>/.lock until the dealing ends (a dead holder's lock
  // is taken over); runs of other settings have other directories and go on side by side.
  std::unique_ptr<io::WorkdirLock> lock;
  dist::on_root_or_throw(comm, [&] {
    lock = std::make_unique<io::WorkdirLock>(plan.dir, fmt::format("scorch {} ({} ranks)", plan.what, world),
                                             "run directory", "the same batches would be computed twice");
    const int n = io::remove_stale_temps(plan.dir);
    if (n > 0) spdlog::info("removed {} temporary file(s) that an interrupted run left in {}", n, plan.dir);
  });

  const std::string plan_text =
      fmt::format("{}: {} {} in {} batches of {} under {}", plan.what, plan.num_items, plan.what, B, plan.batch_size,
                  plan.dir);
  if (rank == 0 && B >= 10000) spdlog::info("{} on {} rank(s): checking which batches are done", plan_text, world);
  // Which batches are finished: each rank checks every world-th one whose file the directory
  // lists (one listing, not a stat per batch: a fresh run of a million batches starts at
  // once); a sum combines them. (Plain memory, one tensor op per run, not per batch.)
  std::unordered_set<std::string> present;
  {
    std::error_code ec;
    for (fs::directory_iterator it(plan.dir, ec), end; !ec && it != end; it.increment(ec))
      present.insert(it->path().filename().string());
  }
  auto done = torch::zeros({std::max<int64_t>(B, 1)}, torch::kInt64);
  auto* flag = done.data_ptr<int64_t>();
  for (int64_t i = rank; i < B; i += world) {
    const auto& b = all[static_cast<size_t>(i)];
    flag[i] = present.count(fs::path(b.path).filename().string()) && complete(b) ? 1 : 0;
  }
  comm.allreduce_sum(done);
  flag = done.data_ptr<int64_t>();
  std::vector<int64_t> pending;
  for (int64_t i = 0; i < B; ++i) {
    if (flag[i] == 0) pending.push_back(i);
  }
  Report rep;
  rep.batches = B;
  rep.skipped = B - static_cast<int64_t>(pending.size());
  const int64_t P = static_cast<int64_t>(pending.size());
  if (rank == 0) {
    spdlog::info("{}: {} already done, {} to compute on {} rank(s), {} dealing", plan_text, rep.skipped, P, world,
                 plan.balance);
  }

  // Static share: contiguous positions of `pending`; dynamic: the counter hands out the rest.
  const bool dynamic = plan.balance == "dynamic" && world > 1;
  const int64_t first = dynamic ? (P / 2) / world : 0;
  dist::Range mine = dynamic ? dist::Range{rank * first, (rank + 1) * first} : dist::shard_range(P, rank, world);
  std::unique_ptr<dist::SharedCounter> counter;
  if (dynamic) counter = comm.make_counter(first * world);

  int64_t count = 0, items = 0, nfe_sum = 0;
  int64_t nfe_min = std::numeric_limits<int64_t>::max(), nfe_max = 0;
  bool stopped_here = false;
  const auto t0 = std::chrono::steady_clock::now();
  auto last_log = t0;
  int64_t last_decile = 0;
  const bool on_terminal = isatty(STDERR_FILENO) != 0 || isatty(STDOUT_FILENO) != 0;
  int64_t pos = mine.begin;
  while (true) {
    int64_t p = -1;
    if (pos < mine.end) {
      p = pos++;
    } else if (dynamic && !stopped_here) {
      if (stop_requested()) {
        stopped_here = true;
        continue;
      }
      p = counter->fetch_add(1);
      if (p >= P) p = -1;
    }
    if (p < 0) break;
    if (stop_requested()) {  // finish nothing new: the current batch was the last
      stopped_here = true;
      if (!dynamic) break;
      continue;
    }
    const auto& b = all[static_cast<size_t>(pending[static_cast<size_t>(p)])];
    comm.set_activity(fmt::format("farm batch {}", b.id));
    const auto o = work(b);
    ++count;
    items += b.count;
    nfe_sum += o.nfe * b.count;
    nfe_min = std::min(nfe_min, o.nfe);
    nfe_max = std::max(nfe_max, o.nfe);
    const auto now = std::chrono::steady_clock::now();
    // Progress from rank 0: its first batch (the pace and an ETA within seconds of the start,
    // however large the run), then every 10 s on a terminal, else one line per 10% of the
    // batches or per 10 minutes, whichever comes first.
    const int64_t dealt = std::min(p + 1, P), decile = P > 0 ? dealt * 10 / P : 10;
    const double since = std::chrono::duration<double>(now - last_log).count();
    const bool due = count == 1 || (on_terminal ? since >= 10.0 : decile > last_decile || since >= 600.0);
    if (rank == 0 && (due || p + 1 == P)) {
      last_log = now;
      last_decile = decile;
      const double el = std::chrono::duration<double>(now - t0).count();
      spdlog::info("{}: {}/{} batches dealt ({}%), rank 0 finished batch {} ({} of its own) | {} elapsed | ETA {}",
                   plan.what, dealt, P, 100 * dealt / std::max<int64_t>(P, 1), b.id, count, format_duration(el),
                   format_duration(el / static_cast<double>(dealt) * static_cast<double>(P - dealt)));
    }
  }
  // A rank that stopped without claiming had nothing in hand: its static share remains.
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  auto counts = torch::zeros({world}, torch::kInt64);
  counts[rank] = count;
  comm.allreduce_sum(counts);
  auto sums = torch::tensor({items, nfe_sum, int64_t{stopped_here ? 1 : 0}}, torch::kInt64);
  comm.allreduce_sum(sums);
  auto mm = comm.all_gather(torch::tensor({count > 0 ? nfe_min : std::numeric_limits<int64_t>::max(),
                                           count > 0 ? nfe_max : int64_t{0}},
                                          torch::kInt64));
  auto t = comm.all_gather(torch::tensor({secs}, torch::kFloat64));
  counter.reset();  // collective (MPI_Win_free)
  for (int r = 0; r < world; ++r) rep.per_rank.push_back(counts[r].item<int64_t>());
  rep.done = counts.sum().item<int64_t>();
  rep.items_done = sums[0].item<int64_t>();
  rep.nfe_mean = rep.items_done > 0 ? static_cast<double>(sums[1].item<int64_t>()) / static_cast<double>(rep.items_done) : 0;
  rep.nfe_min = rep.done > 0 ? mm.select(1, 0).min().item<int64_t>() : 0;
  rep.nfe_max = mm.select(1, 1).max().item<int64_t>();
  rep.seconds = t.max().item<double>();
  rep.stopped = !rep.complete();
  if (rep.stopped) {
    SCORCH_CHECK(sums[2].item<int64_t>() > 0, "farm: {} of {} batches missing after a run that was not stopped (a bug)",
                 rep.batches - rep.skipped - rep.done, rep.batches);
  }
  return rep;
}

}  // namespace scorch::farm
