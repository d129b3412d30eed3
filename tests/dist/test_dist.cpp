// Multi-rank tests, run under `mpiexec -np 2` and `-np 3` (every case holds for any world
// size W >= 2). Collectives are checked on inputs whose reduced values are exactly
// predictable, each rank counts its errors and the counts are all-reduced (a failure on
// any rank fails every rank). Training on W ranks with B/W rows each must match training
// on 1 rank with batch B; the bucketed, overlapped reducer must match one plain all-reduce
// of every gradient; gradient accumulation must match one big step; and every row's noise
// must be bitwise the same whatever the world size.
//
// The same suite runs across the nodes of tests/cluster (2 nodes x 2 ranks, 4 x 1, under
// mpirun and srun): then SCORCH_TEST_SHARED_DIR names a folder every node sees (each
// node's /tmp is its own), local ranks come from each node, and node_shared must hold one
// copy per node, measured in each node's own /dev/shm and /tmp.
//
// This file: collectives, sharding, row noise, W ranks against 1, the reducer, gradient
// accumulation and the replica checksum; dist/test_dist_state.cpp the rest.
#include "dist/dist_common.h"

using namespace scorch;
using namespace scorch::test::dist_helpers;

BOOST_AUTO_TEST_SUITE(distributed)

BOOST_AUTO_TEST_CASE(world_has_several_ranks) {
  auto comm = dist::mpi_world();
  BOOST_REQUIRE_MESSAGE(comm->size() >= 2, "run this suite with mpiexec -np 2 or more (got " << comm->size() << ")");
  BOOST_TEST_MESSAGE("MPI_THREAD_MULTIPLE: " << dist::mpi_thread_multiple() << ", " << comm->name());
}

// Local rank and size come from the node: the ranks with this host name, in rank order (as
// MPI_COMM_TYPE_SHARED splits them), and agree with what the launcher says (Open MPI's
// OMPI_COMM_WORLD_LOCAL_RANK/SIZE, Slurm's SLURM_LOCALID). The placement map rank 0 logs
// names every rank's host and local rank, and the GPU a rank would take is its local rank
// modulo the node's GPUs.
BOOST_AUTO_TEST_CASE(local_ranks_come_from_the_node) {
  auto comm = dist::mpi_world();
  const auto hosts = hosts_by_rank(*comm);
  int64_t errors = 0, local_rank = 0, local_size = 0;
  for (int r = 0; r < comm->size(); ++r) {
    if (hosts[static_cast<size_t>(r)] != host_name()) continue;
    if (r < comm->rank()) ++local_rank;
    ++local_size;
  }
  errors += comm->local_rank() != local_rank;
  errors += comm->local_size() != local_size;
  for (const auto& [var, want] : {std::pair{"OMPI_COMM_WORLD_LOCAL_RANK", local_rank},
                                  std::pair{"OMPI_COMM_WORLD_LOCAL_SIZE", local_size},
                                  std::pair{"SLURM_LOCALID", local_rank}}) {
    if (const char* v = std::getenv(var)) {
      BOOST_TEST_INFO(var << " = " << v << " on " << host_name());
      BOOST_TEST(std::atoll(v) == want);
      errors += std::atoll(v) != want;
    }
  }
  const auto map = dist::placement_map(*comm, torch::Device(torch::kCPU));
  if (comm->rank() == 0) {
    for (int r = 0; r < comm->size(); ++r) {
      int lr = 0, ls = 0;
      for (int q = 0; q < comm->size(); ++q) {
        if (hosts[static_cast<size_t>(q)] != hosts[static_cast<size_t>(r)]) continue;
        lr += q < r;
        ++ls;
      }
      const auto line = fmt::format("{:<24} rank {:>5}  local rank {:>3} of {:<3}", hosts[static_cast<size_t>(r)], r, lr, ls);
      BOOST_TEST_INFO("placement map:\n" << map << "\nmissing: " << line);
      BOOST_TEST(map.find(line) != std::string::npos);
    }
  }
  // One GPU per local rank while there are enough, shared round-robin beyond.
  for (int gpus : {1, 2, 4, 8}) errors += dist::gpu_for_local_rank(static_cast<int>(local_rank), gpus) != local_rank % gpus;
  errors += dist::gpu_for_local_rank(3, 4) != 3 || dist::gpu_for_local_rank(5, 4) != 1;
  BOOST_TEST(global_errors(*comm, errors) == 0);
}

