// TensorBoard event files: TFRecord framing and the few protobuf fields of Event, Summary
// and Value that scalars and images need (see io/tensorboard.h).
#include "scorch/io/tensorboard.h"

#include <unistd.h>

#include <array>
#include <cstring>
#include <filesystem>

#include "scorch/core/error.h"

namespace scorch::io {

namespace {

const std::array<uint32_t, 256>& crc_table() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

// Protobuf wire format: varint keys (field << 3 | wire type) and values.
void varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void key(std::string& out, int field, int wire) { varint(out, static_cast<uint64_t>(field) << 3 | static_cast<uint64_t>(wire)); }
void bytes_field(std::string& out, int field, const std::string& b) {
  key(out, field, 2);
  varint(out, b.size());
  out += b;
}
void int_field(std::string& out, int field, int64_t v) {
  key(out, field, 0);
  varint(out, static_cast<uint64_t>(v));
}
template <class T>
void fixed_field(std::string& out, int field, T v) {
  key(out, field, sizeof(T) == 8 ? 1 : 5);
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // little-endian hosts (x86-64, aarch64)
  out.append(b, sizeof(T));
}

std::string event(double wall_time, int64_t step, const std::string& summary) {
  std::string e;
  fixed_field(e, 1, wall_time);
  int_field(e, 2, step);
  bytes_field(e, 5, summary);
  return e;
}

}  // namespace

uint32_t crc32c(const void* data, size_t n) {
  const auto& t = crc_table();
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) c = t[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

uint32_t masked_crc32c(const void* data, size_t n) {
  const uint32_t c = crc32c(data, n);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

EventWriter::EventWriter(const std::string& dir) {
  std::filesystem::create_directories(dir);
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  const auto now = static_cast<long long>(std::time(nullptr));
  // A second writer in the same second (a quick resume) gets its own file.
  for (int k = 0;; ++k) {
    path_ = fmt::format("{}/events.out.tfevents.{}.{}{}", dir, now, host, k ? fmt::format(".{}", k) : "");
    if (!std::filesystem::exists(path_)) break;
  }
  out_.open(path_, std::ios::binary);
  SCORCH_CHECK(out_.good(), "cannot create TensorBoard event file '{}'", path_);
  std::string e;
  fixed_field(e, 1, static_cast<double>(now));
  bytes_field(e, 3, "brain.Event:2");
  record(e);
}

EventWriter::~EventWriter() = default;

void EventWriter::record(const std::string& data) {
  char len[8];
  const uint64_t n = data.size();
  std::memcpy(len, &n, 8);
  const uint32_t lc = masked_crc32c(len, 8), dc = masked_crc32c(data.data(), data.size());
  out_.write(len, 8);
  out_.write(reinterpret_cast<const char*>(&lc), 4);
  out_.write(data.data(), static_cast<std::streamsize>(data.size()));
  out_.write(reinterpret_cast<const char*>(&dc), 4);
  out_.flush();
  SCORCH_CHECK(out_.good(), "cannot write TensorBoard event file '{}' (disk full?)", path_);
}

void EventWriter::scalars(int64_t step, double wall_time, const std::vector<std::pair<std::string, double>>& values) {
  std::string s;
  for (const auto& [tag, value] : values) {
    std::string v;
    bytes_field(v, 1, tag);
    fixed_field(v, 2, static_cast<float>(value));
    bytes_field(s, 1, v);
  }
  record(event(wall_time, step, s));
}

void EventWriter::image(const std::string& tag, int64_t step, const std::string& png, int64_t height, int64_t width,
                        int64_t channels, double wall_time) {
  std::string img;
  int_field(img, 1, height);
  int_field(img, 2, width);
  int_field(img, 3, channels);
  bytes_field(img, 4, png);
  std::string v;
  bytes_field(v, 1, tag);
  bytes_field(v, 4, img);
  std::string s;
  bytes_field(s, 1, v);
  record(event(wall_time, step, s));
}

}  // namespace scorch::io
