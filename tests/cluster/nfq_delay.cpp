// A fixed delay on a cluster node's outgoing packets, for kernels without tc netem (this
// machine's has no sch_netem, no sch_fq and no sch_etf, so no qdisc can hold a packet back
// for a set time). fault.sh shape --delay runs one inside the node's network namespace and
// sends the node's packets for the cluster network to it with the NFQUEUE target:
//
//   iptables -t mangle -A POSTROUTING -o eth0 -d 169.254.213.0/24
//            -j NFQUEUE --queue-num Q --queue-bypass
//
// Each packet's metadata (never its payload) arrives here through libnetfilter_queue; it is
// accepted DELAY_MS after it arrived, in arrival order, so the link behaves as a long wire:
// the delay adds to every packet and reorders none. Verdicts are given in batches (every
// packet up to an id), which also releases a packet whose message the socket lost when its
// buffer overflowed. --queue-bypass lets packets pass when this program is not running; on
// SIGTERM it accepts whatever it still holds before it exits.
//
// Usage: nfq_delay QUEUE DELAY_MS   (root, inside the node's network namespace)
#include <arpa/inet.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>

namespace {

using Clock = std::chrono::steady_clock;

struct Held {
  std::uint32_t id;
  Clock::time_point due;
};

struct State {
  std::deque<Held> held;
  Clock::duration delay{};
  unsigned long long passed = 0;
};

volatile std::sig_atomic_t stop_requested = 0;
void on_signal(int) { stop_requested = 1; }

int on_packet(nfq_q_handle*, nfgenmsg*, nfq_data* data, void* arg) {
  auto* state = static_cast<State*>(arg);
  const nfqnl_msg_packet_hdr* hdr = nfq_get_msg_packet_hdr(data);
  if (hdr == nullptr) return 0;
  state->held.push_back({ntohl(hdr->packet_id), Clock::now() + state->delay});
  return 0;
}

// Accepts every held packet whose time has come (all of them when `all`); one verdict
// message covers them all.
void release(nfq_q_handle* queue, State& state, bool all) {
  const auto now = Clock::now();
  std::uint32_t last = 0;
  bool any = false;
  while (!state.held.empty() && (all || state.held.front().due <= now)) {
    last = state.held.front().id;
    any = true;
    state.held.pop_front();
    ++state.passed;
  }
  if (any && nfq_set_verdict_batch(queue, last, NF_ACCEPT) < 0) {
    std::fprintf(stderr, "nfq_delay: verdict for packet %u failed: %s\n", last, std::strerror(errno));
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: nfq_delay QUEUE DELAY_MS\n");
    return 2;
  }
  const int queue_num = std::atoi(argv[1]);
  const double delay_ms = std::atof(argv[2]);
  if (queue_num < 0 || queue_num > 65535 || !(delay_ms >= 0)) {
    std::fprintf(stderr, "nfq_delay: bad queue '%s' or delay '%s' (ms)\n", argv[1], argv[2]);
    return 2;
  }
  State state;
  state.delay = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::milli>(delay_ms));

  nfq_handle* handle = nfq_open();
  if (handle == nullptr) {
    std::perror("nfq_delay: nfq_open");
    return 1;
  }
  nfq_q_handle* queue = nfq_create_queue(handle, static_cast<std::uint16_t>(queue_num), &on_packet, &state);
  if (queue == nullptr) {
    std::fprintf(stderr, "nfq_delay: cannot bind queue %d (another program holds it?): %s\n", queue_num,
                 std::strerror(errno));
    return 1;
  }
  // Metadata only; GSO packets whole (the kernel would otherwise segment them for us).
  if (nfq_set_mode(queue, NFQNL_COPY_META, 0) < 0) std::perror("nfq_delay: nfq_set_mode");
  nfq_set_queue_flags(queue, NFQA_CFG_F_GSO, NFQA_CFG_F_GSO);
  // A 1 Gbit/s link holds ~6 MB in 50 ms: room for tens of thousands of packets in flight.
  nfq_set_queue_maxlen(queue, 1 << 17);
  nfnl_rcvbufsiz(nfq_nfnlh(handle), 64u << 20);

  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  const int fd = nfq_fd(handle);
  std::fprintf(stderr, "nfq_delay: queue %d, %.1f ms\n", queue_num, delay_ms);
  alignas(8) static char buffer[1 << 16];
  while (!stop_requested) {
    int timeout_ms = -1;
    if (!state.held.empty()) {
      const auto wait = state.held.front().due - Clock::now();
      timeout_ms = static_cast<int>(std::max<long long>(
          0, std::chrono::duration_cast<std::chrono::milliseconds>(wait).count() + 1));
    }
    pollfd pfd{fd, POLLIN, 0};
    const int ready = poll(&pfd, 1, timeout_ms);
    if (ready < 0 && errno != EINTR) {
      std::perror("nfq_delay: poll");
      break;
    }
    if (ready > 0) {
      // Drain what is there without blocking.
      for (;;) {
        const ssize_t n = recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
        if (n > 0) {
          nfq_handle_packet(handle, buffer, static_cast<int>(n));
          continue;
        }
        if (n < 0 && errno == ENOBUFS) continue;  // messages lost; the batch verdict covers them
        break;
      }
    }
    release(queue, state, false);
  }
  release(queue, state, true);
  std::fprintf(stderr, "nfq_delay: stopped after %llu packets\n", state.passed);
  nfq_destroy_queue(queue);
  nfq_close(handle);
  return 0;
}