BOOST_AUTO_TEST_CASE(allreduce_is_exact_sync_and_async) {
  auto comm = dist::mpi_world();
  const int r = comm->rank(), W = comm->size();
  int64_t errors = 0;
  // Integers in float32 up to 2^24 add exactly: rank r contributes (r+1) * i.
  auto f = torch::arange(1000, torch::kFloat32) * static_cast<float>(r + 1);
  comm->allreduce_sum(f);
  auto expect = torch::arange(1000, torch::kFloat32) * static_cast<float>(W * (W + 1) / 2);
  errors += (f != expect).sum().item<int64_t>();
  auto d = torch::full({7}, std::ldexp(1.0, -r - 1), torch::kFloat64);  // 1/2 + 1/4 ...
  comm->allreduce_sum(d);
  errors += (d != (1.0 - std::ldexp(1.0, -W))).sum().item<int64_t>();
  // Several collectives in flight, waited in reverse order: each completes with its own sum.
  std::vector<torch::Tensor> bufs;
  std::vector<dist::WorkPtr> works;
  for (int k = 0; k < 6; ++k) {
    bufs.push_back(torch::full({1000 * (k + 1)}, static_cast<int64_t>((k + 1) * (r + 1)), torch::kInt64));
    works.push_back(comm->iallreduce_sum(bufs.back()));
  }
  for (int k = 5; k >= 0; --k) {
    works[static_cast<size_t>(k)]->wait();
    errors += (bufs[static_cast<size_t>(k)] != static_cast<int64_t>((k + 1) * W * (W + 1) / 2)).sum().item<int64_t>();
  }
  BOOST_TEST(global_errors(*comm, errors) == 0);
}

BOOST_AUTO_TEST_CASE(broadcast_all_gather_and_gather_rows) {
  auto comm = dist::mpi_world();
  const int r = comm->rank(), W = comm->size();
  auto t = torch::full({3, 2}, static_cast<float>(r + 10));
  comm->broadcast(t, 0);
  int64_t errors = (t != 10.0f).sum().item<int64_t>();
  auto g = comm->all_gather(torch::full({2}, static_cast<int64_t>(r * 7), torch::kInt64));
  BOOST_TEST(g.sizes() == (std::vector<int64_t>{W, 2}));
  for (int k = 0; k < W; ++k) errors += (g[k] != k * 7).sum().item<int64_t>();
  // Unequal shards: rank k sends k+1 rows of value k.
  auto rows = torch::full({r + 1, 2}, static_cast<int64_t>(r), torch::kInt64);
  auto all = comm->gather_rows(rows, 0);
  if (r == 0) {
    BOOST_TEST(all.size(0) == W * (W + 1) / 2);
    int64_t at = 0;
    for (int k = 0; k < W; ++k) {
      errors += (all.slice(0, at, at + k + 1) != k).sum().item<int64_t>();
      at += k + 1;
    }
  } else {
    BOOST_TEST(!all.defined());
  }
  BOOST_TEST(global_errors(*comm, errors) == 0);
}

// The farm's counter hands out every value exactly once whoever asks and however often:
// one-sided on one node, a service on rank 0 across nodes.
BOOST_AUTO_TEST_CASE(shared_counter_hands_out_every_value_once) {
  auto comm = dist::mpi_world();
  constexpr int64_t kPerRank = 50, kStart = 7;
  auto counter = comm->make_counter(kStart);
  auto mine = torch::full({kPerRank}, -1, torch::kInt64);
  for (int64_t i = 0; i < kPerRank; ++i) mine[i] = counter->fetch_add(1);
  counter.reset();
  auto all = std::get<0>(torch::sort(comm->all_gather(mine).flatten()));
  BOOST_TEST(torch::equal(all, torch::arange(kStart, kStart + kPerRank * comm->size(), torch::kInt64)));
}

