// The multi-rank suite, continued (see dist/test_dist.cpp): bf16 and channels-last training,
// every rank's RNG in checkpoints and resume on all ranks, node-shared memory (one copy per
// node), every data source against the 1-rank batches, a streaming resume, snapshot sampling
// that leaves training unchanged, and a single-node run that listens on no network address.
#include "dist/dist_common.h"

using namespace scorch;
using namespace scorch::test::dist_helpers;

BOOST_AUTO_TEST_SUITE(distributed)


// The precision and layout switches on the CPU: channels-last gives the gradients of the
// default layout (float tolerance); bf16 autocast a first-step loss within 2% of fp32 and
// finite gradients within 5% of fp32's (but not equal to them), for the U-Net, NCSN++ and
// the point MLP.
BOOST_AUTO_TEST_CASE(channels_last_and_bf16_train) {
  auto world = dist::mpi_world();
  std::string dir = shared_dir(*world, "precision");
  for (const std::string net : {"unet", "ncsnpp", "mlp"}) {
    Config cfg = net == "mlp" ? point_config(*world, dir) : image_config(*world, dir);
    cfg.model.dropout = 0.0;
    cfg.optim.grad_clip = -1;
    if (net == "ncsnpp") make_ncsnpp(cfg);
    auto first_step = [&](const Config& c, const std::string& tag) {
      auto tr = std::make_unique<train::Trainer>(c, *world, dir + "/" + tag);
      const double loss = tr->train_step().item<double>();
      std::vector<torch::Tensor> grads;
      for (const auto& [n, p] : tr->trainable()) grads.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
      return std::pair{loss, grads};
    };
    auto [loss32, g32] = first_step(cfg, "fp32");
    if (net != "mlp") {
      Config c = cfg;
      c.training.channels_last = true;
      auto [loss_cl, g_cl] = first_step(c, "cl");
      BOOST_TEST(loss_cl == loss32, boost::test_tools::tolerance(1e-5));
      // Relative to the largest gradient: some gradients are zero analytically (attention's
      // key bias) and only float noise in either layout.
      double worst = 0, scale = 0;
      for (const auto& g : g32)
        if (g.defined()) scale = std::max(scale, g.abs().max().item<double>());
      for (size_t i = 0; i < g32.size(); ++i) {
        if (g32[i].defined()) worst = std::max(worst, (g_cl[i] - g32[i]).abs().max().item<double>() / scale);
      }
      BOOST_TEST_INFO(net << " channels_last: worst relative gradient difference " << worst);
      BOOST_TEST(worst < 1e-3);
    }
    Config c = cfg;
    c.training.precision = "bf16";
    auto [loss16, g16] = first_step(c, "bf16");
    BOOST_TEST_INFO(net << " bf16 loss " << loss16 << " vs fp32 " << loss32);
    BOOST_TEST(loss16 == loss32, boost::test_tools::tolerance(0.02));
    // The networks start with a zero last layer (the loss does not see the forward's
    // precision yet), but the gradients do: they must differ from fp32 (autocast was on)
    // and stay close to it.
    int64_t bad = 0;
    double gdiff = 0, gscale = 0;
    for (size_t i = 0; i < g16.size(); ++i) {
      if (!g16[i].defined()) continue;
      bad += !torch::isfinite(g16[i]).all().item<bool>();
      gdiff = std::max(gdiff, (g16[i] - g32[i]).abs().max().item<double>());
      gscale = std::max(gscale, g32[i].abs().max().item<double>());
    }
    BOOST_TEST_INFO(net << " bf16 gradients differ from fp32 by " << gdiff << " of " << gscale);
    BOOST_TEST(gdiff > 0);
    BOOST_TEST(gdiff < 0.05 * gscale);
    BOOST_TEST(bad == 0);
  }
  world->barrier();
  if (world->rank() == 0) std::filesystem::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(checkpoint_holds_every_ranks_rng_and_resumes_on_all_ranks) {
  auto world = dist::mpi_world();
  std::string dir = shared_dir(*world, "ckpt");
  Config cfg = image_config(*world, dir);
  cfg.model.dropout = 0.2;
  io::TensorMap straight;
  {
    train::Trainer a(cfg, *world, dir + "/straight");
    a.run(4);
    for (const auto& [n, p] : a.trainable()) straight[n] = p.detach().clone();
  }
  {
    train::Trainer b(cfg, *world, dir + "/resumed");
    b.run(2);
  }
  world->barrier();
  auto st = io::load_checkpoint(io::latest_checkpoint(dir + "/resumed"));
  BOOST_TEST(st.world_size == world->size());
  BOOST_TEST(st.rng.size(0) == world->size());
  BOOST_TEST(!torch::equal(st.rng[0], st.rng[1]));  // distinct dropout streams per rank
  BOOST_TEST(!st.rng_cuda.defined());               // a CPU run
  train::Trainer c(cfg, *world, dir + "/resumed");
  c.resume_latest();
  c.run(4);
  io::TensorMap resumed;
  for (const auto& [n, p] : c.trainable()) resumed[n] = p.detach().clone();
  BOOST_TEST(test::maps_equal(resumed, straight));
  world->barrier();
  if (world->rank() == 0) std::filesystem::remove_all(dir);
}

// node_shared: the node's ranks (all of them here) hold one copy, allocated once by the
// node's first rank, and every rank reads the same bytes as a private load of the file.
BOOST_AUTO_TEST_CASE(node_shared_holds_one_copy_per_node) {
  auto world = dist::mpi_world();
  std::string dir = shared_dir(*world, "nodeshared");
  Config cfg = image_config(*world, dir);
  if (world->rank() == 0) {  // 4 MiB of rows: large enough to see in a node's tmpfs
    auto g = at::make_generator<at::CPUGeneratorImpl>(7);
    data::write_images(dir + "/big.h5", torch::randint(0, 256, {16384, 16, 16, 1}, g, torch::kInt64).to(torch::kUInt8),
                       torch::arange(16384) % 10);
  }
  world->barrier();
  cfg.data.path = dir + "/big.h5";
  const auto hosts = hosts_by_rank(*world);
  const int64_t nodes = static_cast<int64_t>(std::set<std::string>(hosts.begin(), hosts.end()).size());
  // What this node's file systems in memory hold before and after (where Open MPI puts
  // the segment: /dev/shm, or its session directory under /tmp).
  world->barrier();
  const int64_t shm0 = tmpfs_used("/dev/shm"), tmp0 = tmpfs_used("/tmp");
  auto shared = data::open_source(cfg.data.path, {"node_shared", 1.0, 0}, world.get());
  world->barrier();
  const int64_t shm1 = tmpfs_used("/dev/shm"), tmp1 = tmpfs_used("/tmp");
  const int64_t bytes = shared->info().bytes;
  auto allocated = torch::tensor({shared->resident_bytes()}, torch::kInt64);
  world->allreduce_sum(allocated);
  BOOST_TEST(allocated.item<int64_t>() == bytes * nodes);  // one copy per node among all ranks
  // Measured in the node: the node's first rank reports what its memory file systems grew
  // by (the other ranks of the node see the same file systems).
  if (world->local_rank() == 0 && shm0 >= 0) {
    const int64_t grew = (shm1 - shm0) + (tmp0 >= 0 ? tmp1 - tmp0 : 0);
    BOOST_TEST_MESSAGE(host_name() << ": /dev/shm and /tmp grew by " << grew << " bytes for a " << bytes
                                   << "-byte data set (" << world->local_size() << " ranks on the node)");
    // One rank alone on its node needs no shared segment (Open MPI then allocates private
    // memory: allocated_here counts it); a segment on a /tmp on disk cannot be measured.
    if (world->local_size() > 1 && (grew >= bytes || tmp0 >= 0)) {
      BOOST_TEST(grew >= bytes);
      BOOST_TEST(grew < bytes + (int64_t(2) << 20));  // one copy, not one per rank
    }
  }
  auto mine = data::load(cfg.data.path).images;
  auto all = shared->rows(0, shared->size());
  int64_t errors = !torch::equal(all, mine);
  // The same bytes on every rank: rank 0's copy checked against everyone's.
  auto gathered = world->all_gather(all.reshape({1, -1}).contiguous());
  for (int r = 0; r < world->size(); ++r) errors += !torch::equal(gathered[r], gathered[0]);
  BOOST_TEST(global_errors(*world, errors) == 0);
  shared.reset();
  world->barrier();
  if (world->rank() == 0) std::filesystem::remove_all(dir);
}

// Step s gets the same rows, flips, dequantisation noise and labels in every source, with
// and without prefetch, at this world size and at one rank (the whole batch on one rank).
BOOST_AUTO_TEST_CASE(every_source_gives_the_one_rank_batches_at_any_world_size) {
  auto world = dist::mpi_world();
  std::string dir = shared_dir(*world, "sourcebatches");
  Config cfg = image_config(*world, dir);
  cfg.model.num_classes = 10;
  cfg.training.label_dropout = 0.25;
  validate(cfg);
  const int64_t B = cfg.training.batch_size;
  auto share = dist::batch_share(B, world->rank(), world->size(), 1);
  auto one_rank_src = data::in_memory(data::load(cfg.data.path));
  train::BatchMaker one_rank(cfg, *one_rank_src, {0, B}, false, 1.0, 1000);
  int64_t errors = 0;
  for (const std::string kind : {"memory", "node_shared", "stream"}) {
    auto src = data::open_source(cfg.data.path, {kind, 1.0, 0}, world.get());
    train::BatchMaker mk(cfg, *src, share, false, 1.0, 1000);
    for (int64_t depth : {0, 2}) {
      std::unique_ptr<train::Prefetcher> pf;
      if (depth) pf = std::make_unique<train::Prefetcher>([&](int64_t s) { return mk.make(s); }, 0, 20, depth);
      for (int64_t step = 0; step < 20; ++step) {
        auto hb = pf ? pf->take(step) : mk.make(step);
        auto want = one_rank.make(step);
        auto mine = [&](const torch::Tensor& t) { return t.slice(0, share.begin, share.end); };
        const bool same = torch::equal(hb.images, mine(want.images)) && torch::equal(hb.deq, mine(want.deq)) &&
                          torch::equal(hb.flip, mine(want.flip)) && torch::equal(hb.t, mine(want.t)) &&
                          torch::equal(hb.z, mine(want.z)) && torch::equal(hb.labels, mine(want.labels));
        if (!same) {
          ++errors;
          BOOST_TEST_MESSAGE("rank " << world->rank() << ": " << kind << " prefetch " << depth << " step " << step
                                     << " differs from one rank");
        }
      }
    }
  }
  BOOST_TEST(global_errors(*world, errors) == 0);
  world->barrier();
  if (world->rank() == 0) std::filesystem::remove_all(dir);
}

// Training that streams its data and resumes from a checkpoint equals an uninterrupted run.
BOOST_AUTO_TEST_CASE(stream_resume_equals_an_uninterrupted_run) {
  auto world = dist::mpi_world();
  std::string dir = shared_dir(*world, "streamresume");
  Config cfg = image_config(*world, dir);
  cfg.data.source = "stream";
  cfg.data.cache_mb = 0.01;
  io::TensorMap straight, memory;
  {
    train::Trainer a(cfg, *world, dir + "/straight");
    a.run(5);
    for (const auto& [n, p] : a.trainable()) straight[n] = p.detach().clone();
  }
  {
    Config m = cfg;
    m.data.source = "memory";
    train::Trainer a(m, *world, dir + "/memory");
    a.run(5);
    for (const auto& [n, p] : a.trainable()) memory[n] = p.detach().clone();
  }
  {
    train::Trainer b(cfg, *world, dir + "/resumed");
    b.run(2);
  }
  world->barrier();
  train::Trainer c(cfg, *world, dir + "/resumed");
  c.resume_latest();
  c.run(5);
  io::TensorMap resumed;
  for (const auto& [n, p] : c.trainable()) resumed[n] = p.detach().clone();
  BOOST_TEST(test::maps_equal(resumed, straight));
  BOOST_TEST(test::maps_equal(memory, straight));
  world->barrier();
  if (world->rank() == 0) std::filesystem::remove_all(dir);
}

// training.snapshot_sampling draws its grid with the EMA weights split over the ranks and
// leaves training exactly as it was: the weights equal a run without it, bitwise.
BOOST_AUTO_TEST_CASE(snapshot_sampling_writes_grids_and_leaves_training_unchanged) {
  auto world = dist::mpi_world();
  std::string dir = shared_dir(*world, "snapsample");
  Config cfg = image_config(*world, dir);
  cfg.training.snapshot_freq = 2;
  cfg.sampling.method = "ddim";
  cfg.sampling.steps = 5;
  io::TensorMap plain, sampled;
  {
    train::Trainer a(cfg, *world, dir + "/plain");
    a.run(4);
    for (const auto& [n, p] : a.trainable()) plain[n] = p.detach().clone();
  }
  cfg.training.snapshot_sampling = true;
  cfg.training.snapshot_samples = 5;
  {
    train::Trainer b(cfg, *world, dir + "/sampled");
    b.run(4);
    for (const auto& [n, p] : b.trainable()) sampled[n] = p.detach().clone();
  }
  BOOST_TEST(test::maps_equal(plain, sampled));
  world->barrier();
  if (world->rank() == 0) {
    for (const char* f : {"/sampled/samples/snapshot_000000002.png", "/sampled/samples/snapshot_000000004.png"})
      BOOST_TEST(std::filesystem::file_size(dir + f) > 100u, f);
    BOOST_TEST(!std::filesystem::exists(dir + "/plain/samples"));
    std::filesystem::remove_all(dir);
  }
}

// Issue 22: a run whose ranks are all on this node (these tests under mpirun -np N) opens no
// TCP listener on a network address: Open MPI's TCP transport, which binds every interface,
// is replaced by shared memory, and NCCL is pointed at loopback. The listeners are read from
// /proc/net/tcp{,6} (state 0A) and matched to this process's sockets by inode.
BOOST_AUTO_TEST_CASE(a_single_node_run_listens_on_no_network_address) {
  const auto& applied = dist::network_defaults_applied();
  const bool btl = std::find(applied.begin(), applied.end(), "OMPI_MCA_btl=self,vader") != applied.end();
  if (!btl) {
    BOOST_TEST_MESSAGE("OMPI_MCA_btl was set by the launcher or the ranks span nodes: nothing to check");
    return;
  }
  auto comm = dist::mpi_world();
  int64_t errors = 0;
  const char* nccl = std::getenv("NCCL_SOCKET_IFNAME");
  BOOST_TEST((nccl != nullptr && std::string(nccl) == "lo"));
  errors += nccl == nullptr || std::string(nccl) != "lo";
  std::set<std::string> mine;  // "socket:[inode]" -> inode
  for (const auto& fd : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    const auto target = std::filesystem::read_symlink(fd.path(), ec).string();
    if (!ec && target.rfind("socket:[", 0) == 0) mine.insert(target.substr(8, target.size() - 9));
  }
  int listeners = 0;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream f(line);
      std::string sl, local, remote, state, queues, timer, retr, uid, timeout, inode;
      f >> sl >> local >> remote >> state >> queues >> timer >> retr >> uid >> timeout >> inode;
      if (state != "0A" || !mine.count(inode)) continue;
      ++listeners;
      const std::string addr = local.substr(0, local.find(':'));
      // IPv4 in host (little-endian) order: the first octet is the last two hex digits.
      const bool loopback = addr.size() == 8 ? addr.substr(6) == "7F" : addr == "00000000000000000000000001000000";
      BOOST_TEST(loopback, "rank " << comm->rank() << " listens on " << table << " " << local);
      errors += !loopback;
    }
  }
  BOOST_TEST_MESSAGE("rank " << comm->rank() << ": " << listeners << " loopback listeners, btl self,vader");
  BOOST_TEST(global_errors(*comm, errors) == 0);
}

BOOST_AUTO_TEST_SUITE_END()