BOOST_AUTO_TEST_CASE(sharding_covers_everything_once) {
  for (int W : {1, 2, 3, 7}) {
    int64_t covered = 0, prev_end = 0;
    for (int r = 0; r < W; ++r) {
      auto s = dist::shard_range(10, r, W);
      BOOST_TEST(s.begin == prev_end);
      BOOST_TEST(s.size() >= 10 / W);
      prev_end = s.end;
      covered += s.size();
    }
    BOOST_TEST(covered == 10);
  }
  auto msg = test::error_of([] { dist::batch_share(7, 0, 2); });
  BOOST_TEST(msg.find("training.batch_size = 7") != std::string::npos);
  msg = test::error_of([] { dist::batch_share(8, 0, 2, 3); });
  BOOST_TEST(msg.find("training.grad_accum = 3") != std::string::npos);
  BOOST_TEST(test::error_of([] { dist::batch_share(12, 1, 2, 3); }).empty());
}

// A batch that does not split over the ranks is refused before any work, naming the sizes
// (scorch does not train with unequal shares).
BOOST_AUTO_TEST_CASE(indivisible_batch_is_refused) {
  auto world = dist::mpi_world();
  std::string dir = shared_dir(*world, "indiv");
  Config cfg = image_config(*world, dir);
  cfg.training.batch_size = 4 * world->size() + 1;
  auto msg = test::error_of([&] { train::Trainer t(cfg, *world, dir + "/run"); });
  BOOST_TEST_INFO(msg);
  BOOST_TEST(msg.find(fmt::format("training.batch_size = {} is not divisible by the {} ranks", cfg.training.batch_size,
                                  world->size())) != std::string::npos);
  world->barrier();
  if (world->rank() == 0) std::filesystem::remove_all(dir);
}

// Row i of step s has the same time, noise, flip, dequantisation noise and data on every
// world size, bitwise: a rank's batch is exactly its slice of the 1-rank batch.
BOOST_AUTO_TEST_CASE(row_noise_is_bitwise_the_same_at_any_world_size) {
  auto world = dist::mpi_world();
  auto self = dist::mpi_self();
  std::string dir = shared_dir(*world, "rows");
  for (bool discrete : {false, true}) {
    Config cfg = image_config(*world, dir);
    cfg.training.continuous = !discrete;
    train::Trainer many(cfg, *world, dir + "/many");
    train::Trainer one(cfg, *self, dir + "/one");
    const int64_t b = cfg.training.batch_size / world->size(), lo = world->rank() * b;
    int64_t errors = 0;
    for (int64_t step : {0, 1, 7, 23}) {  // 23 is in the second epoch (96 items, batches of 4W)
      auto mine = many.make_batch(step);
      auto all = one.make_batch(step);
      BOOST_TEST(mine.size() == b);
      // On a CPU run the producer hands out network input (uint8 rows dequantised, flipped
      // and scaled on the host), so x0 carries the rows, flips and dequantisation noise.
      BOOST_TEST(mine.x0.defined());
      for (const auto& [a, c] : {std::pair{mine.x0, all.x0}, std::pair{mine.t, all.t}, std::pair{mine.z, all.z},
                                 std::pair{mine.flip, all.flip}}) {
        errors += !torch::equal(a, c.slice(0, lo, lo + b));
      }
      if (discrete) errors += !torch::equal(mine.levels, all.levels.slice(0, lo, lo + b));
      // Different steps draw different noise.
      if (step > 0) errors += torch::equal(mine.z, many.make_batch(0).z);
    }
    BOOST_TEST(global_errors(*world, errors) == 0);
  }
  world->barrier();
  if (world->rank() == 0) std::filesystem::remove_all(dir);
}

// W ranks x B/W == 1 rank x B after k steps (float tolerance: only the summation order of
// the gradient differs), for the image U-Net, the point MLP and NCSN++ (with and without
// the time embedding, whose unused layers the reducer must handle).
BOOST_AUTO_TEST_CASE(ranks_equal_one_rank_with_the_global_batch) {
  auto world = dist::mpi_world();
  auto self = dist::mpi_self();
  std::string dir = shared_dir(*world, "equiv");
  for (const std::string net : {"unet", "mlp", "ncsnpp", "ncsnpp_unconditional"}) {
    Config cfg = net == "mlp" ? point_config(*world, dir) : image_config(*world, dir);
    cfg.model.dropout = 0.0;  // dropout masks are per rank by design
    if (net.rfind("ncsnpp", 0) == 0) make_ncsnpp(cfg, net == "ncsnpp");
    cfg.dist.bucket_mb = 0.02;  // several buckets even for these small networks
    cfg.dist.first_bucket_mb = 0.005;
    cfg.dist.check_every = 2;
    const int64_t k = 5;
    train::Trainer many(cfg, *world, dir + "/many");
    many.run(k);
    train::Trainer one(cfg, *self, dir + "/one_" + std::to_string(world->rank()));
    one.run(k);
    const double diff = max_diff(many.trainable(), one.trainable());
    BOOST_TEST_INFO(net << ": max |W ranks - 1 rank| = " << diff);
    BOOST_TEST(diff < 1e-4);
    BOOST_TEST(many.reducer().buckets().size() > 2u);
    BOOST_TEST(many.reducer().unused_parameters().empty() == (net != "ncsnpp_unconditional"));
    // Sanity: training moved the weights far more than that tolerance.
    train::Trainer init(cfg, *self, dir + "/init");
    BOOST_TEST(max_diff(init.trainable(), one.trainable()) > 1e-3);
    // Every rank holds exactly the same weights.
    int64_t errors = 0;
    for (const auto& [name, p] : many.trainable()) {
      auto mine = p.detach().clone();
      auto root = mine.clone();
      world->broadcast(root, 0);
      errors += !torch::equal(mine, root);
    }
    BOOST_TEST(global_errors(*world, errors) == 0);
  }
  world->barrier();
  if (world->rank() == 0) std::filesystem::remove_all(dir);
}

// The bucketed reducer (hooks launching all-reduces during backward, small buckets,
// overlap on and off) gives the gradients of one plain all-reduce of every gradient,
// including NCSN++ with conditional = false (unused Dense_0 layers: undefined grads, as
// in PyTorch), over two steps (the second takes the path that skips unused parameters).
BOOST_AUTO_TEST_CASE(bucketed_gradients_equal_one_plain_allreduce) {
  auto world = dist::mpi_world();
  std::string dir = shared_dir(*world, "reducer");
  for (const std::string net : {"unet", "ncsnpp_unconditional"}) {
    for (bool overlap : {true, false}) {
      Config cfg = image_config(*world, dir);
      cfg.model.dropout = 0.0;
      if (net != "unet") make_ncsnpp(cfg, false);
      torch::manual_seed(11);
      auto model = models::make_model(cfg);
      auto s = sde::make_sde(cfg);
      auto score = models::make_score_fn(*model, *s);
      models::NamedTensors params;
      for (auto& [n, p] : models::named(model->named_parameters()))
        if (p.requires_grad()) params.emplace_back(n, p);
      // Each rank's own data: the average must mix them.
      auto gen = make_generator(1000 + static_cast<uint64_t>(world->rank()));
      auto loss_on = [&](int step) {
        auto x = torch::rand({4, 1, 8, 8}, gen) * 2 - 1;
        auto t = torch::rand({4}, gen) * 0.9 + 0.05;
        auto z = torch::randn({4, 1, 8, 8}, gen);
        (void)step;
        return losses::dsm_loss(score, *s, x, t, z, {});
      };
      int64_t errors = 0;
      double worst = 0;
      auto default_gen = at::detail::getDefaultCPUGenerator();
      auto state = default_gen.get_state();
      for (int step = 0; step < 2; ++step) {
        auto gstate = gen.get_state();
        // Plain: backward, then one all-reduce of everything.
        for (auto& [n, p] : params) p.mutable_grad() = torch::Tensor();
        loss_on(step).backward();
        std::vector<torch::Tensor> flat;
        for (auto& [n, p] : params) flat.push_back(p.grad().defined() ? p.grad().reshape(-1) : torch::zeros({p.numel()}));
        auto all = torch::cat(flat);
        world->allreduce_sum(all);
        all.div_(world->size());
        std::vector<torch::Tensor> plain;
        std::vector<bool> had_grad;
        for (auto& [n, p] : params) had_grad.push_back(p.grad().defined());
        int64_t off = 0;
        for (auto& [n, p] : params) {
          plain.push_back(all.slice(0, off, off + p.numel()).view_as(p).clone());
          off += p.numel();
        }
        // Bucketed, the same loss again (same draws).
        gen.set_state(gstate);
        {
          dist::Reducer red(params, *world, {/*bucket_mb=*/0.02, /*first_bucket_mb=*/0.005, overlap});
          for (int warm = 0; warm < step; ++warm) {  // the reducer's own first step, for step 1
            red.zero_grad();
            auto g2 = gen.get_state();
            loss_on(step).backward();
            gen.set_state(g2);
            red.finish();
          }
          red.zero_grad();
          loss_on(step).backward();
          // Buckets go out during backward once the reducer knows the unused parameters (from
          // its first step on for the U-Net, from its second for NCSN++ without embedding).
          if (net == "unet" || step == 1) BOOST_TEST((red.launched_in_backward() > 0) == overlap);
          red.finish();
          BOOST_TEST(red.unused_parameters().empty() == (net == "unet"));
          for (size_t i = 0; i < params.size(); ++i) {
            const auto& g = params[i].second.grad();
            if (!had_grad[i]) {
              errors += g.defined();  // unused: undefined, like PyTorch's None
              continue;
            }
            if (!g.defined()) {
              ++errors;
              continue;
            }
            const double d = (g - plain[i]).abs().max().item<double>();
            const double scale = plain[i].abs().max().item<double>() + 1e-12;
            worst = std::max(worst, d / scale);
            errors += d > 1e-5 * scale + 1e-9;
          }
        }
      }
      default_gen.set_state(state);
      BOOST_TEST_INFO(net << " overlap " << overlap << ": worst relative difference " << worst);
      BOOST_TEST(global_errors(*world, errors) == 0);
    }
  }
  world->barrier();
  if (world->rank() == 0) std::filesystem::remove_all(dir);
}

// training.grad_accum = k: each rank computes its share in k micro-batches and syncs once;
// the steps equal those without accumulation at the same global batch (float tolerance):
// the averaged gradients of a step without clipping (clipping, like Adam, would hide a
// scale error), its loss, and the weights after several steps with clipping (Adam turns
// float noise in near-zero gradients into O(lr) steps, which clipping keeps in check here).
BOOST_AUTO_TEST_CASE(gradient_accumulation_equals_one_big_step) {
  auto world = dist::mpi_world();
  std::string dir = shared_dir(*world, "accum");
  for (const std::string net : {"unet", "ncsnpp"}) {
    Config cfg = image_config(*world, dir);
    cfg.model.dropout = 0.0;
    if (net == "ncsnpp") make_ncsnpp(cfg);
    {
      Config c = cfg;
      c.optim.grad_clip = -1;
      train::Trainer plain(c, *world, dir + "/plain1");
      const double plain_loss = plain.train_step().item<double>();
      c.training.grad_accum = 4;
      train::Trainer accum(c, *world, dir + "/accum1");
      const double accum_loss = accum.train_step().item<double>();
      double grad_diff = 0, grad_scale = 0;
      for (size_t i = 0; i < plain.trainable().size(); ++i) {
        const auto& a = plain.trainable()[i].second.grad();
        const auto& b = accum.trainable()[i].second.grad();
        BOOST_REQUIRE(a.defined() && b.defined());
        grad_diff = std::max(grad_diff, (a - b).abs().max().item<double>());
        grad_scale = std::max(grad_scale, a.abs().max().item<double>());
      }
      BOOST_TEST_INFO(net << ": gradients differ by " << grad_diff << " of " << grad_scale << ", loss " << accum_loss
                          << " vs " << plain_loss);
      BOOST_TEST(grad_diff < 1e-5 * grad_scale);
      BOOST_TEST(accum_loss == plain_loss, boost::test_tools::tolerance(1e-5));
    }
    train::Trainer plain(cfg, *world, dir + "/plain");
    plain.run(4);
    cfg.training.grad_accum = 4;
    train::Trainer accum(cfg, *world, dir + "/accum");
    accum.run(4);
    const double diff = max_diff(plain.trainable(), accum.trainable());
    BOOST_TEST_INFO(net << ": max |accumulated - plain| weights " << diff);
    BOOST_TEST(diff < 1e-4);
    cfg.training.grad_accum = 1;
    train::Trainer init(cfg, *world, dir + "/init");
    BOOST_TEST(max_diff(init.trainable(), plain.trainable()) > 1e-3);
  }
  world->barrier();
  if (world->rank() == 0) std::filesystem::remove_all(dir);
}

// The replica check: identical parameters pass; one ulp changed in one parameter on the
// last rank stops every rank with an error naming the step and that rank.
BOOST_AUTO_TEST_CASE(replica_checksum_catches_a_perturbed_rank) {
  auto world = dist::mpi_world();
  std::string dir = shared_dir(*world, "checksum");
  Config cfg = image_config(*world, dir);
  cfg.dist.check_every = 1;
  train::Trainer tr(cfg, *world, dir + "/run");
  tr.run(2);  // checked after each step: no error
  BOOST_TEST(test::error_of([&] { dist::check_replicas(*world, tr.trainable(), 2); }).empty());
  const int last = world->size() - 1;
  if (world->rank() == last) {
    torch::NoGradGuard ng;
    size_t which = 0;
    while (tr.trainable()[which].second.numel() < 6) ++which;
    auto p = tr.trainable()[which].second.flatten();
    const float v = p[5].item<float>();
    p[5] = std::nextafter(v, 2 * v + 1);
  }
  auto msg = test::error_of([&] { tr.train_step(); });
  BOOST_TEST_INFO(msg);
  BOOST_TEST(msg.find(fmt::format("replica check at step 3: the parameters of rank(s) {} differ", last)) !=
             std::string::npos);
  // The checksum is exact and order-independent.
  auto a = torch::randn({1000});
  auto b = a.clone();
  BOOST_TEST(torch::equal(dist::bit_checksum({a, b}), dist::bit_checksum({a.clone(), b.clone()})));
  BOOST_TEST(!torch::equal(dist::bit_checksum({a, b}), dist::bit_checksum({b, a * 1.0000001})));
  world->barrier();
  if (world->rank() == 0) std::filesystem::remove_all(dir);
}

// A parameter that got no gradient in the first step but gets one later is an error naming
// it, not a hang and not a dropped gradient.
BOOST_AUTO_TEST_CASE(late_gradient_of_an_unused_parameter_is_named) {
  auto world = dist::mpi_world();
  torch::nn::Linear a(4, 4), b(4, 4);
  models::NamedTensors params{{"a.weight", a->weight}, {"a.bias", a->bias}, {"b.weight", b->weight},
                              {"b.bias", b->bias}};
  dist::Reducer red(params, *world, {});
  auto x = torch::ones({2, 4});
  red.zero_grad();
  a(x).sum().backward();
  red.finish();
  BOOST_TEST(red.unused_parameters() == (std::vector<std::string>{"b.weight", "b.bias"}));
  BOOST_TEST(!b->weight.grad().defined());
  red.zero_grad();
  auto msg = test::error_of([&] { b(a(x)).sum().backward(); });
  BOOST_TEST_INFO(msg);
  BOOST_TEST(msg.find("parameter 'b.") != std::string::npos);
  BOOST_TEST(msg.find("no rank gave it one in the first step") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
